require "reject";
if size :over 1K {
    reject "Messages over 1K are not accepted here.";
}
