# Source: roundcube/roundcubemail, plugins/managesieve/tests/src/parser_subaddress
# Kind: webmail filter editor (Roundcube managesieve, envelope :user/:detail).
# Adapted: nothing (message 16 is sent to alice+mta-filters@example.org).
require ["envelope","fileinto","subaddress"];
if envelope :user "To" "postmaster"
{
	fileinto "postmaster";
	stop;
}
if envelope :detail :is "To" "mta-filters"
{
	fileinto "mta-filters";
	stop;
}
