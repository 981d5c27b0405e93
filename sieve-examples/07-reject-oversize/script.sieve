require "reject";
if size :over 20K {
    reject "Messages over 20 KB are not accepted at this address; please send a link instead.";
}
