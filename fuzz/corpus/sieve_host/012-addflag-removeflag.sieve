require "imap4flags";
addflag ["\\Seen", "$a", "$b"];
removeflag "$a";
keep;
