# Source: ispmanager documentation, "Mail filtering"
#   (https://ispmanager.com/docs/ispmanager6-business/mail-filtering):
#   the .dovecot.sieve the control panel writes; the rule itself is
#   personal/testscript.sieve beside this directory.
# Kind: hosting control panel (ispmanager).
# Adapted: this comment block added; nothing else.
require ["include"];
include :personal "testscript";
