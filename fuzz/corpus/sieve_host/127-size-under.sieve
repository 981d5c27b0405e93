require "fileinto";
if size :under 100K {
    fileinto "Small";
}
