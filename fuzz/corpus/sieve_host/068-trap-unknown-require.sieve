require ["fileinto", "x-unknown-extension"];
fileinto "A";
