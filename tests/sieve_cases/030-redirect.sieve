redirect "bob@example.net";
