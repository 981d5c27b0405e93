# Source: roundcube/roundcubemail, plugins/managesieve/tests/src/parser_spamtest
# Kind: webmail filter editor (Roundcube managesieve, spamtest rule).
# Adapted: nothing.
require ["comparator-i;ascii-numeric","fileinto","relational","spamtest"];
# rule:[Spam1]
if allof (spamtest :value "eq" :comparator "i;ascii-numeric" "10")
{
	fileinto "Junk";
}
# rule:[Spam2]
if allof (spamtest :value "ge" :comparator "i;ascii-numeric" "3")
{
	fileinto "INBOX.spam-trap";
}
