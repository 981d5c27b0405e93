require ["body", "fileinto"];
if body :content "text/html" :contains "<b>offer</b>" {
    fileinto "Offers";
}
