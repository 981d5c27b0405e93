require ["reject", "fileinto"];
fileinto "Before";
reject "conflicts with fileinto";
