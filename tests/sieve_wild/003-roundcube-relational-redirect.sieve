# Source: roundcube/roundcubemail, plugins/managesieve/tests/src/parser_relational
# Kind: webmail filter editor (Roundcube managesieve, "header value >= " rule).
# Adapted: redirect target test@test.tld changed to test@example.test.
require ["comparator-i;ascii-numeric","relational"];
# rule:[redirect]
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-score" "14"
{
	redirect "test@example.test";
}
