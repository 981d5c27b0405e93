require "duplicate";
if duplicate :seconds 86400 {
    discard;
    stop;
}
