require ["subaddress", "fileinto"];
if address :detail "to" "lists" {
    fileinto "ViaPlusLists";
}
