# File mail from past years into an existing "Archive.<year>" folder, or
# leave it in INBOX when that folder does not exist (mailboxexists).
# The year comes from the Date header ("Fri, 29 Dec 2023 09:00:00 +0100").
require ["mailbox", "variables", "fileinto"];
# Declared before the block: sieve-rs scopes a variable first set inside a
# block to that block (docs/sieve-compat.md, case 136).
set "year" "";
if header :matches "date" "*, * * * *" {
    set "year" "${4}";
}
if mailboxexists "Archive.${year}" {
    fileinto "Archive.${year}";
}
