require ["environment", "fileinto", "variables"];
if environment :is "location" "MDA" {
    fileinto "Location.MDA";
}
if environment :matches "phase" "*" {
    fileinto "Phase.${1}";
}
if environment :matches "domain" "*" {
    fileinto "Domain.${1}";
}
