require ["mime", "fileinto", "variables"];
if header :mime :anychild :param "filename" :matches "content-disposition" "invoice-*.pdf" {
    fileinto "Invoices.${1}";
}
