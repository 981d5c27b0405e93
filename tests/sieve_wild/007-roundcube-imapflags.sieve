# Source: roundcube/roundcubemail, plugins/managesieve/tests/src/parser_imapflags
# Kind: webmail filter editor (Roundcube managesieve, flag actions).
# Adapted: nothing (the :matches "^Test$" pattern is Roundcube's as written).
require ["imap4flags"];
# rule:[imapflags]
if header :matches "Subject" "^Test$"
{
	setflag "\\Seen";
	addflag ["\\Answered","\\Deleted"];
}
