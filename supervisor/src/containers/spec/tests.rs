//! The spec compared with what dockerd 20.10 wrote for the same flags (testdata/), and one test
//! per rule.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::*;
use crate::containers::config::{CreateRequest, Mount as ApiMount, TmpfsOptions};

const DOCKERD_DEFAULT: &str = include_str!("../testdata/dockerd-spec-default.json");
const DOCKERD_FLAGS: &str = include_str!("../testdata/dockerd-spec-flags.json");
const DOCKERD_HOST_NS: &str = include_str!("../testdata/dockerd-spec-host-namespaces.json");
const ID: &str = "c42f4bb6b794ea729afda3d5b87b28c67e40876265be16c1d59f69a27cca9a5d";

/// A rootfs with the /etc/passwd and /etc/group of the image dockerd ran.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub etc: EtcFiles,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
             alice:x:1000:1001:Alice:/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nusers:x:100:alice\ngrp1001:x:1001:\nextra:x:2000:alice,bob\n",
        )
        .unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        let etc = EtcFiles {
            hosts: files.join("hosts"),
            hostname: files.join("hostname"),
            resolv_conf: files.join("resolv.conf"),
        };
        Fixture { dir, etc }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

pub(crate) fn host() -> HostFacts {
    HostFacts {
        bounding: caps::ALL
            .iter()
            .copied()
            .filter(|c| *c != "CAP_SYS_RESOURCE")
            .collect(),
        arch: "amd64",
        kernel: (6, 1),
        cgroup_v2: false,
        init: Some(PathBuf::from("/usr/bin/docker-init")),
        ncpu: 2,
        dev: PathBuf::from("/dev"),
    }
}

/// A merged request: `docker create [flags] IMAGE cmd…` for the fixture's image (`CMD ["sh"]`).
fn request(json: Value) -> CreateRequest {
    let mut r: CreateRequest = serde_json::from_value(json).unwrap();
    let image = Config {
        cmd: Some(vec!["sh".into()]),
        ..Config::default()
    };
    merge::merge(&mut r.config, &image).unwrap();
    merge::fill_hostname(&mut r.config, &r.host_config, ID, "vm");
    r
}

fn build_with(
    f: &Fixture,
    r: &CreateRequest,
    host: &HostFacts,
    joins: Joins,
) -> Result<Spec, SpecError> {
    build(&SpecInput {
        id: ID,
        name: "web",
        config: &r.config,
        host_config: &r.host_config,
        rootfs: &f.rootfs(),
        etc: &f.etc,
        joins,
        host,
    })
}

fn spec_json(r: &CreateRequest) -> Value {
    let f = Fixture::new();
    serde_json::to_value(build_with(&f, r, &host(), Joins::default()).unwrap()).unwrap()
}

fn err(r: Value) -> String {
    let f = Fixture::new();
    let r: CreateRequest = serde_json::from_value(r).unwrap();
    let mut c = r.config.clone();
    if c.cmd.is_none() && c.entrypoint.is_none() {
        c.cmd = Some(vec!["sh".into()]);
    }
    let r = CreateRequest { config: c, ..r };
    build_with(&f, &r, &host(), Joins::default())
        .unwrap_err()
        .to_string()
}

fn sorted(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Seccomp rules as a set of (name, action, args, errno) lines.
fn seccomp_rules(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in v["syscalls"].as_array().unwrap() {
        for name in rule["names"].as_array().unwrap() {
            let args: Vec<String> = rule["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|a| format!("{}:{}:{}", a["index"], a["value"], a["op"]))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(format!(
                "{} {} {:?} {}",
                name.as_str().unwrap(),
                rule["action"],
                args,
                rule["errnoRet"]
            ));
        }
    }
    out
}

/// Mounts without host-specific sources (bundle files, the rootfs of dockerd).
fn mount_lines(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let source = m["source"].as_str().unwrap_or_default();
            let source = if source.contains("/containers/") || source.contains("/files/") {
                "<file>".to_string()
            } else {
                source.to_string()
            };
            format!(
                "{} {} {} {}",
                m["destination"].as_str().unwrap(),
                m["type"].as_str().unwrap(),
                source,
                m["options"]
            )
        })
        .collect()
}

