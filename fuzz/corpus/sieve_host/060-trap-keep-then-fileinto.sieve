require "fileinto";
keep;
fileinto "X";
