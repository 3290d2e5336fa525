//! Containers: docker's create request (`config`) and the OCI runtime spec built from it (`spec`).
pub mod config;
pub mod spec;
