require "fileinto";
fileinto "X";
fileinto "X";
