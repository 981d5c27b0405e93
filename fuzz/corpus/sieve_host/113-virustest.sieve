require ["virustest", "relational", "comparator-i;ascii-numeric", "fileinto", "variables"];
if virustest :matches "*" {
    fileinto "Virus.${1}";
}
