# The workaround for case 136: declare the variable before the block.
require ["variables", "fileinto"];
set "kind" "";
if header :matches "subject" "* report" {
    set "kind" "${1}";
}
fileinto "Reports.${kind}";
