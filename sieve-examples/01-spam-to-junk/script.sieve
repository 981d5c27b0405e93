# The spam filter upstream (SpamAssassin, rspamd) adds X-Spam-Flag: YES.
require "fileinto";
if header :is "x-spam-flag" "YES" {
    fileinto "Junk";
    stop;
}
