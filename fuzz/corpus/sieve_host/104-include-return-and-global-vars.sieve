require ["include", "variables", "fileinto"];
global "folder";
set "folder" "Default";
include :personal "choose-folder";
fileinto "${folder}";
