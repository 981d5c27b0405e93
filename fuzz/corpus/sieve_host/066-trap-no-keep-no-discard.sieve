require "fileinto";
if header :is "subject" "something else" {
    fileinto "Never";
}
