require "ereject";
ereject "Refused at the door.";
