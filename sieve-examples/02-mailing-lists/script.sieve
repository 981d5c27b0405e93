# "Rust users <rust-users.lists.example.net>" goes to Lists.rust-users.
require ["fileinto", "variables", "mailbox"];
if header :matches "list-id" "*<*.*>" {
    fileinto :create "Lists.${2}";
    stop;
}
