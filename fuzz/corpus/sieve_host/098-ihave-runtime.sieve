require ["ihave", "fileinto"];
if ihave "x-nonexistent" {
    x_nonexistent_command;
} else {
    fileinto "NoSuchExtension";
}
