# Admin before-script: spam (score >= 5 of 10) goes to Junk, and the
# user's script does not run for it.
require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "5" {
    fileinto "Junk";
    stop;
}
