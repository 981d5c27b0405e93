require ["encoded-character", "fileinto"];
fileinto "${unicode:00DC}bersicht.${hex:41 42}";
