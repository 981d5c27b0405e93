require ["envelope", "subaddress", "fileinto", "variables"];
if envelope :matches :detail "to" "*" {
    fileinto "Plus.${1}";
}
