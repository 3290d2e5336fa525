//! images (stub, being written)