fn assert_same_as_dockerd(ours: &Value, docker: &Value, masked_extra: &[&str]) {
    let (p, d) = (&ours["process"], &docker["process"]);
    assert_eq!(p["user"], d["user"]);
    assert_eq!(p["args"], d["args"]);
    assert_eq!(p["env"], d["env"]);
    assert_eq!(p["cwd"], d["cwd"]);
    assert_eq!(p["terminal"], d["terminal"]);
    assert_eq!(p["rlimits"], d["rlimits"]);
    assert_eq!(p["noNewPrivileges"], d["noNewPrivileges"]);
    assert_eq!(p["oomScoreAdj"], d["oomScoreAdj"]);
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        let ours = p["capabilities"].get(set).map(sorted);
        let docker = d["capabilities"].get(set).map(sorted);
        assert_eq!(ours, docker, "capabilities.{set}");
    }
    assert_eq!(ours["root"]["readonly"], docker["root"]["readonly"]);
    assert_eq!(ours["hostname"], docker["hostname"]);
    assert_eq!(mount_lines(&ours["mounts"]), mount_lines(&docker["mounts"]));
    let (l, dl) = (&ours["linux"], &docker["linux"]);
    assert_eq!(l["sysctl"], dl["sysctl"]);
    for part in ["devices", "memory", "cpu", "pids"] {
        assert_eq!(
            l["resources"][part], dl["resources"][part],
            "resources.{part}"
        );
    }
    assert_eq!(l["namespaces"], dl["namespaces"]);
    assert_eq!(l["devices"], dl["devices"]);
    let mut masked = dl["maskedPaths"].as_array().unwrap().clone();
    masked.extend(masked_extra.iter().map(|m| json!(m)));
    assert_eq!(l["maskedPaths"], Value::Array(masked));
    assert_eq!(l["readonlyPaths"], dl["readonlyPaths"]);
    assert_eq!(
        l["seccomp"]["defaultAction"],
        dl["seccomp"]["defaultAction"]
    );
    assert_eq!(
        l["seccomp"]["architectures"],
        dl["seccomp"]["architectures"]
    );
    assert_eq!(seccomp_rules(&l["seccomp"]), seccomp_rules(&dl["seccomp"]));
}

#[test]
fn default_spec_is_dockerds() {
    let docker: Value = serde_json::from_str(DOCKERD_DEFAULT).unwrap();
    let ours = spec_json(&request(json!({"Cmd": ["sleep", "100"]})));
    assert_same_as_dockerd(&ours, &docker, &["/sys/devices/virtual/powercap"]);
    assert_eq!(ours["linux"]["cgroupsPath"], json!(format!("/berth/{ID}")));
    assert_eq!(ours["linux"]["seccomp"]["defaultErrnoRet"], json!(1));
}

#[test]
fn spec_with_most_run_flags_is_dockerds() {
    let src = tempfile::tempdir().unwrap();
    let new_src = src.path().join("newsrc");
    let r = request(json!({
        "Hostname": "h1", "Domainname": "example.org", "User": "alice", "Tty": true,
        "Env": ["A=1", "PATH=/x"], "WorkingDir": "/work", "Cmd": ["sleep", "1"],
        "HostConfig": {
            "ReadonlyRootfs": true, "Memory": 64 << 20, "MemorySwap": 128 << 20,
            "MemoryReservation": 32 << 20, "NanoCpus": 1_500_000_000i64, "CpuShares": 512,
            "CpusetCpus": "0", "PidsLimit": 100,
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "nproc", "Soft": 50, "Hard": 50}],
            "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"], "SecurityOpt": ["no-new-privileges"],
            "Tmpfs": {"/run": "rw,size=1m", "/t": ""},
            "Binds": [format!("{}:/h:ro", src.path().display()), format!("{}:/n", new_src.display())],
            "Mounts": [
                {"Type": "bind", "Source": src.path(), "Target": "/e", "ReadOnly": true},
                {"Type": "tmpfs", "Target": "/tt", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o1770}}
            ],
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rw"}],
            "Init": true, "ShmSize": 128 << 20, "Sysctls": {"net.ipv4.ip_forward": "1"},
            "OomScoreAdj": 100, "OomKillDisable": true, "GroupAdd": ["10", "extra"],
            "NetworkMode": "none", "CgroupParent": "foo"
        }
    }));
    mounts::create_bind_sources(&r.host_config).unwrap();
    assert!(new_src.is_dir(), "a missing -v source is created");
    let mut ours = spec_json(&r);
    let mut docker: Value = serde_json::from_str(DOCKERD_FLAGS).unwrap();
    // The bind sources are this test's temp dir; docker's were /tmp/ctrspec/{src,newsrc}.
    for m in docker["mounts"].as_array_mut().unwrap() {
        if let Some(s) = m["source"].as_str() {
            let s = s.replace("/tmp/ctrspec/src", &src.path().display().to_string());
            m["source"] = json!(s.replace("/tmp/ctrspec/newsrc", &new_src.display().to_string()));
        }
    }
    // dockerd's tmpfs map came out of a Go map in random order (/t, /run); ours is sorted.
    let dm = docker["mounts"].as_array_mut().unwrap();
    let t = dm.iter().position(|m| m["destination"] == "/t").unwrap();
    let run = dm.remove(t + 1);
    dm.insert(t, run);
    assert_same_as_dockerd(&ours, &docker, &["/sys/devices/virtual/powercap"]);
    assert_eq!(ours["linux"]["cgroupsPath"], json!(format!("foo/{ID}")));
    ours["linux"]["cgroupsPath"] = docker["linux"]["cgroupsPath"].clone();
    assert_eq!(ours["root"]["readonly"], json!(true));
}

