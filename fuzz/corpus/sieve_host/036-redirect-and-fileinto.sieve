require "fileinto";
fileinto "Forwarded";
redirect "bob@example.net";
