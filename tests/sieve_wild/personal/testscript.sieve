# Source: ispmanager documentation, "Mail filtering"
#   (https://ispmanager.com/docs/ispmanager6-business/mail-filtering),
#   .sieve/testscript.sieve; included by 026-ispmanager-include.sieve.
# Adapted: bbb@test.dom changed to bbb@example.test; this comment added.
if anyof ( not header :contains ["Header","Subject"] ["AAA","BBB","CCC"],
size :over 1024K
) { redirect "bbb@example.test";
discard;
}
