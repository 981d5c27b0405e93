require ["include", "fileinto"];
include :global "spam-rules";
if header :contains "subject" "report" {
    fileinto "Reports";
}
