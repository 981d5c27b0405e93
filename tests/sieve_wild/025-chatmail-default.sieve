# Source: deltachat/chatmail, cmdeploy/src/cmdeploy/dovecot/default.sieve
# Kind: mail-server distribution (Delta Chat's chatmail relay, global script).
# Adapted: this comment block added; nothing else.
require ["imap4flags"];

if header :is ["Auto-Submitted"] ["auto-replied", "auto-generated"] {
	addflag "$Auto";
}
