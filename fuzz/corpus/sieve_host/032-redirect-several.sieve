require "copy";
redirect "bob@example.net";
redirect :copy "carol@example.net";
redirect "dave@example.com";
