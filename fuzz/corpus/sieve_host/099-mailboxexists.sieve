require ["mailbox", "fileinto"];
if mailboxexists "Projects" {
    fileinto "Projects";
}
if mailboxexists ["Projects", "Missing"] {
    fileinto "Both";
}
