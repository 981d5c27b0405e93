### Nextcloud Mail: Filters ### DON'T EDIT ###
require ["copy"];
### Nextcloud Mail: Filters ### DON'T EDIT ###
# Source: nextcloud/mail, tests/data/mail-filter/builder9.sieve
# Kind: webmail filter editor (Nextcloud Mail's filter builder).
# Adapted: this comment block replaces "# Hello, this is a test"; the
#   tested To address bob@example.org changed to the user's
#   alice@example.org (in the DATA line too), the redirect target
#   alice@example.org to bob@example.test.
### Nextcloud Mail: Filters ### DON'T EDIT ###
# FILTER: [{"name":"Test 9","enable":true,"operator":"allof","tests":[{"operator":"is","values":["alice@example.org"],"field":"to"}],"actions":[{"type":"redirect","recipient":"bob@example.test"}],"priority":10}]
# Test 9
if address :is :all "To" ["alice@example.org"] {
	redirect :copy "bob@example.test";
}
### Nextcloud Mail: Filters ### DON'T EDIT ###
