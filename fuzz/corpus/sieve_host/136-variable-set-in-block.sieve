# RFC 5229: variables are global to the script. sieve-rs scopes a variable
# first set inside a block to that block (documented difference).
require ["variables", "fileinto"];
if header :matches "subject" "* report" {
    set "kind" "${1}";
}
fileinto "Reports.${kind}";
