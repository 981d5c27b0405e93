require "vacation";
vacation :days 3 :addresses ["alice.smith@example.org"] :subject "Away"
    "I am away; your mail to my old address is read on Monday.";
