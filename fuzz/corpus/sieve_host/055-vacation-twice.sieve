require "vacation";
vacation :subject "One" "first";
vacation :subject "Two" "second";
