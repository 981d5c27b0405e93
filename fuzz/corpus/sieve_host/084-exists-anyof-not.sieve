require "fileinto";
if anyof (exists "x-mailer", not exists "date") {
    fileinto "Odd";
} elsif allof (exists ["from", "to"], not header :contains "subject" "urgent") {
    fileinto "Normal";
}
