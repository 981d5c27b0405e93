require "fileinto";
if header :is :comparator "i;octet" "subject" "quarterly report" {
    fileinto "CaseInsensitive";
} elsif header :is "subject" "quarterly report" {
    fileinto "Casemap";
}
