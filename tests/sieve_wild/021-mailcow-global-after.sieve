# global_sieve_after script
# global_sieve_before -> user sieve_before (mailcow UI) -> user sieve_after (mailcow UI) -> global_sieve_after
# Source: mailcow/mailcow-dockerized, data/conf/dovecot/global_sieve_after
# Kind: mail-server distribution, spam to Junk, +tag folders, duplicates
#   (an admin "after" script; here it runs as the admin script before an
#   empty user script, which has the same effect).
# Adapted: this comment block added; nothing else (the "/" in
#   "INBOX/${tag}" is mailcow's, whose Dovecot uses "/" as separator).

require "fileinto";
require "mailbox";
require "variables";
require "subaddress";
require "envelope";
require "duplicate";

if header :contains "X-Spam-Flag" "YES" {
  fileinto "Junk";
}

if allof (
  envelope :detail :matches "to" "*",
  header :contains "X-Moo-Tag" "YES"
  ) {
  set :lower :upperfirst "tag" "${1}";
  if mailboxexists "INBOX/${tag}" {
    fileinto "INBOX/${tag}";
  } else {
    fileinto :create "INBOX/${tag}";
  }
}

if duplicate {
  discard;
  stop;
}
