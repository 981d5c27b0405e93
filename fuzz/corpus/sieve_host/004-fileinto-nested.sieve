require "fileinto";
fileinto "Lists.Rust.Announce";
