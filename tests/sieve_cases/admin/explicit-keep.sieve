# Admin before-script with an explicit keep.
keep;
