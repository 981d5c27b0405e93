# Included by 104-include-return-and-global-vars: sets the global
# "folder" and returns before the second assignment.
require ["include", "variables"];
global "folder";
if header :contains "subject" "report" {
    set "folder" "Chosen";
    return;
}
set "folder" "NotReached";
