redirect "bob@localhost";
