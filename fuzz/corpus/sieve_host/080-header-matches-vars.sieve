require ["fileinto", "variables"];
if header :matches "subject" "[*] *" {
    fileinto "Tag.${1}";
}
