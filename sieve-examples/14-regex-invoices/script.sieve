require ["regex", "variables", "fileinto", "imap4flags", "mailbox"];
if header :regex "subject" "^(Paid )?[Ii]nvoice #?([0-9]{4})-[0-9]+" {
    if string :is "${1}" "Paid " {
        fileinto :create :flags "\\Seen" "Invoices.${2}.Paid";
    } else {
        fileinto :create "Invoices.${2}";
    }
}
