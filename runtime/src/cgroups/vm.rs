//! The cgroups tests on a pure cgroup v2 host, for real: boots a Linux kernel with
//! `cgroup_no_v1=all` under qemu/KVM, with an initramfs holding this very test binary (and its
//! shared libraries, busybox-static, and the `brd` RAM-disk module for an I/O-throttle target),
//! and runs every `cgroups::tests` test there with BERTH_CGROUP_V2_REQUIRE naming every
//! controller. This host's own cgroup2 hierarchy has almost no controllers (its v1 hierarchies
//! hold them, and the memory one is in use by the machine itself), so this is where memory, cpu,
//! cpuset, pids, io and hugetlb are exercised on v2.
//!
//! Needs (Debian): qemu-system-x86, linux-image-amd64 (a kernel in /boot), busybox-static,
//! xz-utils. BERTH_VM_KERNEL=/path/vmlinuz picks another kernel.
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every controller a pure v2 host offers that the tests can check.
const REQUIRED: &str = "memory,pids,cpu,cpuset,io,hugetlb";

fn kernel() -> PathBuf {
    if let Ok(k) = std::env::var("BERTH_VM_KERNEL") {
        return PathBuf::from(k);
    }
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    kernels.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
    });
    kernels.sort();
    kernels
        .pop()
        .expect("no kernel in /boot: apt-get install linux-image-amd64 (or set BERTH_VM_KERNEL)")
}

/// A newc cpio archive, written by hand (no cpio tool needed).
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Cpio {
        Cpio {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let name = name.trim_start_matches('/');
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, b"");
    }

    fn file(&mut self, name: &str, data: &[u8]) {
        self.entry(name, 0o100755, data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }
}

/// Shared libraries of `exe` (absolute paths, from ldd).
fn shared_libs(exe: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(exe).output().expect("run ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// The brd module (RAM disks), decompressed, for a block device inside the VM.
fn brd_module(kernel: &Path) -> Vec<u8> {
    let version = kernel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let dir = PathBuf::from(format!("/lib/modules/{version}/kernel/drivers/block"));
    for (name, decompress) in [
        ("brd.ko.xz", Some("xz")),
        ("brd.ko.zst", Some("zstd")),
        ("brd.ko", None),
    ] {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        return match decompress {
            None => std::fs::read(&path).unwrap(),
            Some(tool) => {
                let out = Command::new(tool)
                    .args(["-dc"])
                    .arg(&path)
                    .output()
                    .unwrap_or_else(|e| panic!("run {tool}: {e}"));
                assert!(out.status.success(), "{tool} -dc {}", path.display());
                out.stdout
            }
        };
    }
    panic!(
        "no brd module under {} (the kernel package's modules)",
        dir.display()
    );
}

const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
@MOUNTS@
echo 8 > /proc/sys/vm/nr_hugepages
insmod /brd.ko rd_nr=1 rd_size=8192
export BERTH_CGROUP_V2_REQUIRE=@REQUIRED@ RUST_BACKTRACE=1
if /test cgroups::tests:: --test-threads=2 --nocapture; then
  echo BERTH-VM-RESULT: ok
else
  echo BERTH-VM-RESULT: failed
fi
poweroff -f
"#;

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

fn initramfs(kernel: &Path, mounts: &str, required: &str) -> Vec<u8> {
    let exe = std::env::current_exe().unwrap();
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "needs busybox-static (/bin/busybox)");
    let mut c = Cpio::new();
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "lib", "lib64", "usr", "usr/lib", "etc",
    ] {
        c.dir(d);
    }
    c.file("bin/busybox", &std::fs::read(busybox).unwrap());
    for applet in [
        "sh", "mount", "mkdir", "sleep", "true", "cat", "insmod", "poweroff", "echo",
    ] {
        c.symlink(&format!("bin/{applet}"), "busybox");
    }
    let init = INIT
        .replace("@MOUNTS@", mounts)
        .replace("@REQUIRED@", required);
    c.file("init", init.as_bytes());
    c.file("test", &std::fs::read(&exe).unwrap());
    c.file("brd.ko", &brd_module(kernel));
    let mut dirs_made: Vec<PathBuf> = Vec::new();
    for lib in shared_libs(&exe) {
        for parent in lib
            .ancestors()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .skip(1)
        {
            if !dirs_made.contains(&parent.to_path_buf())
                && !["/lib", "/lib64", "/usr", "/usr/lib"].contains(&parent.to_str().unwrap())
            {
                c.dir(parent.to_str().unwrap());
                dirs_made.push(parent.to_path_buf());
            }
        }
        c.file(lib.to_str().unwrap(), &std::fs::read(&lib).unwrap());
    }
    c.finish()
}

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
    let kernel = kernel();
    let dir = std::env::temp_dir().join(format!("berth-cgvm-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = dir.join("initrd.cpio");
    std::fs::write(&initrd, initramfs(&kernel, mounts, required)).unwrap();
    std::fs::set_permissions(&initrd, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Command::new("qemu-system-x86_64")
        // TCG, not KVM: nested KVM on this (Firecracker) host fails to emulate the kernel's
        // decompressor; TCG boots in a few seconds.
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "1024",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet panic=-1 rdinit=/init {cmdline}"
        ))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("console")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("qemu-system-x86_64 (Debian: qemu-system-x86)");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let console = std::fs::read_to_string(dir.join("console"))
        .unwrap_or_default()
        .replace('\r', "");
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    std::io::stderr().write_all(console.as_bytes()).unwrap();
    assert!(status.is_some(), "the VM did not finish within 180s");
    assert!(
        console.contains("BERTH-VM-RESULT: ok"),
        "cgroups tests failed in the {name} VM (console above); qemu stderr: {stderr}"
    );
    console
}
