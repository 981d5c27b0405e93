# Admin before-script: editheader is allowed for admin scripts.
require "editheader";
addheader "X-Admin-Tag" "checked";
