require "fileinto";
fileinto "Projekte.日本語";
