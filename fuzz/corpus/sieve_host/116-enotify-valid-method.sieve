require ["enotify", "fileinto"];
if valid_notify_method "mailto:alice-phone@example.net" {
    fileinto "CanNotify";
}
