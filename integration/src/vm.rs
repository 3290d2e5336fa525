//! Run a crate's own tests inside a freshly booted Linux kernel, for real: boots the host's
//! kernel (the newest `/boot/vmlinuz-*`, or BERTH_VM_KERNEL) under qemu with an initramfs
//! holding the calling test binary (and its shared libraries and busybox-static), runs the
//! binary with the given test filter there, and returns the serial console. Used for what this
//! host cannot offer, like a pure cgroup v2 hierarchy (`cgroup_no_v1=all`).
//!
//! Needs (Debian): qemu-system-x86, linux-image-amd64 (a kernel in /boot), busybox-static,
//! xz-utils or zstd for compressed kernel modules.
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The line the init prints when the tests in the VM passed.
pub const RESULT_OK: &str = "BERTH-VM-RESULT: ok";

/// The kernel to boot: BERTH_VM_KERNEL, else the newest `/boot/vmlinuz-*`.
pub fn kernel() -> PathBuf {
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
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Default for Cpio {
    fn default() -> Self {
        Cpio::new()
    }
}

impl Cpio {
    pub fn new() -> Cpio {
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

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, b"");
    }

    /// An executable regular file.
    pub fn file(&mut self, name: &str, data: &[u8]) {
        self.entry(name, 0o100755, data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }
}

/// Shared libraries of `exe` (absolute paths, from ldd).
pub fn shared_libs(exe: &Path) -> Vec<PathBuf> {
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

/// The module `rel` (e.g. `drivers/block/brd`) of `kernel`'s modules, decompressed.
pub fn kernel_module(kernel: &Path, rel: &str) -> Vec<u8> {
    let version = kernel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let base = PathBuf::from(format!("/lib/modules/{version}/kernel/{rel}"));
    for (ext, decompress) in [
        (".ko.xz", Some("xz")),
        (".ko.zst", Some("zstd")),
        (".ko", None),
    ] {
        let path = PathBuf::from(format!("{}{ext}", base.display()));
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
        "no module {}.ko* (the kernel package's modules)",
        base.display()
    );
}

const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
@SETUP@
export RUST_BACKTRACE=1
if /test @ARGS@; then
  echo BERTH-VM-RESULT: ok
else
  echo BERTH-VM-RESULT: failed
fi
poweroff -f
"#;

/// busybox applets linked into `/bin`.
const APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "sleep", "true", "cat", "insmod", "poweroff", "echo", "dd",
];

/// A VM that runs the calling test binary: `setup` (shell lines, after proc, sys, dev and tmp
/// are mounted: cgroup mounts, `export`s, `insmod /name.ko`) then `/test ARGS`.
pub struct TestVm {
    name: String,
    setup: String,
    cmdline: String,
    files: Vec<(String, Vec<u8>)>,
    timeout: Duration,
}

impl TestVm {
    /// `name` names the VM in messages and its scratch directory.
    pub fn new(name: &str) -> TestVm {
        TestVm {
            name: name.into(),
            setup: String::new(),
            cmdline: String::new(),
            files: Vec::new(),
            timeout: Duration::from_secs(180),
        }
    }

    /// Shell lines run before the tests.
    pub fn setup(mut self, lines: &str) -> TestVm {
        self.setup.push_str(lines);
        self.setup.push('\n');
        self
    }

    /// More kernel command line (e.g. `cgroup_no_v1=all`).
    pub fn cmdline(mut self, args: &str) -> TestVm {
        self.cmdline = args.into();
        self
    }

    /// How long the VM may take, boot to power-off (default 180 s).
    pub fn timeout(mut self, timeout: Duration) -> TestVm {
        self.timeout = timeout;
        self
    }

    /// One more file in the initramfs (at `/name`).
    pub fn file(mut self, name: &str, data: Vec<u8>) -> TestVm {
        self.files.push((name.into(), data));
        self
    }

    fn initramfs(&self, test_args: &str) -> Vec<u8> {
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
        for applet in APPLETS {
            c.symlink(&format!("bin/{applet}"), "busybox");
        }
        let init = INIT
            .replace("@SETUP@", &self.setup)
            .replace("@ARGS@", test_args);
        c.file("init", init.as_bytes());
        c.file("test", &std::fs::read(&exe).unwrap());
        for (name, data) in &self.files {
            c.file(name, data);
        }
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

    /// Boot, run `/test test_args` (libtest arguments: a filter, `--test-threads=…`), and
    /// return the console (also echoed to stderr); panics unless the tests passed in time.
    pub fn run(&self, test_args: &str) -> String {
        let kernel = kernel();
        let dir =
            std::env::temp_dir().join(format!("berth-vm-{}-{}", std::process::id(), self.name));
        std::fs::create_dir_all(&dir).unwrap();
        let initrd = dir.join("initrd.cpio");
        std::fs::write(&initrd, self.initramfs(test_args)).unwrap();
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
                "console=ttyS0 quiet panic=-1 rdinit=/init {}",
                self.cmdline
            ))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("console")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("qemu-system-x86_64 (Debian: qemu-system-x86)");
        let deadline = Instant::now() + self.timeout;
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
        assert!(
            status.is_some(),
            "the {} VM did not finish within {:?}",
            self.name,
            self.timeout
        );
        assert!(
            console.contains(RESULT_OK),
            "tests failed in the {} VM (console above); qemu stderr: {stderr}",
            self.name
        );
        console
    }
}
