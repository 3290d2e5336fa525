//! Wire protocols shared by the shim and the supervisor: containerd's own Task, Events and
//! cgroup metrics types (from `containerd-shim-protos`), re-exported so that callers depend on
//! one crate and one version of `protobuf`/`ttrpc`.
pub use containerd_shim_protos::{api, cgroups, cgroups_v2, events, protobuf, shim, ttrpc, types};
pub use containerd_shim_protos::{
    create_events, create_task, Events, EventsClient, Task, TaskClient,
};
