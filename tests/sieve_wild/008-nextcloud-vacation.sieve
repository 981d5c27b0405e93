### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
require "date";
require "relational";
require "vacation";
### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
# Source: nextcloud/mail, tests/data/sieve-vacation-on.sieve
# Kind: webmail vacation editor (Nextcloud Mail's out-of-office responder).
# Adapted: this comment block added; the end date moved from 2022-09-08
#   to 2099-12-31 so the responder is on today; :addresses
#   "Test Test <test@test.org>", "Test Alias <alias@test.org>" changed to
#   the user's own "Alice Example <alice@example.org>" and an alias at
#   example.test (display names kept); marketing@company.org changed to
#   marketing@example.test.

require "fileinto";

if address "From" "marketing@example.test" {
    fileinto "INBOX.marketing";
}

### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
# DATA: {"version":1,"enabled":true,"start":"2022-09-02T00:00:00+01:00","end":"2099-12-31T23:59:00+01:00","subject":"On vacation","message":"I'm on vacation."}
if allof(currentdate :value "ge" "iso8601" "2022-09-01T23:00:00Z", currentdate :value "le" "iso8601" "2099-12-31T22:59:00Z") {
	vacation :days 4 :subject "On vacation" :addresses ["Alice Example <alice@example.org>", "Alice Alias <alias@example.test>"] "I'm on vacation.";
}
### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
