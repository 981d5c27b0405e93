require ["date", "relational", "fileinto"];
if date :is "date" "weekday" ["0", "6"] {
    fileinto "Weekend";
} elsif date :value "ge" "date" "hour" "18" {
    fileinto "AfterHours";
}