#[test]
fn host_namespaces_are_dockerds() {
    let docker: Value = serde_json::from_str(DOCKERD_HOST_NS).unwrap();
    let r = request(json!({"Cmd": ["sleep", "1"], "HostConfig": {
        "IpcMode": "host", "PidMode": "host", "UTSMode": "host", "NetworkMode": "host", "UsernsMode": "host"
    }}));
    let ours = spec_json(&r);
    // dockerd joins its own "default" netns file for --network host; berth stays in the host's.
    assert_eq!(ours["linux"]["namespaces"], json!([{"type": "mount"}]));
    assert_eq!(
        docker["linux"]["namespaces"][1]["path"],
        json!("/tmp/ctrspec/dd/exec/netns/default")
    );
    assert_eq!(mount_lines(&ours["mounts"]), mount_lines(&docker["mounts"]));
    assert_eq!(ours["process"]["env"], docker["process"]["env"]);
    assert_eq!(ours.get("hostname"), None);
    assert_eq!(ours["linux"].get("sysctl"), None);
    assert_eq!(docker["linux"].get("sysctl"), None);
}

#[test]
fn network_container_joins_the_given_netns_and_none_gets_a_new_one() {
    let f = Fixture::new();
    let r = request(json!({"HostConfig": {"NetworkMode": "container:other"}}));
    let netns = Path::new("/proc/4242/ns/net");
    let spec = build_with(
        &f,
        &r,
        &host(),
        Joins {
            network: Some(netns),
            ..Joins::default()
        },
    )
    .unwrap();
    let v = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        v["linux"]["namespaces"][1],
        json!({"type": "network", "path": "/proc/4242/ns/net"})
    );
    assert_eq!(
        v["linux"].get("sysctl"),
        None,
        "no net sysctls in another container's netns"
    );
    let e = build_with(&f, &r, &host(), Joins::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("NetworkMode") && e.contains("container:other"),
        "{e}"
    );
    let v = spec_json(&request(json!({"HostConfig": {"NetworkMode": "none"}})));
    assert_eq!(v["linux"]["namespaces"][1], json!({"type": "network"}));
}

#[test]
fn ipc_modes_choose_dev_shm() {
    let shm = |hc: Value| {
        let v = spec_json(&request(json!({ "HostConfig": hc })));
        let m = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .cloned();
        (
            m,
            v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "ipc"),
        )
    };
    let (m, own) = shm(json!({}));
    assert_eq!(m.unwrap()["options"][4], "size=67108864");
    assert!(own);
    let (m, _) = shm(json!({"ShmSize": 1 << 20}));
    assert_eq!(m.unwrap()["options"][4], "size=1048576");
    let (m, own) = shm(json!({"IpcMode": "host"}));
    assert_eq!(
        (m.unwrap()["source"].clone(), own),
        (json!("/dev/shm"), false)
    );
    let (m, own) = shm(json!({"IpcMode": "none"}));
    assert_eq!((m, own), (None, true));
    assert!(err(json!({"HostConfig": {"IpcMode": "bogus"}})).contains("IpcMode"));
    assert!(err(json!({"HostConfig": {"ShmSize": -1}})).contains("ShmSize"));
}

#[test]
fn pid_uts_userns_cgroupns_modes() {
    let kinds = |hc: Value, v2: bool| {
        let f = Fixture::new();
        let h = HostFacts {
            cgroup_v2: v2,
            ..host()
        };
        let s = build_with(
            &f,
            &request(json!({ "HostConfig": hc })),
            &h,
            Joins::default(),
        )
        .unwrap();
        let v = serde_json::to_value(&s).unwrap();
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(json!({}), false),
        ["mount", "network", "uts", "pid", "ipc"]
    );
    assert_eq!(
        kinds(json!({}), true),
        ["mount", "network", "uts", "pid", "ipc", "cgroup"]
    );
    assert_eq!(
        kinds(json!({"CgroupnsMode": "host"}), true),
        ["mount", "network", "uts", "pid", "ipc"]
    );
    assert_eq!(
        kinds(json!({"CgroupnsMode": "private"}), false),
        ["mount", "network", "uts", "pid", "ipc", "cgroup"]
    );
    assert_eq!(
        kinds(json!({"PidMode": "host", "UTSMode": "host"}), false),
        ["mount", "network", "ipc"]
    );
    assert!(err(json!({"HostConfig": {"UsernsMode": "remap"}})).contains("UsernsMode"));
    assert!(err(json!({"HostConfig": {"PidMode": "bogus"}})).contains("PidMode \"bogus\""));
}

