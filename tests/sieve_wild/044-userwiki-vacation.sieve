# Source: userwiki.zwoggel.net, page "sieve-filter"
#   (https://userwiki.zwoggel.net/doku.php?id=sieve-filter), "Beispiel
#   vacation auto reply", itself after the Dovecot wiki's example.
# Kind: documentation example (a provider's user wiki).
# Adapted: the DokuWiki line breaks ("\\") removed and the lines laid out
#   as in the Dovecot wiki; :addresses j.doe@company.dom,
#   john.doe@company.dom changed to alice@example.org and
#   a.example@example.test.
require ["fileinto", "vacation"];
# Move spam to spam folder
vacation
# Reply at most once a day to a same sender
:days 1
:subject "Out of office reply"
# List of additional recipient addresses which are included in the auto replying.
# If a mail's recipient is not the envelope recipient and it's not on this list,
# no vacation reply is sent for it.
:addresses ["alice@example.org", "a.example@example.test"]
"I'm out of office, please contact Joan Doe instead. Best regards John Doe";
