# 12 Received headers: sieve-rs skips redirects past 10 hops.
redirect "bob@example.net";
