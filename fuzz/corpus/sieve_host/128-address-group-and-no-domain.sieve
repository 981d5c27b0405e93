require "fileinto";
if address :localpart :is "to" "undisclosed-recipients" {
    fileinto "Group";
}
if address :is :all "to" "" {
    fileinto "Empty";
}
