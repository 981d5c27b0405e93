# Source: Alinto/sogo, Tests/Integration/test-sieve.py,
#   sieve_forward_keep (SOGo's "forward, keep a copy"; CRLF line ends).
# Kind: webmail filter editor (SOGo).
# Adapted: this comment block added; %(redirect_mailaddr)s filled with
#   nonexistent@example.test (the test's nonexistent@inverse.com).
redirect "nonexistent@example.test";
keep;