#[test]
fn entrypoint_rules_are_dockers() {
    let args = |json: Value| {
        let v = spec_json(&request(json));
        v["process"]["args"].clone()
    };
    assert_eq!(args(json!({})), json!(["sh"]), "the image's Cmd");
    assert_eq!(args(json!({"Cmd": ["ls", "-l"]})), json!(["ls", "-l"]));
    assert_eq!(
        args(json!({"Entrypoint": ["/bin/echo"]})),
        json!(["/bin/echo"]),
        "an entrypoint resets Cmd"
    );
    assert_eq!(
        args(json!({"Entrypoint": ["/bin/echo"], "Cmd": ["hi"]})),
        json!(["/bin/echo", "hi"])
    );
    assert_eq!(
        args(json!({"Entrypoint": [""], "Cmd": ["ls"]})),
        json!(["ls"]),
        "--entrypoint \"\""
    );
    assert_eq!(
        args(json!({"Entrypoint": "/bin/sh -c", "Cmd": "x"})),
        json!(["/bin/sh -c", "x"])
    );
    let mut c: Config = serde_json::from_value(json!({"Entrypoint": [""]})).unwrap();
    let image = Config {
        cmd: Some(vec!["sh".into()]),
        entrypoint: Some(vec!["/e".into()]),
        ..Config::default()
    };
    assert_eq!(
        merge::merge(&mut c, &image).unwrap_err().to_string(),
        "No command specified"
    );
    let mut c = Config::default();
    assert!(matches!(
        merge::merge(&mut c, &Config::default()),
        Err(SpecError::NoCommand)
    ));
    let mut c = Config::default();
    merge::merge(&mut c, &image).unwrap();
    assert_eq!(
        merge::args(&c).unwrap(),
        ["/e", "sh"],
        "the image's Entrypoint and Cmd"
    );
}

#[test]
fn init_wraps_the_command_and_is_bound_read_only() {
    let v = spec_json(&request(
        json!({"Cmd": ["sleep", "1"], "HostConfig": {"Init": true}}),
    ));
    assert_eq!(
        v["process"]["args"],
        json!(["/sbin/docker-init", "--", "sleep", "1"])
    );
    let m = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sbin/docker-init")
        .unwrap()
        .clone();
    assert_eq!(
        m,
        json!({"destination": "/sbin/docker-init", "type": "bind", "source": "/usr/bin/docker-init", "options": ["bind", "ro"]})
    );
    let f = Fixture::new();
    let h = HostFacts {
        init: None,
        ..host()
    };
    let e = build_with(
        &f,
        &request(json!({"HostConfig": {"Init": true}})),
        &h,
        Joins::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("docker-init is not available"),
        "{e}"
    );
}

#[test]
fn the_host_has_a_static_init_and_dynamic_ones_are_not_taken() {
    let init = host::find_init(&std::env::var("PATH").unwrap_or_default())
        .expect("docker-init, tini-static or catatonit installed (Makefile PACKAGES: tini)");
    assert!(host::is_static_elf(&init), "{}", init.display());
    let dynamic = std::fs::canonicalize("/proc/self/exe").unwrap();
    assert!(
        !host::is_static_elf(&dynamic),
        "the test binary has an ELF interpreter"
    );
    assert!(!host::is_static_elf(Path::new("/etc/passwd")));
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&dynamic, dir.path().join("docker-init")).unwrap();
    assert_eq!(
        host::find_init(dir.path().to_str().unwrap()),
        Some(init),
        "a dynamic docker-init is skipped"
    );
}

#[test]
fn capabilities_add_drop_all() {
    let caps = |hc: Value| {
        let v = spec_json(&request(json!({ "HostConfig": hc })));
        sorted(&v["process"]["capabilities"]["bounding"])
    };
    let default: BTreeSet<String> = caps::DEFAULT.iter().map(|s| s.to_string()).collect();
    assert_eq!(caps(json!({})), default);
    let c = caps(json!({"CapAdd": ["sys_admin"], "CapDrop": ["CAP_CHOWN", "mknod"]}));
    assert!(c.contains("CAP_SYS_ADMIN") && !c.contains("CAP_CHOWN") && !c.contains("CAP_MKNOD"));
    assert_eq!(c.len(), 13);
    let c = caps(json!({"CapDrop": ["ALL"], "CapAdd": ["NET_BIND_SERVICE"]}));
    assert_eq!(c, BTreeSet::from(["CAP_NET_BIND_SERVICE".to_string()]));
    let c = caps(json!({"CapAdd": ["ALL"], "CapDrop": ["NET_RAW"]}));
    assert_eq!(c.len(), 39, "the host's 40 but CAP_NET_RAW");
    assert!(
        !c.contains("CAP_SYS_RESOURCE"),
        "never more than the host's bounding set"
    );
    let c = caps(json!({"CapAdd": ["CHOWN"], "CapDrop": ["CHOWN"]}));
    assert!(c.contains("CAP_CHOWN"), "an add wins over a drop");
    assert_eq!(
        err(json!({"HostConfig": {"CapAdd": ["CAP_FOO"]}})),
        "invalid CapAdd: unknown capability: \"CAP_FOO\""
    );
    assert!(err(json!({"HostConfig": {"CapDrop": ["bar"]}})).contains("CapDrop"));
}

