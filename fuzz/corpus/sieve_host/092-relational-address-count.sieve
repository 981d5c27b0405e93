require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "gt" :comparator "i;ascii-numeric" ["to", "cc"] "2" {
    fileinto "Crowd";
}
