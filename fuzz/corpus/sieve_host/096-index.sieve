require ["index", "fileinto"];
if header :index 2 :contains "received" "relay1" {
    fileinto "SecondHopRelay1";
}
if header :index 1 :last :contains "received" "relay0" {
    fileinto "FirstHopRelay0";
}
