require "copy";
if address :is "from" "boss@example.net" {
    redirect :copy "alice.mobile@example.com";
}
