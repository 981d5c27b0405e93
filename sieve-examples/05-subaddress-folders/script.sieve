require ["envelope", "subaddress", "fileinto", "variables", "mailbox"];
if envelope :matches :detail "to" "?*" {
    set :lower "detail" "${0}";
    fileinto :create "Plus.${detail}";
}
