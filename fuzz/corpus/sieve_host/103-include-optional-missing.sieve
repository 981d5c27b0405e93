require ["include", "fileinto"];
include :optional "does-not-exist";
fileinto "AfterOptional";
