//! api (stub, being written)
