require ["date", "relational", "fileinto"];
if currentdate :value "ge" "year" "2024" {
    fileinto "Recent";
}
