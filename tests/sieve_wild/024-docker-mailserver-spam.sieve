# Source: docker-mailserver/docker-mailserver,
#   target/dovecot/sieve-global/after/spam_to_junk.sieve
# Kind: mail-server distribution (docker-mailserver's SPAM_TO_INBOX /
#   MOVE_SPAM_TO_JUNK global script; matches SpamAssassin and rspamd).
# Adapted: this comment block added; nothing else.
require ["fileinto","mailbox"];

if anyof (header :contains "X-Spam-Flag" "YES",
          header :contains "X-Spam" "Yes") {
    fileinto "Junk";
}
