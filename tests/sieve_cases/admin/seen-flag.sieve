# Admin before-script that only sets a flag and keeps implicitly.
require "imap4flags";
addflag "\\Seen";
