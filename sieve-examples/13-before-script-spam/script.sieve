# The user's own script: newsletters into a folder.
require ["fileinto", "body"];
if body :text :contains "unsubscribe" {
    fileinto "Newsletters";
}
