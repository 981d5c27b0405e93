require "fileinto";
fileinto "Work/Reports";
