require ["imap4flags", "variables", "fileinto"];
addflag "myflags" ["\\Answered", "$Work"];
fileinto :flags "${myflags}" "Work";
