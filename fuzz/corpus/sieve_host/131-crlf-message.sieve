require "fileinto";
if header :is "subject" "Quarterly report" {
    fileinto "CRLF";
}
