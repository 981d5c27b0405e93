# The message already passed a Pigeonhole redirect by this user.
redirect "bob@example.net";
