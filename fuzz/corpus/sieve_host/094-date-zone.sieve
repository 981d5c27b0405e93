require ["date", "fileinto", "relational"];
if date :zone "+0000" :value "lt" "date" "hour" "09" {
    fileinto "BeforeNineUTC";
}
if date :originalzone :is "date" "zone" "+0100" {
    fileinto "SentFromCET";
}
