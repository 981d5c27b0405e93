# Source: horde/ingo, test/Ingo/Unit/SieveTest.php, testBlacklistMarker()
#   followed by testForwardKeep() (Ingo writes its rules one after the
#   other into one script, blacklist before forward).
# Kind: webmail filter editor (Horde Ingo).
# Adapted: the two unit-test outputs joined in Ingo's rule order;
#   spammer@example.com changed to info@deals.example.com (the sender of
#   message 02), joefabetes@example.com to joefabetes@example.test.
require "imap4flags";
if address :all :comparator "i;ascii-casemap" :is ["From", "Sender", "Resent-From"] "info@deals.example.com"  {
addflag ["\\Deleted"];
keep;
removeflag ["\\Deleted"];
stop;
}
if true {
redirect "joefabetes@example.test";
}
if true {
keep;
stop;
}
