# Source: roundcube/roundcubemail, plugins/managesieve/tests/src/parser.out
#   (the script as Roundcube's rcube_sieve_script::as_text() writes it,
#   with its "# rule:[name]" comments).
# Kind: webmail filter editor (Roundcube managesieve).
# Adapted: test@domain.tld, nagios@domain.tld and the From domain
#   "domain.tld" changed to example.test; the 700-character domain of the
#   "do not wrap long lines" rule shortened to 60 characters. Folder names
#   kept.
require ["envelope","fileinto","reject"];
# rule:[spam]
if header :contains "X-DSPAM-Result" "Spam"
{
	fileinto "Spam";
	stop;
}
# rule:[test1]
if header :contains :comparator "i;ascii-casemap" ["From","To"] "test@example.test"
{
	discard;
	stop;
}
# rule:[test2]
if anyof (not header :contains :comparator "i;octet" "Subject" "[test]", header :contains "Subject" "[test2]")
{
	fileinto "test";
	stop;
}
# rule:[comments]
if true
{
	stop;
}
# rule:[reject]
if size :over 5000K
{
	reject "Message over 5MB size limit. Please contact me before sending this.";
}
# rule:[false]
if false # size :over 5000K
{
	stop;
}
# rule:[true]
if true
{
	stop;
}
fileinto "Test";
# rule:[address test]
if address :is "From" "nagios@example.test"
{
	fileinto "example.test";
	stop;
}
# rule:[envelope test]
if envelope :domain :is "From" "example.test"
{
	fileinto "example.test";
	stop;
}
# rule:[do not wrap long lines]
if envelope :domain :is "From" "123456789012345678901234567890123456789012345678901234567890"
{
	fileinto "example.test";
	stop;
}
