require ["fileinto", "variables"];
if header :matches "list-id" "*<*.lists.example.net>" {
    fileinto "Lists.${2}";
}
