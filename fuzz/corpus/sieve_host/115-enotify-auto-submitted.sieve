require "enotify";
notify "mailto:alice-phone@example.net";
