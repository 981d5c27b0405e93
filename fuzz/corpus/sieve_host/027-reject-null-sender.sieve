require "reject";
reject "no bounces please";
