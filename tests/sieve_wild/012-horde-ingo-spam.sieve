# Source: horde/ingo, test/Ingo/Unit/SieveTest.php, testSpamEnabled()
#   (spam rule with spam_header X-Spam-Level, spam_char "*", level 7).
# Kind: webmail filter editor (Horde Ingo).
# Adapted: nothing.
require "fileinto";
if header :comparator "i;ascii-casemap" :contains "X-Spam-Level" "*******"  {
fileinto "Junk";
stop;
}
