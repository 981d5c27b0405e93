require ["fileinto", "special-use", "mailbox"];
fileinto :specialuse "\\Junk" :create "Spam";
