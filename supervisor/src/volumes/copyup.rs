//! Copy-up: an image directory's content into an empty volume (step 2).
