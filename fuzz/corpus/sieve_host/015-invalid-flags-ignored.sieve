require "imap4flags";
addflag "\\Recent \\Bogus $ok";
keep;
