require ["enotify", "variables"];
if header :matches "from" "*" {
    set "from" "${1}";
}
notify :message "New mail from ${from}" "mailto:alice-phone@example.net";
