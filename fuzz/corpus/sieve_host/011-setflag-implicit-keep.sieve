require "imap4flags";
setflag "\\Flagged";
