require ["enotify", "variables"];
if address :is "from" "boss@example.net" {
    if header :matches "subject" "*" {
        set "subject" "${1}";
    }
    notify :importance "1" :message "Boss: ${subject}"
        "mailto:alice-phone@sms.example.com";
}
