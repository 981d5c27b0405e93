# Source: mail-in-a-box/mailinabox, conf/dovecot_sieve.txt
# Kind: mail-server distribution (Mail-in-a-Box's spam sieve_before script).
# Adapted: this comment block added; nothing else. Note the flag is
#   written "\\\\Seen" in that file: the Sieve string is \\Seen, two
#   backslashes, which is no valid flag (kept as shipped).
require ["regex", "fileinto", "imap4flags"];

if allof (header :regex "X-Spam-Status" "^Yes") {
  setflag "\\\\Seen";
  fileinto "Spam";
  stop;
}

