require ["fileinto"];
if address :domain :is "from" "example.net" {
    if address :localpart :is "from" "sender" {
        fileinto "FromSender";
    }
}
