require ["variables", "fileinto"];
if header :matches "from" "* <*@*>" {
    set :lower "who" "${1}";
    set :upperfirst "dom" "${3}";
    set :length "len" "${2}";
    fileinto "People.${dom}.${who}.${len}";
}
