require ["ihave", "fileinto"];
fileinto "A";
redirect "bob@example.net";
error "stop here";
