# Source: Alinto/sogo, Tests/Integration/test-sieve.py,
#   sieve_vacation_ignoreLists (the script SOGo writes for a vacation
#   message with "ignore mailing lists"; SOGo writes CRLF line ends).
# Kind: webmail filter editor (SOGo).
# Adapted: this comment block added; the template's %(days)d filled with
#   7, %(mailaddr)s with the user's alice@example.org, %(vacation_msg)s
#   with the test's "vacation test - ignore list".
require ["vacation"];
if allof ( not exists ["list-help", "list-unsubscribe", "list-subscribe", "list-owner", "list-post", "list-archive", "list-id", "Mailing-List"], not header :comparator "i;ascii-casemap" :is "Precedence" ["list", "bulk", "junk"], not header :comparator "i;ascii-casemap" :matches "To" "Multiple recipients of*" ) {vacation :days 7 :addresses ["alice@example.org"] text:
vacation test - ignore list
.
;
}
