require "reject";
reject text:
Your message was refused.
Please use the web form instead.
.
;
