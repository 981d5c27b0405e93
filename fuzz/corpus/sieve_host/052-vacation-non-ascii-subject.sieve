require "vacation";
vacation :subject "Abwesenheitsnotiz – Grüße aus dem Urlaub" "Ich bin nicht im Büro.";
