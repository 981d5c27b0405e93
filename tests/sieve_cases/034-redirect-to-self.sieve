redirect "alice@example.org";
