require ["duplicate", "fileinto"];
if duplicate :header "x-event-id" :seconds 3600 {
    discard;
} else {
    fileinto "Events";
}
