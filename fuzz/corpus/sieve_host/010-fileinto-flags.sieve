require ["fileinto", "imap4flags"];
fileinto :flags ["\\Seen", "$Important"] "Flagged";
