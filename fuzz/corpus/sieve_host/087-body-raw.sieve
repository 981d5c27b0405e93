require ["body", "fileinto"];
if body :raw :contains "=3D" {
    fileinto "RawQP";
} elsif body :text :contains "a=b" {
    fileinto "Decoded";
}
