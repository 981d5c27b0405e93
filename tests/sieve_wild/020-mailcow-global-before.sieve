# global_sieve_before script
# global_sieve_before -> user sieve_before (mailcow UI) -> user sieve_after (mailcow UI) -> global_sieve_after
# Source: mailcow/mailcow-dockerized, data/conf/dovecot/global_sieve_before
# Kind: mail-server distribution, admin script run before the user's
#   (runs as [sieve] before / sieve_before here; the user has no filters).
# Adapted: this comment block added; nothing else.

require ["mailbox", "fileinto", "date", "editheader", "variables"];

if not exists "Date" {
  if date :matches "received" "std11" "*" {
    addheader :last "Date" "${1}";
  }
}

if header :contains ["Chat-Version"] [""] {
  if mailboxexists "DeltaChat" {
    fileinto "DeltaChat";
  } else {
    fileinto :create "DeltaChat";
  }
  stop;
}
