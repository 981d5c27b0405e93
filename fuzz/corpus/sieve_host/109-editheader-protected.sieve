require ["editheader", "relational", "comparator-i;ascii-numeric", "fileinto"];
deleteheader "received";
deleteheader "auto-submitted";
if header :count "eq" :comparator "i;ascii-numeric" "received" "1" {
    fileinto "ReceivedKept";
}
