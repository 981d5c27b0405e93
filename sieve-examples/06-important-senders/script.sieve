require "imap4flags";
if address :is "from" ["boss@example.net", "partner@example.com"] {
    addflag ["\\Flagged", "$Important"];
}
