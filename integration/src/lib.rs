//! Shared helpers for berth tests and benchmarks: real root filesystems, bundles, a wrapper
//! around any runc-compatible runtime binary, a console-socket receiver, host-side checks, a
//! throw-away cgroup tree seen through its own cgroup namespace ([`cgroupns`]), a
//! local image registry ([`registry`]), OCI image layouts to push to it ([`oci_image`]), and a
//! qemu VM that runs a test binary on a kernel of its own ([`vm`]), and a private containerd
//! with its CRI plugin and a CRI client ([`cri`]).
pub mod bundle;
pub mod cgroupns;
pub mod console;
pub mod cri;
pub mod host;
pub mod oci_image;
pub mod registry;
pub mod rootfs;
pub mod runtime;
pub mod vm;
