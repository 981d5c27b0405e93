require ["body", "fileinto"];
if body :text :contains "unsubscribe" {
    fileinto "Newsletters";
}
