# Source: roundcube/roundcubemail,
#   plugins/managesieve/tests/src/parser_vacation_append_original_subject
#   (what Roundcube's vacation form writes with "append original subject").
# Kind: webmail vacation editor (Roundcube managesieve).
# Adapted: nothing.
require ["vacation","variables"];
set "subject" "";
if header :matches "subject" "*" {
	set "subject" "${1}";
}
# rule:[Out of Office]
if true
{
	vacation :days 3 :subject "Out of office: ${subject}" "Went for holiday";
}
