# Admin before-script (mailstow [sieve] before): spam by score into Junk.
# `stop` ends the whole sequence: the user's script does not run.
require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "6" {
    fileinto "Junk";
    stop;
}
