# Source: iredmail/iRedMail, iRedMail/samples/dovecot/dovecot.sieve
# Kind: mail-server distribution (iRedMail's global sieve_before sample).
# Adapted: this comment block added; nothing else.
require ["fileinto"];

# rule:[Move Spam to Junk Folder]
if header :is "X-Spam-Flag" "YES"
{
    fileinto "Junk";
}
