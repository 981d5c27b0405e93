require "vacation";
vacation :days 7 :subject "Out of office until 29 January"
    :addresses ["alice.smith@example.org"]
    "I am away until 29 January and will read your message when I am back.";
