require "fileinto";
if header :is "x-admin-tag" "checked" {
    fileinto "AdminTagged";
}
