require ["editheader", "fileinto"];
addheader "X-Filtered" "yes";
fileinto "Tagged";
