# A global (admin-provided) rule set, included by 102-include-global.
require ["fileinto", "imap4flags"];
if header :is "x-spam-flag" "YES" {
    addflag "$Junk";
    fileinto "Junk";
    stop;
}
