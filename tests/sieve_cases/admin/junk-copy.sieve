# Admin before-script: fileinto :copy keeps the implicit keep, so the
# user's script runs too.
require ["fileinto", "copy"];
fileinto :copy "Junk";
