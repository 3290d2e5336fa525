//! The cgroups tests on a pure cgroup v2 host, for real: boots a Linux kernel with
//! `cgroup_no_v1=all` under qemu (berth-integration's [`TestVm`]), with an initramfs holding
//! this very test binary (and its shared libraries, busybox-static, and the `brd` RAM-disk
//! module for an I/O-throttle target), and runs every `cgroups::tests` test there with
//! BERTH_CGROUP_V2_REQUIRE naming every controller. This host's own cgroup2 hierarchy has
//! almost no controllers (its v1 hierarchies hold them, and the memory one is in use by the
//! machine itself), so this is where memory, cpu, cpuset, pids, io and hugetlb are exercised
//! on v2.
//!
//! Needs (Debian): qemu-system-x86, linux-image-amd64 (a kernel in /boot), busybox-static,
//! xz-utils. BERTH_VM_KERNEL=/path/vmlinuz picks another kernel.
use berth_integration::vm::{kernel, kernel_module, TestVm};

/// Every controller a pure v2 host offers that the tests can check.
const REQUIRED: &str = "memory,pids,cpu,cpuset,io,hugetlb";

/// Pure v2: cgroup2 at /sys/fs/cgroup, every controller on it.
const PURE_V2: &str = "mount -t cgroup2 cgroup2 /sys/fs/cgroup";

/// Hybrid with a per-controller mix: v1 hierarchies for cpu, pids, devices, freezer, blkio,
/// net_cls/net_prio and hugetlb; memory, cpuset (no v1 support in this kernel), rdma and misc
/// stay on cgroup2 at /sys/fs/cgroup/unified.
const MIXED: &str = "mount -t tmpfs cgroup /sys/fs/cgroup
for c in cpu,cpuacct pids devices freezer blkio net_cls,net_prio hugetlb; do
  mkdir /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified";

#[test]
fn cgroups_tests_pass_on_a_pure_v2_kernel() {
    let console = boot("v2", PURE_V2, REQUIRED, "cgroup_no_v1=all");
    assert!(console.contains("v2_for_real exercised [\"devices(eBPF)\", \"freeze\", \"kill\", \"pids\", \"cpu\", \"cpuset\", \"memory\", \"hugetlb\", \"io\"]"));
    assert!(console.contains(
        "limits_on_detected_layout checked [\"memory:v2\", \"cpu:v2\", \"network:none\"]"
    ));
}

#[test]
fn cgroups_tests_pass_on_a_mixed_v1_v2_kernel() {
    let console = boot("mixed", MIXED, "memory,cpuset", "");
    assert!(console
        .contains("limits_on_detected_layout checked [\"memory:v2\", \"cpu:v1\", \"network:v1\"]"));
}

/// Boot the kernel with `mounts` as the cgroup setup, run the tests, return the console.
fn boot(name: &str, mounts: &str, required: &str, cmdline: &str) -> String {
    let brd = kernel_module(&kernel(), "drivers/block/brd");
    TestVm::new(&format!("cgroups-{name}"))
        .setup(mounts)
        .setup("echo 8 > /proc/sys/vm/nr_hugepages")
        .setup("insmod /brd.ko rd_nr=1 rd_size=8192")
        .setup(&format!("export BERTH_CGROUP_V2_REQUIRE={required}"))
        .cmdline(cmdline)
        .file("brd.ko", brd)
        .run("cgroups::tests:: --test-threads=2 --nocapture")
}
