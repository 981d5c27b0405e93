require ["enotify", "variables"];
# Declared before the blocks: sieve-rs scopes a variable first set inside a
# block to that block (docs/sieve-compat.md, case 136).
set "subject" "";
if address :is "from" "boss@example.net" {
    if header :matches "subject" "*" {
        set "subject" "${1}";
    }
    notify :importance "1" :message "Boss: ${subject}"
        "mailto:alice-phone@sms.example.com";
}
