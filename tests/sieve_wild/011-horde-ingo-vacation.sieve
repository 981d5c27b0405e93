# Source: horde/ingo, test/Ingo/Unit/SieveTest.php, testVacationEnabled()
#   (the script Ingo_Script_Sieve generates for an enabled vacation rule).
# Kind: webmail filter editor (Horde Ingo).
# Adapted: :addresses from@example.com changed to the user's own
#   alice@example.org; the PHP string escapes undone.
require ["vacation", "regex"];
if allof ( not exists "list-help", not exists "list-unsubscribe", not exists "list-subscribe", not exists "list-owner", not exists "list-post", not exists "list-archive", not exists "list-id", not exists "Mailing-List", not header :comparator "i;ascii-casemap" :is "Precedence" ["list", "bulk", "junk"], not header :comparator "i;ascii-casemap" :matches "To" "Multiple recipients of*" ) {
vacation :days 7 :addresses "alice@example.org" :subject "Subject" "Because I don't like working!";
}
