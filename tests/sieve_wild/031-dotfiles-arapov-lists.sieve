# Source: arapov/mail-filters, default.sieve
# Kind: a person's own filters (list sorting into Lists.<name> with
#   :create, flags for own mail).
# Adapted: this comment block added above the original's first line;
#   the owner's address anton@openssl.org changed to the test user's
#   alice@example.org.
# Sieve filter

# Declare the extensions used by this script.
#
require [
  "copy",
  "envelope",
  "fileinto",
  "imap4flags",
  "mailbox",
  "regex",
  "variables"
];

# Mark all the mails from me as seen/read.
#
if envelope "From" "alice@example.org" {
  setflag "\\Seen";
}

# Mark mails to me with a Blue flag.
#
if address "To" "alice@example.org" {
  setflag "\\Flagged";
  addflag "$MailFlagBit2";
}

# Organize mailing list emails in dedicated directories.
#
if exists "List-Id" {
  if header :regex "List-Id" "<([a-z_0-9-]+)[.@]" {
    set :lower "listname" "${1}";
    fileinto :create "Lists.${listname}";
  }
}

# n.b. "keep" is executed automatically, if no other action is taken.
