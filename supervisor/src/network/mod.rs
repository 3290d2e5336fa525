//! Networks: records and IPAM in a crash-safe store (`<data-root>/networks.redb`), the
//! predefined `bridge`, `host` and `none` networks, and endpoints (a container's address on a
//! network, reserved when it is created or connected and released when it leaves).
pub mod dns;
pub mod firewall;
pub mod forward;
pub mod hosts;
pub mod ipam;
pub mod link;
pub mod ports;
pub mod publish;
pub mod record;
pub mod resolvconf;
pub mod service;
pub mod store;

pub use record::{Endpoint, Network};
pub use service::{Error, NetworkService, Options};
