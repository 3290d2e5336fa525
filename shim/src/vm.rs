//! The cgroup v2 Stats and TaskOOM tests (`cgroup_v2_tests`) inside a pure cgroup v2 kernel
//! (`cgroup_no_v1=all`) under qemu, with berth-integration's [`TestVm`]: this host is hybrid
//! and its cgroup2 hierarchy holds almost no controllers, so the shim's v2 paths run only there.
//!
//! Needs (Debian): qemu-system-x86, linux-image-amd64 (a kernel in /boot), busybox-static.
use berth_integration::vm::TestVm;

#[test]
fn cgroup_v2_tests_pass_on_a_pure_v2_kernel() {
    let console = TestVm::new("shim-v2")
        .setup("mount -t cgroup2 cgroup2 /sys/fs/cgroup")
        .setup("export BERTH_CGROUP_V2_REQUIRE=memory,pids,cpu")
        .cmdline("cgroup_no_v1=all")
        .timeout(std::time::Duration::from_secs(120))
        .run("cgroup_v2_tests:: --test-threads=1 --nocapture");
    for ran in [
        "stats_v2_for_real: memory usage",
        "oom_v2_for_real: TaskOOM reported",
        // child, stats_v2_for_real, oom_v2_for_real (their "... ok" lines interleave).
        "test result: ok. 3 passed; 0 failed",
    ] {
        assert!(console.contains(ran), "not in the VM's console: {ran:?}");
    }
}