#[test]
fn non_root_users_get_only_the_bounding_set() {
    let v = spec_json(&request(json!({"User": "1000"})));
    let caps = &v["process"]["capabilities"];
    assert_eq!(caps["bounding"].as_array().unwrap().len(), 14);
    assert_eq!((caps.get("effective"), caps.get("permitted")), (None, None));
    let v = spec_json(&request(json!({"User": "0:extra"})));
    assert_eq!(
        v["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap()
            .len(),
        14
    );
}

#[test]
fn privileged_gets_the_hosts_bounding_set_devices_and_no_confinement() {
    let f = Fixture::new();
    let dev = tempfile::tempdir().unwrap();
    nix::sys::stat::mknod(
        &dev.path().join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    std::fs::set_permissions(
        dev.path().join("null"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    std::fs::create_dir(dev.path().join("pts")).unwrap();
    nix::sys::stat::mknod(
        &dev.path().join("pts/0"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o620),
        nix::sys::stat::makedev(136, 0),
    )
    .unwrap();
    std::fs::write(dev.path().join("notadevice"), "").unwrap();
    let h = HostFacts {
        dev: dev.path().to_path_buf(),
        ..host()
    };
    let r = request(json!({"HostConfig": {"Privileged": true, "CapDrop": ["CHOWN"]}}));
    let v = serde_json::to_value(build_with(&f, &r, &h, Joins::default()).unwrap()).unwrap();
    let caps = sorted(&v["process"]["capabilities"]["effective"]);
    let want: BTreeSet<String> = h.bounding.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        caps, want,
        "every capability the host has, and not CAP_SYS_RESOURCE it lacks"
    );
    assert!(v["linux"].get("seccomp").is_none());
    assert!(v["linux"].get("maskedPaths").is_none() && v["linux"].get("readonlyPaths").is_none());
    assert_eq!(
        v["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    assert_eq!(
        v["linux"]["devices"],
        json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}]),
        "device nodes of the host, not those of /dev/pts"
    );
    let sys = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap()
        .clone();
    assert_eq!(
        sys["options"],
        json!(["nosuid", "noexec", "nodev"]),
        "/sys is writable"
    );
}

#[test]
fn host_bounding_set_comes_from_proc() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let mask = u64::from_str_radix(hex, 16).unwrap();
    let names = caps::host_bounding().unwrap();
    assert_eq!(names.len(), mask.count_ones() as usize);
    assert_eq!(caps::from_mask(0b101), ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
}

#[test]
fn security_opts() {
    let v = spec_json(&request(
        json!({"HostConfig": {"SecurityOpt": ["seccomp=unconfined", "no-new-privileges:true"]}}),
    ));
    assert!(v["linux"].get("seccomp").is_none());
    assert_eq!(v["process"]["noNewPrivileges"], json!(true));
    let v = spec_json(&request(
        json!({"HostConfig": {"SecurityOpt": ["no-new-privileges=false", "systempaths=unconfined", "label=disable", "apparmor=unconfined"]}}),
    ));
    assert_eq!(v["process"].get("noNewPrivileges"), None);
    assert!(v["linux"].get("maskedPaths").is_none());
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                     {"name": "chmod", "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]});
    let v = spec_json(&request(
        json!({"HostConfig": {"SecurityOpt": [format!("seccomp={profile}")]}}),
    ));
    assert_eq!(
        v["linux"]["seccomp"],
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})
    );
    assert_eq!(
        err(json!({"HostConfig": {"SecurityOpt": ["bogus=1"]}})),
        "Invalid --security-opt: \"bogus=1\""
    );
    assert_eq!(
        err(json!({"HostConfig": {"SecurityOpt": ["seccomp=/some/file"]}})),
        "Invalid --security-opt: \"seccomp=/some/file\""
    );
    assert!(
        err(json!({"HostConfig": {"SecurityOpt": ["seccomp={\"defaultAction\": \"NOPE\"}"]}}))
            .contains("defaultAction \"NOPE\"")
    );
}

#[test]
fn seccomp_cli_option_reads_the_file_like_docker() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    std::fs::write(&file, "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n").unwrap();
    assert_eq!(
        seccomp::cli_option(file.to_str().unwrap()).unwrap(),
        "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"
    );
    assert_eq!(
        seccomp::cli_option("unconfined").unwrap(),
        "seccomp=unconfined"
    );
    let e = seccomp::cli_option("/nonexistent/p.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/p.json"), "{e}");
}

#[test]
fn masked_and_readonly_paths_can_be_set_through_the_api() {
    let v = spec_json(&request(
        json!({"HostConfig": {"MaskedPaths": ["/proc/x"], "ReadonlyPaths": []}}),
    ));
    assert_eq!(v["linux"]["maskedPaths"], json!(["/proc/x"]));
    assert_eq!(v["linux"].get("readonlyPaths"), Some(&json!([])));
}

