//! A spec built by `containers::spec` for a busybox rootfs, run for real with `berth-runtime
//! run`: docker's capabilities, seccomp, masked and read-only paths, the user, --init and
//! --privileged take effect in the container.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_integration::rootfs;
use berth_supervisor::containers::config::CreateRequest;
use berth_supervisor::containers::spec::{
    self, caps, merge, EtcFiles, HostFacts, Joins, SpecInput,
};
use serde_json::{json, Value};

/// `target/release/berth-runtime`, next to this test's `deps/` directory.
fn runtime_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release/deps/..")
        .join("berth-runtime");
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p berth-runtime",
        bin.display()
    );
    bin
}

struct Container {
    dir: tempfile::TempDir,
}

impl Container {
    /// A bundle: a busybox rootfs with the user alice, the /etc files, config.json from `request`.
    fn new(request: Value) -> (Container, Value) {
        let dir = tempfile::Builder::new()
            .prefix("berth-spec-run")
            .tempdir()
            .unwrap();
        let root = dir.path().join("rootfs");
        rootfs::busybox(&root).expect("busybox rootfs (apt-get install busybox-static)");
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:alice\n").unwrap();
        let etc = EtcFiles {
            hosts: dir.path().join("hosts"),
            hostname: dir.path().join("hostname"),
            resolv_conf: dir.path().join("resolv.conf"),
        };
        std::fs::write(&etc.hosts, "127.0.0.1 localhost\n").unwrap();
        std::fs::write(&etc.hostname, "spec-test\n").unwrap();
        std::fs::write(&etc.resolv_conf, "nameserver 127.0.0.1\n").unwrap();

        let id = format!(
            "{:0>64}",
            format!("{}{}", std::process::id(), rand_suffix())
        );
        let mut r: CreateRequest = serde_json::from_value(request).unwrap();
        merge::merge(&mut r.config, &Default::default()).unwrap();
        merge::fill_hostname(&mut r.config, &r.host_config, &id, "host");
        let host = HostFacts::probe().unwrap();
        spec::check(&r.config, &r.host_config, &host).unwrap();
        let built = spec::build(&SpecInput {
            id: &id,
            name: "spec-test",
            config: &r.config,
            host_config: &r.host_config,
            rootfs: &root,
            etc: &etc,
            joins: Joins::default(),
            host: &host,
        })
        .unwrap();
        let value = serde_json::to_value(&built).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec_pretty(&value).unwrap(),
        )
        .unwrap();
        (Container { dir }, value)
    }

    /// `berth-runtime run`: the container's stdout; panics with its stderr on failure.
    fn run(&self) -> String {
        let state = tempfile::tempdir().unwrap();
        let id = format!("spec-{}-{}", std::process::id(), rand_suffix());
        let out = Command::new(runtime_bin())
            .arg("--root")
            .arg(state.path())
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "container failed ({:?}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

fn mask(names: &[&str]) -> String {
    let bits = names
        .iter()
        .map(|n| caps::ALL.iter().position(|c| c == n).unwrap())
        .fold(0u64, |m, b| m | 1 << b);
    format!("{bits:016x}")
}

const PROBE: &str = "cat /proc/self/status; \
    echo timer_list=$( (wc -c < /proc/timer_list) 2>&1); \
    echo firmware=$(ls /sys/firmware | wc -l); \
    echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys=writable || echo procsys=readonly; \
    unshare -U true 2>/dev/null && echo unshare=allowed || echo unshare=denied; \
    echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline); \
    echo shm=$(df -k /dev/shm | tail -1 | awk '{print $2}'); \
    echo id=$(id)";

#[test]
fn default_container_has_dockers_confinement() {
    let (c, _) = Container::new(json!({"Cmd": ["sh", "-c", PROBE]}));
    let out = c.run();
    assert_eq!(
        field(&out, "CapEff:"),
        mask(&caps::DEFAULT),
        "docker's 14 capabilities\n{out}"
    );
    assert_eq!(field(&out, "CapBnd:"), mask(&caps::DEFAULT));
    assert_eq!(field(&out, "Seccomp:"), "2", "a seccomp filter");
    assert_eq!(
        field(&out, "unshare="),
        "denied",
        "unshare is outside the default profile"
    );
    assert_eq!(
        field(&out, "timer_list="),
        "0",
        "/proc/timer_list is masked\n{out}"
    );
    assert_eq!(field(&out, "firmware="), "0", "/sys/firmware is masked");
    assert_eq!(field(&out, "procsys="), "readonly");
    assert_eq!(field(&out, "shm="), "65536", "/dev/shm is 64 MiB");
    assert_eq!(field(&out, "NoNewPrivs:"), "0");
    assert_eq!(field(&out, "id="), "uid=0(root) gid=0(root) groups=0(root)");
}

#[test]
fn user_init_and_no_new_privileges_take_effect() {
    let (c, spec) = Container::new(json!({
        "User": "alice", "Cmd": ["sh", "-c", PROBE],
        "HostConfig": {"Init": true, "SecurityOpt": ["no-new-privileges"], "GroupAdd": ["7"], "ShmSize": 8 << 20}
    }));
    assert_eq!(spec["process"]["args"][0], json!("/sbin/docker-init"));
    let out = c.run();
    assert_eq!(
        field(&out, "id="),
        "uid=1000(alice) gid=1001 groups=7,50(staff),1001"
    );
    assert_eq!(
        field(&out, "CapEff:"),
        "0000000000000000",
        "a non-root user has no effective capabilities"
    );
    assert_eq!(field(&out, "NoNewPrivs:"), "1");
    assert!(
        field(&out, "pid1=").starts_with("/sbin/docker-init --"),
        "{out}"
    );
    assert_eq!(field(&out, "shm="), "8192");
}

#[test]
fn unconfined_seccomp_and_cap_changes() {
    let (c, _) = Container::new(json!({
        "Cmd": ["sh", "-c", PROBE],
        "HostConfig": {"SecurityOpt": ["seccomp=unconfined"], "CapDrop": ["ALL"], "CapAdd": ["CHOWN", "SETUID"]}
    }));
    let out = c.run();
    assert_eq!(field(&out, "Seccomp:"), "0");
    assert_eq!(
        field(&out, "unshare="),
        "allowed",
        "the same call passes without the filter"
    );
    assert_eq!(field(&out, "CapEff:"), mask(&["CAP_CHOWN", "CAP_SETUID"]));
}

#[test]
fn privileged_container_gets_the_hosts_bounding_set() {
    let (c, _) =
        Container::new(json!({"Cmd": ["sh", "-c", PROBE], "HostConfig": {"Privileged": true}}));
    let out = c.run();
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        field(&out, "CapEff:"),
        field(&host, "CapBnd:"),
        "every capability the host has"
    );
    assert_eq!(field(&out, "Seccomp:"), "0");
    let timer_list: u64 = field(&out, "timer_list=")
        .parse()
        .expect("/proc/timer_list readable");
    assert!(timer_list > 0, "nothing is masked\n{out}");
    assert_ne!(field(&out, "firmware="), "0");
    assert_eq!(field(&out, "procsys="), "writable");
}
