# Neither the user nor any :addresses appears in To/Cc: no reply.
require "vacation";
vacation :subject "Out of office" "I am away.";
