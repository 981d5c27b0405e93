# Source: tuxtina.de, "Mail filtern (Sieve)"
#   (https://tuxtina.de/files/infmisc/mail00/page7.html), "Sieve
#   Beispielskript fuer Ali Baba" (a LUG talk's example).
# Kind: documentation example.
# Adapted: Ali_B@gmx.net changed to alice@example.org and the university
#   domain uni-stuttgart.de to example.com (so that the rules meet the
#   test messages), nervensaege@gmx.de to "Bob Miller <bob@example.net>"
#   (the exact From of message 01), lug-s@lug-s.org to
#   rust-users@lists.example.net.
# Sieve Beispielskript fuer Ali Baba
require ["fileinto", "reject"];
if address :domain :contains ["From", "To"] "example.com" {
fileinto "INBOX.Uni";
}
elsif header :contains "Subject" ["MONEY", "$", "VIAGRA"] {
fileinto "INBOX.Spam";
# discard;
}
elsif header :is "From" "Bob Miller <bob@example.net>" {
reject "Ich will nix mehr von Dir hoeren!!!";
}
elsif address :is :all "To" "alice@example.org" {
fileinto "INBOX.Privat";
}
elsif header :contains "To" "rust-users@lists.example.net" {
fileinto "INBOX.LUGS";
}
