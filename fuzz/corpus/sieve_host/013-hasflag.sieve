require ["imap4flags", "fileinto"];
addflag "$Reviewed";
if hasflag :contains "$Reviewed" {
    fileinto "HasFlag";
}
