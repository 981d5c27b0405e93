require ["include", "fileinto"];
include :global "junk-by-score";
if header :contains "subject" "invoice" {
    fileinto "Invoices";
}
