require "fileinto";
if address :all :contains ["to", "cc"] "bob@example.net" {
    fileinto "WithBob";
}
