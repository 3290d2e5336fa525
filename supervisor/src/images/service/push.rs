//! `push`: upload an image's blobs and manifest to its registry. (Owner: the registry engineer.)
