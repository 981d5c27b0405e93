require ["envelope", "subaddress", "fileinto"];
if allof (envelope :user "to" "alice", envelope :domain "to" "example.org",
          envelope :localpart "to" "alice+news") {
    fileinto "ToAliceNews";
}
