require ["envelope", "fileinto"];
if envelope :is "from" "boss@example.net" {
    fileinto "Boss";
}
