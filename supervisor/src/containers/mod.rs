//! Containers: records, lifecycle through the shim (`containerd-shim-berth-v2` over ttrpc),
//! logs, exec, attach.
//!
//! - [`record`]: what a container is (docker's Config/HostConfig/State) and [`store`] (redb).
//! - [`service`]: create/start/stop/kill/rm/wait, exits from shim [`events`], live restore.
//! - [`shim`]: starting a shim and its Task API; [`bundle`]: the bundle and its files.
//! - [`logs`]: json-file logs written by the logging binary under the shim, and read back.
//! - [`exec`]: processes started in a running container.
//! - [`config`]: docker's create request; [`spec`]: the OCI runtime spec built from it.
pub mod bundle;
pub mod config;
pub mod events;
pub mod exec;
pub mod fs;
pub mod health;
pub mod journal;
pub mod live_net;
pub mod logs;
pub mod names;
pub mod naming;
pub mod networking;
pub mod record;
pub mod restart;
pub mod service;
pub mod shim;
pub mod signal;
pub mod spec;
pub mod stats;
pub mod step;
pub mod store;
pub mod sweep;
pub mod volumes;
