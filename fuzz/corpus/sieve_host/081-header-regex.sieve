require ["fileinto", "regex", "variables"];
if header :regex "subject" "^Invoice #([0-9]+) from (.*)$" {
    fileinto "Invoices.${2}";
}
