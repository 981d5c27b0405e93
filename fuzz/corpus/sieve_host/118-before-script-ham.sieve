require "fileinto";
fileinto "UserRan";
