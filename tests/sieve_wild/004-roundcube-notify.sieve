# Source: roundcube/roundcubemail, plugins/managesieve/tests/src/parser_enotify_b
# Kind: webmail filter editor (Roundcube managesieve, enotify action).
# Adapted: notification address alm@example.com changed to alm@example.test.
require ["enotify","envelope","variables"];
# rule:[from]
if envelope :matches "from" "*"
{
	set "env_from" " [really: ${1}]";
}
# rule:[subject]
if header :matches "Subject" "*"
{
	set "subject" "${1}";
}
# rule:[from notify]
if address :matches "from" "*"
{
	set "from_addr" "${1}";
	notify :message "${from_addr}${env_from}: ${subject}" "mailto:alm@example.test";
}