#[test]
fn mounts_binds_tmpfs_and_their_errors() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path().display().to_string();
    let v = spec_json(&request(json!({"HostConfig": {
        "Binds": [format!("{s}:/a/b:rshared"), format!("{s}:/a")],
        "Mounts": [{"Type": "bind", "Source": s, "Target": "/m/", "BindOptions": {"NonRecursive": true, "Propagation": "slave"}}],
        "Tmpfs": {"/x": "exec,size=64k,mode=700,uid=1000"}
    }})));
    let lines = mount_lines(&v["mounts"]);
    let user: Vec<&String> = lines.iter().skip(7).collect();
    assert_eq!(
        user[0],
        &format!("/a bind {s} [\"rbind\",\"rprivate\"]"),
        "parents first"
    );
    assert_eq!(user[1], &format!("/m bind {s} [\"bind\",\"slave\"]"));
    assert_eq!(user[2], "/x tmpfs tmpfs [\"nosuid\",\"nodev\",\"rprivate\",\"exec\",\"size=64k\",\"mode=700\",\"uid=1000\"]");
    assert_eq!(user[3], &format!("/a/b bind {s} [\"rbind\",\"rshared\"]"));
    let e = err(
        json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/nonexistent/src", "Target": "/x"}]}}),
    );
    assert_eq!(
        e,
        "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/src"
    );
    assert!(
        err(json!({"HostConfig": {"Binds": ["relative:/x"]}})).contains("Binds \"relative:/x\"")
    );
    assert!(err(json!({"HostConfig": {"Binds": ["/tmp:x"]}})).contains("absolute"));
    assert!(err(json!({"HostConfig": {"Binds": ["/tmp:/"]}})).contains("can't be '/'"));
    assert!(
        err(json!({"HostConfig": {"Binds": ["/tmp:/x:bogus"]}})).contains("invalid mode: bogus")
    );
    assert!(
        err(json!({"HostConfig": {"Binds": ["/tmp:/x", "/tmp:/x/"]}}))
            == "Duplicate mount point: /x"
    );
    assert!(err(json!({"HostConfig": {"Tmpfs": {"/x": "bogus"}}}))
        .contains("unknown tmpfs option \"bogus\""));
    assert!(
        err(json!({"HostConfig": {"Mounts": [{"Type": "npipe", "Target": "/x"}]}}))
            == "invalid mount config for type \"npipe\": mount type unknown"
    );
    let r = request(json!({"HostConfig": {"Binds": [format!("{s}/made/here:/x")]}}));
    mounts::create_bind_sources(&r.host_config).unwrap();
    assert!(src.path().join("made/here").is_dir());
}

#[test]
fn a_user_mount_replaces_a_default_and_an_etc_file() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("hosts");
    std::fs::write(&file, "").unwrap();
    let v = spec_json(&request(json!({"HostConfig": {
        "Binds": [format!("{}:/etc/hosts:ro", file.display())],
        "Mounts": [{"Type": "tmpfs", "Target": "/dev/shm", "TmpfsOptions": {"SizeBytes": 3 << 20}}]
    }})));
    let ms = v["mounts"].as_array().unwrap();
    let at = |d: &str| {
        ms.iter()
            .filter(|m| m["destination"] == d)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(at("/etc/hosts").len(), 1);
    assert_eq!(at("/etc/hosts")[0]["source"], json!(file));
    assert_eq!(at("/dev/shm").len(), 1);
    assert_eq!(
        at("/dev/shm")[0]["options"],
        json!(["noexec", "nosuid", "nodev", "rprivate", "size=3m"])
    );
}

#[test]
fn tmpfs_mount_sizes_use_docker_suffixes() {
    let size = |bytes: i64| {
        let m = ApiMount {
            r#type: "tmpfs".into(),
            target: "/t".into(),
            tmpfs_options: Some(TmpfsOptions {
                size_bytes: bytes,
                mode: 0,
            }),
            ..ApiMount::default()
        };
        let v = spec_json(&request(json!({"HostConfig": {"Mounts": [m]}})));
        v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/t")
            .unwrap()["options"][4]
            .clone()
    };
    assert_eq!(size(2 << 30), json!("size=2g"));
    assert_eq!(size(5 << 20), json!("size=5m"));
    assert_eq!(size(1536), json!("size=1536"));
}

