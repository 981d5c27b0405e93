# Admin before-script: a plain fileinto (no stop) cancels the implicit
# keep; Pigeonhole then does not run the user's script at all.
require "fileinto";
fileinto "Junk";
