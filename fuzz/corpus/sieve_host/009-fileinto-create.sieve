require ["fileinto", "mailbox"];
fileinto :create "Clients.Acme";
