# Source: dyne/JaroMail, GitHub issue #10 "Vacation trigger"
#   (https://github.com/dyne/JaroMail/issues/10), the author's example.
# Kind: a person's own filters (spam first, then a vacation reply whose
#   subject carries the original one).
# Adapted: this comment block added; nothing else.
require ["fileinto", "vacation", "variables"];

if header :is "X-Spam-Flag" "YES" {
    fileinto "Spam";
}

if header :matches "Subject" "*" {
	set "subjwas" ": ${1}";
}

vacation
  :days 1
  :subject "Out of office reply${subjwas}"
"I'm out of office, please contact Joan Doe instead.
Best regards
John Doe";
