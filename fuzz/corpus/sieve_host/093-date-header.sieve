require ["date", "fileinto", "variables"];
if date :matches "date" "year" "*" {
    set "y" "${1}";
}
if date :is "date" "weekday" "1" {
    fileinto "Archive.${y}.Monday";
}
