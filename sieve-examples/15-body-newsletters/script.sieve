require ["body", "fileinto"];
if body :text :contains ["unsubscribe", "view this email in your browser"] {
    fileinto "Newsletters";
}
