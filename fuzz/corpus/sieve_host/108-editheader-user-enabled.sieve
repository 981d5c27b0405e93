require ["editheader", "fileinto"];
addheader "X-Filtered" "yes";
deleteheader "X-Spam-Flag";
if allof (header :is "x-filtered" "yes", not exists "x-spam-flag") {
    fileinto "Tagged";
}
