//! daemon (stub, being written)
