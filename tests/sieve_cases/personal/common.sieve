# Included by 101-include-personal.
require "fileinto";
if address :domain :is "from" "example.net" {
    fileinto "Common";
}
