//! `save` and `load`: docker-archive tarballs and OCI layouts. (Owner: the archive engineer.)
