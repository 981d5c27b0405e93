require "copy";
redirect :copy "bob@example.net";
