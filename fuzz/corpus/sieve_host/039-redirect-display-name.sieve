redirect "Bob Example <bob@example.net>";
