require ["imap4flags", "fileinto"];
keep :flags "\\Flagged";
fileinto "Copy";
