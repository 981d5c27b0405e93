require "fileinto";
fileinto "Überweisungen";
