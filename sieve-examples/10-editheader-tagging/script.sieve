require ["editheader", "variables", "imap4flags"];
# Declared before the blocks: sieve-rs scopes a variable first set inside a
# block to that block (docs/sieve-compat.md, case 136).
set "subject" "";
if not address :domain :is "from" "example.org" {
    if header :matches "subject" "*" {
        set "subject" "${1}";
    }
    deleteheader "subject";
    addheader :last "Subject" "[EXTERNAL] ${subject}";
}
if header :contains "subject" "[EXTERNAL]" {
    addflag "$External";
}
