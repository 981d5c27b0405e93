require ["body", "fileinto"];
if body :text :contains "Grüße" {
    fileinto "Latin1";
}
