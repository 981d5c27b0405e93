require ["editheader", "variables", "imap4flags"];
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
