# The user's active script when a wild script runs as the admin
# before-script: a user who never set up filters (keeps everything).
