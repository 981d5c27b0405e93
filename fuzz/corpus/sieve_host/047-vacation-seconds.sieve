require "vacation-seconds";
vacation :seconds 60 :subject "Back in a minute" "Short break.";