#[test]
fn devices_and_cgroup_rules() {
    let v = spec_json(&request(json!({"HostConfig": {
        "Devices": [{"PathOnHost": "/dev/zero", "PathInContainer": "", "CgroupPermissions": ""}],
        "DeviceCgroupRules": ["c 42:* rm", "a *:* r"]
    }})));
    let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(
        rules[8],
        json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"})
    );
    assert_eq!(
        rules[9],
        json!({"allow": true, "type": "c", "major": 42, "access": "rm"})
    );
    assert_eq!(rules[10], json!({"allow": true, "access": "r"}));
    assert_eq!(v["linux"]["devices"][0]["path"], json!("/dev/zero"));
    assert!(
        err(json!({"HostConfig": {"Devices": [{"PathOnHost": "/etc/passwd"}]}}))
            .contains("not a device node")
    );
    assert!(
        err(json!({"HostConfig": {"Devices": [{"PathOnHost": "/dev/nonexistent"}]}}))
            .contains("/dev/nonexistent")
    );
    assert!(err(json!({"HostConfig": {"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]}})).contains("rwx"));
    assert!(err(json!({"HostConfig": {"DeviceCgroupRules": ["c 1:3"]}}))
        .contains("DeviceCgroupRules \"c 1:3\""));
}

#[test]
fn resources_and_their_errors() {
    let v = spec_json(&request(
        json!({"HostConfig": {"Memory": 100 << 20, "MemorySwap": -1, "CpuPeriod": 50000, "CpuQuota": 25000, "PidsLimit": -1, "MemorySwappiness": 10}}),
    ));
    let r = &v["linux"]["resources"];
    assert_eq!(
        r["memory"],
        json!({"limit": 100 << 20, "swap": -1, "swappiness": 10, "disableOOMKiller": false})
    );
    assert_eq!(
        r["cpu"],
        json!({"shares": 0, "quota": 25000, "period": 50000})
    );
    assert_eq!(r.get("pids"), None, "-1 is unlimited");
    for (hc, field, text) in [
        (
            json!({"Memory": 1 << 20}),
            "Memory",
            "Minimum memory limit allowed is 6MB",
        ),
        (
            json!({"MemorySwap": 64 << 20}),
            "MemorySwap",
            "You should always set the Memory limit",
        ),
        (
            json!({"Memory": 64 << 20, "MemorySwap": 32 << 20}),
            "MemorySwap",
            "larger than memory limit",
        ),
        (
            json!({"Memory": 64 << 20, "MemoryReservation": 128 << 20}),
            "MemoryReservation",
            "can not be less than memory reservation",
        ),
        (
            json!({"NanoCpus": 3_000_000_000i64}),
            "NanoCpus",
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            json!({"NanoCpus": 1_000_000_000, "CpuPeriod": 1000}),
            "NanoCpus",
            "Conflicting options",
        ),
        (json!({"CpusetCpus": "0-"}), "CpusetCpus", "invalid cpuset"),
        (json!({"OomScoreAdj": 1001}), "OomScoreAdj", "[-1000, 1000]"),
        (
            json!({"MemorySwappiness": 101}),
            "MemorySwappiness",
            "0-100",
        ),
    ] {
        let e = err(json!({ "HostConfig": hc }));
        assert!(
            e.starts_with(&format!("invalid {field} ")) && e.contains(text),
            "{e}"
        );
    }
}

#[test]
fn ulimits_and_sysctls() {
    let v = spec_json(&request(
        json!({"HostConfig": {"Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}], "Sysctls": {"kernel.shmmax": "1024", "net.core.somaxconn": "10"}}}),
    ));
    assert_eq!(
        v["process"]["rlimits"],
        json!([{"type": "RLIMIT_CORE", "hard": 0, "soft": 0}])
    );
    assert_eq!(v["linux"]["sysctl"]["kernel.shmmax"], json!("1024"));
    assert_eq!(v["linux"]["sysctl"]["net.core.somaxconn"], json!("10"));
    assert!(
        err(json!({"HostConfig": {"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}}))
            .contains("invalid ulimit type")
    );
    assert!(
        err(json!({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 2, "Hard": 1}]}}))
            .contains("soft limit must be less than or equal to hard limit")
    );
    assert!(
        err(json!({"HostConfig": {"Sysctls": {"vm.swappiness": "1"}}}))
            .contains("Sysctls \"vm.swappiness\"")
    );
    assert!(err(
        json!({"HostConfig": {"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}})
    )
    .contains("host network namespace"));
    assert!(
        err(json!({"HostConfig": {"IpcMode": "host", "Sysctls": {"kernel.sem": "1"}}}))
            .contains("host IPC namespace")
    );
}

#[test]
fn stop_signals_parse_like_docker() {
    for (text, n) in [
        ("SIGTERM", 15),
        ("term", 15),
        ("9", 9),
        ("SIGUSR1", 10),
        ("RTMIN+3", 37),
        ("SIGRTMAX-2", 62),
        ("SIGRTMIN", 34),
        ("sys", 31),
    ] {
        assert_eq!(signal::parse("StopSignal", text).unwrap(), n, "{text}");
    }
    for bad in ["SIGFOO", "0", "65", "RTMIN+31", "", "RTMAX-x"] {
        let e = signal::parse("StopSignal", bad).unwrap_err().to_string();
        assert_eq!(e, format!("invalid StopSignal {bad:?}: invalid signal"));
    }
    assert!(err(json!({"StopSignal": "SIGNOPE"})).contains("StopSignal \"SIGNOPE\""));
}

#[test]
fn hostname_domainname_and_read_only_root() {
    let v = spec_json(&request(
        json!({"Domainname": "example.org", "HostConfig": {"ReadonlyRootfs": true}}),
    ));
    assert_eq!(v["hostname"], json!(&ID[..12]));
    assert_eq!(
        v["process"]["env"][1],
        json!(format!("HOSTNAME={}", &ID[..12]))
    );
    assert_eq!(
        v["linux"]["sysctl"]["kernel.domainname"],
        json!("example.org")
    );
    assert_eq!(v["root"]["readonly"], json!(true));
    let etc: Vec<_> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"].as_str().unwrap().starts_with("/etc/"))
        .collect();
    assert_eq!(etc.len(), 3);
    assert!(etc
        .iter()
        .all(|m| m["options"] == json!(["rbind", "ro", "rprivate"])));
    let mut c = Config::default();
    merge::fill_hostname(
        &mut c,
        &serde_json::from_value(json!({"NetworkMode": "host"})).unwrap(),
        ID,
        "myhost",
    );
    assert_eq!(c.hostname, "myhost");
}

#[test]
fn user_resolution_feeds_the_process() {
    let v = spec_json(&request(
        json!({"User": "alice", "WorkingDir": "/w", "HostConfig": {"GroupAdd": ["users", "7", "7"]}}),
    ));
    assert_eq!(
        v["process"]["user"],
        json!({"uid": 1000, "gid": 1001, "additionalGids": [1001, 100, 2000, 100, 7]})
    );
    assert_eq!(v["process"]["cwd"], json!("/w"));
    assert_eq!(
        err(json!({"User": "bob"})),
        "unable to find user bob: no matching entries in passwd file"
    );
    assert_eq!(
        err(json!({"HostConfig": {"GroupAdd": ["nogroup"]}})),
        "unable to find group nogroup: no matching entries in group file"
    );
}

#[test]
fn cgroups_paths() {
    assert_eq!(cgroups_path("", "abc"), Path::new("/berth/abc"));
    assert_eq!(cgroups_path("foo", "abc"), Path::new("foo/abc"));
    assert_eq!(cgroups_path("/a/b", "abc"), Path::new("/a/b/abc"));
}

#[test]
fn annotations_carry_the_name() {
    let v = spec_json(&request(json!({})));
    assert_eq!(v["annotations"], json!({"org.berth.container.name": "web"}));
}

#[test]
fn probe_reads_this_host() {
    let h = HostFacts::probe().unwrap();
    assert_eq!(h.bounding, caps::host_bounding().unwrap());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let v2 = mounts.lines().any(|l| {
        l.split(' ').nth(1) == Some("/sys/fs/cgroup") && l.split(' ').nth(2) == Some("cgroup2")
    });
    assert_eq!(h.cgroup_v2, v2);
    assert_eq!(h.arch, host::go_arch(std::env::consts::ARCH));
    assert!(h.kernel >= (4, 0), "{:?}", h.kernel);
    assert_eq!(host::kernel_version("6.1.0-18-amd64"), (6, 1));
}

#[test]
fn working_dir_healthcheck_and_restart_policy_are_checked() {
    assert_eq!(
        err(json!({"WorkingDir": "rel"})),
        "invalid WorkingDir \"rel\": it needs to be an absolute path"
    );
    assert!(
        err(json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}}))
            .contains("Healthcheck.Interval \"5\": cannot be less than 1ms")
    );
    assert!(err(json!({"Healthcheck": {"Retries": -1}})).contains("Healthcheck.Retries"));
    assert!(
        err(json!({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}))
            .contains("RestartPolicy \"sometimes\"")
    );
    assert!(err(
        json!({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}})
    )
    .contains("cannot be used with this restart policy"));
    assert!(err(
        json!({"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}})
    )
    .contains("cannot be negative"));
    assert!(
        err(json!({"HostConfig": {"AutoRemove": true, "RestartPolicy": {"Name": "always"}}}))
            .contains("AutoRemove")
    );
    let ok = request(
        json!({"HostConfig": {"AutoRemove": true, "RestartPolicy": {"Name": "no"}}, "Healthcheck": {"Interval": 1_000_000}}),
    );
    check(&ok.config, &ok.host_config, &host()).unwrap();
}

#[test]
fn seccomp_with_cap_changes_is_dockerds() {
    let docker: Value = serde_json::from_str(include_str!(
        "../testdata/dockerd-seccomp-by-capability.json"
    ))
    .unwrap();
    for (key, want) in docker.as_object().unwrap() {
        let hc = match key.strip_prefix('-') {
            Some(cap) => json!({"CapDrop": [cap]}),
            None => json!({"CapAdd": [key]}),
        };
        let ours = spec_json(&request(json!({ "HostConfig": hc })));
        let ours = seccomp_rules(&ours["linux"]["seccomp"]);
        let want = seccomp_rules(want);
        let extra: Vec<_> = ours.difference(&want).collect();
        let missing: Vec<_> = want.difference(&ours).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{key}: extra {extra:?}, missing {missing:?}"
        );
    }
}
