require "imap4flags";
addflag ["\\seen", "\\SEEN", "$Label1", "$label1"];
