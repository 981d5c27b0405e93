require ["mime", "foreverypart", "fileinto"];
foreverypart {
    if header :mime :subtype "content-type" "pdf" {
        fileinto "PDFs";
        break;
    }
}
