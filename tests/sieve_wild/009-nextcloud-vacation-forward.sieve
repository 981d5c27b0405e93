### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
require "date";
require "relational";
require "vacation";
require "copy";
### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
# Source: nextcloud/mail, tests/data/sieve-vacation-on-forward-to.sieve
# Kind: webmail vacation editor (Nextcloud Mail, responder with forwarding
#   and its list/no-reply guard).
# Adapted: this comment block added; the end date moved from 2022-09-08
#   to 2099-12-31; :addresses changed to the user's own address and an
#   alias at example.test (display names kept); forward@example.org and
#   marketing@company.org changed to *@example.test.

require "fileinto";

if address "From" "marketing@example.test" {
    fileinto "INBOX.marketing";
}

### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
# DATA: {"version":1,"enabled":true,"start":"2022-09-02T00:00:00+01:00","end":"2099-12-31T23:59:00+01:00","subject":"On vacation","message":"I'm on vacation.","forwardTo":"forward@example.test"}
redirect :copy "forward@example.test";
### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
if allof(currentdate :value "ge" "iso8601" "2022-09-01T23:00:00Z", currentdate :value "le" "iso8601" "2099-12-31T22:59:00Z") {
	if not anyof(exists "List-Id", exists "List-Unsubscribe", address :all :matches ["From", "Sender"] ["noreply@*", "no-reply@*"]) {
		vacation :days 4 :subject "On vacation" :addresses ["Alice Example <alice@example.org>", "Alice Alias <alias@example.test>"] "I'm on vacation.";
	}
}
### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
