require "fileinto";
keep;
fileinto "UserRan";
