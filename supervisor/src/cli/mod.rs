//! cli (stub, being written)
