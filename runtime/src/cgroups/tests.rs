//! Tests against the real kernel (run as root). Each test uses its own cgroup name and removes
//! it. `limits_on_detected_layout` exercises whatever the host has per controller (on this hybrid
//! host: v1 for most, cgroup2 for hugetlb and for controllers released from v1);
//! `v2_for_real` treats the cgroup2 mount as a pure v2 host: eBPF devices, cgroup.freeze,
//! cgroup.kill, and every controller the cgroup2 hierarchy offers. Set
//! BERTH_CGROUP_V2_REQUIRE=pids,cpu,… to make it fail unless those controllers are on cgroup2.
use super::convert::{blkio_weight_to_io_weight, shares_to_weight, swap_to_v2};
use super::path::{place, resolve, Wanted};
use super::*;
use serde_json::json;
use std::io::Write;
use std::process::{Child, Command, ExitStatus, Stdio};

fn name(test: &str) -> PathBuf {
    PathBuf::from(format!("/berth-cgtest-{}-{test}", std::process::id()))
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("resources JSON")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Proc {
    fn sleep() -> Proc {
        Proc(
            Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("spawn sleep"),
        )
    }
    /// `sh -c script` that waits for a line on stdin before running the rest.
    fn gated(script: &str) -> Proc {
        let child = Command::new("sh")
            .args(["-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        Proc(child)
    }
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
    fn release(&mut self) {
        self.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    fn release_and_wait(&mut self) -> ExitStatus {
        self.release();
        self.0.wait().unwrap()
    }
    fn wait_signal(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.0.wait().unwrap().signal()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A whole disk for throttle rules (vda here).
fn block_device() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| n.starts_with("loop") || n.starts_with("zram") || n.starts_with("ram"));
    read(&Path::new("/sys/block").join(&names[0]).join("dev"))
}

/// Kills what is left and removes the cgroup when a test ends, even by a failed assertion.
struct Cleanup(Cgroup);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.kill_all(libc::SIGKILL);
        let _ = self.0.thaw();
        let _ = self.0.delete();
    }
}

fn assert_gone(cg: &Cgroup) {
    for d in cg.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

// ---------------------------------------------------------------- pure logic

#[test]
fn cgroups_paths_resolve_like_runc() {
    assert_eq!(
        resolve("", "c1", false).unwrap(),
        Wanted::Relative("c1".into())
    );
    assert_eq!(
        resolve("/a/b", "c1", false).unwrap(),
        Wanted::Absolute("/a/b".into())
    );
    assert_eq!(
        resolve("/a/./x/../b", "c1", false).unwrap(),
        Wanted::Absolute("/a/b".into())
    );
    assert_eq!(
        resolve("x/y", "c1", false).unwrap(),
        Wanted::Relative("x/y".into())
    );
    for bad in ["/a/../../etc", "../x", "a/../..", ".."] {
        let e = resolve(bad, "c1", false).unwrap_err().to_string();
        assert!(
            e.contains("escapes") || e.contains("names no cgroup"),
            "{bad}: {e}"
        );
    }
    let sd = |p: &str| resolve(p, "c1", true).unwrap().display_path();
    assert_eq!(sd(""), PathBuf::from("/system.slice/runc-c1.scope"));
    assert_eq!(
        sd("system.slice:docker:abc"),
        PathBuf::from("/system.slice/docker-abc.scope")
    );
    assert_eq!(
        sd(":crio:abc"),
        PathBuf::from("/system.slice/crio-abc.scope")
    );
    assert_eq!(
        sd("a-b.slice:p:n"),
        PathBuf::from("/a.slice/a-b.slice/p-n.scope")
    );
    assert_eq!(
        sd("machine.slice::x.slice"),
        PathBuf::from("/machine.slice/x.slice")
    );
    for bad in ["/plain/path", "a:b", "bad:p:n", "system.slice:p:../x"] {
        assert!(resolve(bad, "c1", true).is_err(), "{bad} accepted");
    }
    let rel = Wanted::Relative("c1".into());
    assert_eq!(
        place(&rel, Some(Path::new("/x/y")), false),
        PathBuf::from("/x/y/c1")
    );
    assert_eq!(
        place(&rel, Some(Path::new("/x/y")), true),
        PathBuf::from("/x/c1")
    );
    assert_eq!(
        place(&rel, Some(Path::new("/")), true),
        PathBuf::from("/c1")
    );
}

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

#[test]
fn layouts_parse_from_mountinfo() {
    let l = Layout::from_mountinfo(HYBRID);
    let ctrls: Vec<&Vec<String>> = l.v1.iter().map(|m| &m.controllers).collect();
    assert_eq!(
        ctrls,
        [
            &vec!["cpu".to_string(), "cpuacct".into()],
            &vec!["memory".into()],
            &vec!["name=systemd".into()]
        ]
    );
    assert_eq!(
        l.unified.as_ref().unwrap().mount_point,
        PathBuf::from("/sys/fs/cgroup/unified")
    );

    let v2 =
        Layout::from_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
    assert!(v2.v1.is_empty());
    assert_eq!(
        v2.unified.unwrap().mount_point,
        PathBuf::from("/sys/fs/cgroup")
    );

    // Inside a cgroup namespace the mount root is not "/".
    let m = V1Mount {
        mount_point: "/sys/fs/cgroup/memory".into(),
        root: "/outer".into(),
        controllers: vec!["memory".into()],
    };
    assert_eq!(
        m.dir_for(Path::new("/outer/c1")),
        PathBuf::from("/sys/fs/cgroup/memory/c1")
    );

    let own = layout::OwnCgroups::parse("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice/s.scope\n");
    assert_eq!(own.v1_path(&["memory".into()]), Some(Path::new("/a/b")));
    assert_eq!(own.v1_path(&["cpuacct".into()]), Some(Path::new("/")));
    assert_eq!(own.v2.as_deref(), Some(Path::new("/user.slice/s.scope")));
}

#[test]
fn v1_values_convert_to_v2_like_runc() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(blkio_weight_to_io_weight(10), 1);
    assert_eq!(blkio_weight_to_io_weight(500), 4950);
    assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    assert_eq!(swap_to_v2(-1, Some(100)).unwrap(), Some(-1));
    assert_eq!(swap_to_v2(300, Some(100)).unwrap(), Some(200));
    assert_eq!(swap_to_v2(100, Some(100)).unwrap(), Some(0));
    assert_eq!(swap_to_v2(0, Some(-1)).unwrap(), Some(-1));
    assert_eq!(swap_to_v2(0, Some(100)).unwrap(), None);
    assert!(swap_to_v2(50, Some(100)).is_err());
    assert!(swap_to_v2(200, None).is_err());
}

#[test]
fn device_program_is_well_formed() {
    let p = validate::device_rules(
        &res(json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}
        ]}))
        .devices()
        .clone()
        .unwrap(),
    )
    .unwrap();
    assert!(!p.default_allow);
    assert_eq!(p.rules[0].v1_string(), "c 1:11 r");
    assert!(p.rules.iter().any(|r| r.v1_string() == "c 136:* rwm"));
    let insns = bpf::assemble(&p);
    // Every jump lands inside the program.
    for (i, ins) in insns.iter().enumerate() {
        // SAFETY: plain-old-data view of the 8-byte instruction.
        let raw: [u8; 8] = unsafe { std::mem::transmute(*ins) };
        if raw[0] & 0x07 == 0x05 && raw[0] != 0x95 {
            let off = i16::from_le_bytes([raw[2], raw[3]]);
            assert!(i as i64 + 1 + i64::from(off) < insns.len() as i64);
        }
    }
}

#[test]
fn cgroup_state_round_trips_through_json() {
    let cg = Cgroup::new(Some(Path::new("/x/y")), "c1", false).unwrap();
    let back: Cgroup = serde_json::from_str(&serde_json::to_string(&cg).unwrap()).unwrap();
    assert_eq!(cg, back);
    assert!(cg.dirs().iter().all(|d| d.ends_with("x/y")));
}

// ---------------------------------------------------------------- bad input

#[test]
fn invalid_values_are_refused_and_leave_nothing() {
    let cases = [
        (json!({"memory": {"limit": -5}}), "memory.limit"),
        (json!({"memory": {"swappiness": 150}}), "memory.swappiness"),
        (
            json!({"memory": {"limit": 1000000, "swap": 10}}),
            "memory.swap",
        ),
        (json!({"cpu": {"shares": 1}}), "cpu.shares"),
        (json!({"cpu": {"quota": 10}}), "cpu.quota"),
        (json!({"cpu": {"period": 5}}), "cpu.period"),
        (json!({"cpu": {"cpus": "0-x"}}), "cpu.cpus"),
        (json!({"pids": {"limit": -3}}), "pids.limit"),
        (json!({"blockIO": {"weight": 5}}), "blockIO.weight"),
        (
            json!({"blockIO": {"throttleReadBpsDevice": [{"major": 4095, "minor": 4095, "rate": 1}]}}),
            "4095:4095",
        ),
        (
            json!({"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]}),
            "hugepageLimits.pageSize",
        ),
        (
            json!({"devices": [{"allow": true, "access": "rwx"}]}),
            "devices[0].access",
        ),
        (json!({"unified": {"../escape": "1"}}), "unified"),
    ];
    let cg = Cgroup::new(Some(&name("invalid")), "c1", false).unwrap();
    let _cleanup = Cleanup(cg.clone());
    let child = Proc::sleep();
    for (r, field) in cases {
        let err = cg
            .create_and_join(child.pid(), Some(&res(r.clone())))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(field),
            "{r}: error {err:?} does not name {field}"
        );
        assert_gone(&cg);
    }
}

#[test]
fn a_failure_after_mkdir_rolls_back() {
    // Valid syntax, but no such huge page size: found only when writing, after the mkdirs.
    let cg = Cgroup::new(Some(&name("rollback")), "c1", false).unwrap();
    let _cleanup = Cleanup(cg.clone());
    let child = Proc::sleep();
    let r =
        res(json!({"pids": {"limit": 10}, "hugepageLimits": [{"pageSize": "3MB", "limit": 0}]}));
    let err = cg
        .create_and_join(child.pid(), Some(&r))
        .unwrap_err()
        .to_string();
    assert!(err.contains("3MB"), "{err}");
    assert_gone(&cg);
}

// ---------------------------------------------------------------- the host as detected

#[test]
fn limits_on_detected_layout() {
    let cg = Cgroup::new(Some(&name("detected")), "c1", false).unwrap();
    let _cleanup = Cleanup(cg.clone());
    let dev = block_device();
    let (major, minor) = dev.split_once(':').unwrap();
    let r = res(json!({
        "memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 32},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "blockIO": {"throttleReadBpsDevice": [{"major": major.parse::<i64>().unwrap(), "minor": minor.parse::<i64>().unwrap(), "rate": 1048576}]},
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}],
    }));
    // Memory is charged to the cgroup once the child execs inside it.
    let mut child = Proc::gated("exec sleep 300");
    cg.create_and_join(child.pid(), Some(&r)).unwrap();
    child.release();
    let charged = fs::wait_for(std::time::Duration::from_secs(2), || {
        Ok(cg.stats()?["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap_or(0)
            > 0)
    });
    assert!(
        charged.unwrap(),
        "no memory charged to the cgroup: {}",
        cg.stats().unwrap()
    );
    let mut checked = Vec::new();

    match cg.place("memory") {
        Place::V1(d) => {
            assert_eq!(read(&d.join("memory.limit_in_bytes")), "67108864");
            assert_eq!(read(&d.join("memory.soft_limit_in_bytes")), "33554432");
            assert_eq!(read(&d.join("memory.swappiness")), "10");
            checked.push("memory:v1");
        }
        Place::V2(d) => {
            assert_eq!(read(&d.join("memory.max")), "67108864");
            assert_eq!(read(&d.join("memory.low")), "33554432");
            checked.push("memory:v2");
        }
        Place::Missing => panic!("no memory controller"),
    }
    match cg.place("cpu") {
        Place::V1(d) => {
            assert_eq!(read(&d.join("cpu.shares")), "512");
            assert_eq!(read(&d.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(&d.join("cpu.cfs_period_us")), "100000");
            checked.push("cpu:v1");
        }
        Place::V2(d) => {
            assert_eq!(
                read(&d.join("cpu.weight")),
                shares_to_weight(512).to_string()
            );
            assert_eq!(read(&d.join("cpu.max")), "50000 100000");
            checked.push("cpu:v2");
        }
        Place::Missing => panic!("no cpu controller"),
    }
    for (ctrl, file, want) in [("cpuset", "cpuset.cpus", "0"), ("pids", "pids.max", "32")] {
        match cg.place(ctrl) {
            Place::V1(d) | Place::V2(d) => assert_eq!(read(&d.join(file)), want, "{ctrl}"),
            Place::Missing => panic!("no {ctrl} controller"),
        }
    }
    match cg.place("hugetlb") {
        Place::V1(d) => assert_eq!(read(&d.join("hugetlb.2MB.limit_in_bytes")), "4194304"),
        Place::V2(d) => assert_eq!(read(&d.join("hugetlb.2MB.max")), "4194304"),
        Place::Missing => panic!("no hugetlb controller"),
    }
    match (cg.place("blkio"), cg.place("io")) {
        (Place::V1(d), _) => assert!(
            read(&d.join("blkio.throttle.read_bps_device")).contains(&format!("{dev} 1048576"))
        ),
        (_, Place::V2(d)) => {
            assert!(read(&d.join("io.max")).contains(&format!("{dev} rbps=1048576")))
        }
        _ => panic!("no blkio/io controller"),
    }
    match cg.v1.get("devices") {
        Some(d) => {
            let list = read(&d.join("devices.list"));
            assert!(
                list.contains("c 1:11 r")
                    && list.contains("c 1:3 rwm")
                    && !list.contains("a *:* rwm"),
                "{list}"
            );
        }
        None => assert_eq!(
            bpf::attached_count(cg.unified.as_ref().unwrap()).unwrap(),
            1
        ),
    }
    for d in cg.dirs() {
        assert_eq!(
            read(&d.join("cgroup.procs")),
            child.pid().to_string(),
            "{}",
            d.display()
        );
    }
    assert_eq!(cg.pids().unwrap(), vec![child.pid()]);

    let stats = cg.stats().unwrap();
    assert_eq!(stats["pids"]["current"], 1, "{stats}");
    assert_eq!(stats["pids"]["limit"], 32, "{stats}");
    assert_eq!(stats["memory"]["usage"]["limit"], 67108864, "{stats}");

    cg.update(&res(
        json!({"pids": {"limit": 64}, "memory": {"limit": 134217728}}),
    ))
    .unwrap();
    if let Place::V1(d) | Place::V2(d) = cg.place("pids") {
        assert_eq!(read(&d.join("pids.max")), "64");
    }
    let err = cg
        .update(&res(
            json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}}),
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkBeforeUpdate"), "{err}");

    // network: v1-only controllers.
    let net = res(
        json!({"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}}),
    );
    match (cg.v1.get("net_cls"), cg.v1.get("net_prio")) {
        (Some(cls), Some(prio)) => {
            cg.update(&net).unwrap();
            assert_eq!(read(&cls.join("net_cls.classid")), "1048577");
            assert!(read(&prio.join("net_prio.ifpriomap")).contains("lo 5"));
            checked.push("network:v1");
        }
        _ => {
            let err = cg.update(&net).unwrap_err().to_string();
            assert!(
                err.contains("network.classID") && err.contains("net_cls"),
                "{err}"
            );
            checked.push("network:none");
        }
    }

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    cg.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(child.wait_signal(), Some(libc::SIGTERM));
    cg.delete().unwrap();
    assert_gone(&cg);
    eprintln!(
        "limits_on_detected_layout checked {checked:?} (v1 = {:?}, v2 = {:?})",
        cg.v1.keys(),
        cg.v2_controllers
    );
}

#[test]
fn delete_waits_for_exiting_processes_and_kill_all_kills_every_process() {
    let cg = Cgroup::new(Some(&name("killall")), "c1", false).unwrap();
    let _cleanup = Cleanup(cg.clone());
    let mut a = Proc::sleep();
    let mut b = Proc::sleep();
    cg.create_and_join(a.pid(), None).unwrap();
    cg.join(b.pid()).unwrap();
    // No resources at all: devices are still restricted to the defaults, like runc.
    match cg.v1.get("devices") {
        Some(d) => {
            let list = read(&d.join("devices.list"));
            assert!(
                !list.contains("a *:* rwm") && list.contains("c 1:3 rwm"),
                "{list}"
            );
        }
        None => assert_eq!(
            bpf::attached_count(cg.unified.as_ref().unwrap()).unwrap(),
            1
        ),
    }
    let mut pids = cg.pids().unwrap();
    pids.sort();
    let mut want = vec![a.pid(), b.pid()];
    want.sort();
    assert_eq!(pids, want);
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(a.wait_signal(), Some(libc::SIGKILL));
    assert_eq!(b.wait_signal(), Some(libc::SIGKILL));
    cg.delete().unwrap();
    assert_gone(&cg);
    // Deleting again is fine.
    cg.delete().unwrap();
}

#[test]
fn a_shared_cgroup_is_refused_and_foreign_processes_are_spared() {
    let layout = Layout::detect().unwrap();
    let path = name("exclusive");
    let cg = Cgroup::with_layout(&layout, Some(&path), "c1", false).unwrap();
    let _cleanup = Cleanup(cg.clone());
    cg.ensure_exclusive(&layout).unwrap();
    let mut a = Proc::sleep();
    cg.create_and_join(a.pid(), None).unwrap();
    let again = Cgroup::with_layout(&layout, Some(&path), "c2", false).unwrap();
    let err = again.ensure_exclusive(&layout).unwrap_err().to_string();
    assert!(
        err.contains("container's cgroup is not empty: 1 process(es) found"),
        "{err}"
    );
    // A hierarchy's root is refused before anything in it is even counted.
    let root = Cgroup::with_layout(&layout, Some(Path::new("/")), "c3", false).unwrap();
    let err = root.ensure_exclusive(&layout).unwrap_err().to_string();
    assert!(err.contains("root cgroup"), "{err}");
    // Owned by a pid namespace the sleep is not in: spared by kill_all, and delete refuses.
    let mut owned = cg.clone();
    owned.owner_pid_ns = Some(PidNs { dev: 0, ino: 1 });
    owned.kill_all(libc::SIGKILL).unwrap();
    assert!(
        a.0.try_wait().unwrap().is_none(),
        "a foreign process was killed"
    );
    let err = owned.delete().unwrap_err().to_string();
    assert!(err.contains("not started for the container"), "{err}");
    // Owned by our own pid namespace: the sleep is the container's and is killed.
    owned.owner_pid_ns = Some(PidNs::of(std::process::id() as i32).unwrap());
    owned.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(a.wait_signal(), Some(libc::SIGKILL));
    owned.delete().unwrap();
    assert_gone(&cg);
}

// ---------------------------------------------------------------- cgroup2 as a pure v2 host

#[test]
fn v2_for_real() {
    let host = Layout::detect().unwrap();
    let mount = host
        .unified
        .expect("this test needs a cgroup2 mount")
        .mount_point;
    let layout = Layout::v2_at(&mount).unwrap();
    let have = |c: &str| layout.v2_controllers.iter().any(|x| x == c);
    if let Ok(required) = std::env::var("BERTH_CGROUP_V2_REQUIRE") {
        for c in required.split(',').filter(|c| !c.is_empty()) {
            assert!(
                have(c),
                "controller {c} is not on cgroup2 ({:?}); release it from v1 first (see .ci/run)",
                layout.v2_controllers
            );
        }
    }
    let cg = Cgroup::with_layout(&layout, Some(&name("v2")), "c1", false).unwrap();
    let _cleanup = Cleanup(cg.clone());
    let dir = cg.unified.clone().unwrap();
    assert!(cg.v1.is_empty());

    let mut r = json!({"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]});
    let mut exercised = vec!["devices(eBPF)", "freeze", "kill"];
    if have("pids") {
        r["pids"] = json!({"limit": 32});
        exercised.push("pids");
    }
    if have("cpu") {
        r["cpu"] =
            json!({"shares": 1024, "quota": 20000, "period": 100000, "burst": 1000, "idle": 0});
        exercised.push("cpu");
    }
    if have("cpuset") {
        r["cpu"]["cpus"] = json!("0");
        exercised.push("cpuset");
    }
    if have("memory") {
        r["memory"] = json!({"limit": 67108864, "reservation": 1048576, "swap": 100663296});
        exercised.push("memory");
    }
    if have("hugetlb") {
        r["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 2097152}]);
        exercised.push("hugetlb");
    }
    if have("io") {
        let dev = block_device();
        let (major, minor) = dev.split_once(':').unwrap();
        r["blockIO"] = json!({"throttleWriteIOPSDevice": [{"major": major.parse::<i64>().unwrap(), "minor": minor.parse::<i64>().unwrap(), "rate": 100}]});
        exercised.push("io");
    }
    let mut allowed_read = Proc::gated("true < /dev/kmsg");
    cg.create_and_join(allowed_read.pid(), Some(&res(r)))
        .unwrap();

    if have("pids") {
        assert_eq!(read(&dir.join("pids.max")), "32");
    }
    if have("cpu") {
        assert_eq!(read(&dir.join("cpu.weight")), "39");
        assert_eq!(read(&dir.join("cpu.max")), "20000 100000");
        assert_eq!(read(&dir.join("cpu.max.burst")), "1000");
    }
    if have("cpuset") {
        assert_eq!(read(&dir.join("cpuset.cpus")), "0");
    }
    if have("memory") {
        assert_eq!(read(&dir.join("memory.max")), "67108864");
        assert_eq!(read(&dir.join("memory.low")), "1048576");
        assert_eq!(read(&dir.join("memory.swap.max")), "33554432");
    }
    if have("hugetlb") {
        assert_eq!(read(&dir.join("hugetlb.2MB.max")), "2097152");
    }
    if have("io") {
        assert!(read(&dir.join("io.max")).contains("wiops=100"));
    }

    // Devices: the program allows reading /dev/kmsg (c 1:11 r) but not writing it.
    assert_eq!(bpf::attached_count(&dir).unwrap(), 1);
    assert!(
        allowed_read.release_and_wait().success(),
        "read of /dev/kmsg was denied"
    );
    let mut denied_write = Proc::gated("true > /dev/kmsg");
    cg.join(denied_write.pid()).unwrap();
    assert!(
        !denied_write.release_and_wait().success(),
        "write to /dev/kmsg was allowed"
    );
    let mut default_null = Proc::gated("true > /dev/null");
    cg.join(default_null.pid()).unwrap();
    assert!(
        default_null.release_and_wait().success(),
        "/dev/null (a default device) was denied"
    );
    // Update replaces the program: now reading is denied too, and only one program is attached.
    cg.update(&res(
        json!({"devices": [{"allow": false, "access": "rwm"}]}),
    ))
    .unwrap();
    assert_eq!(bpf::attached_count(&dir).unwrap(), 1);
    let mut denied_read = Proc::gated("true < /dev/kmsg");
    cg.join(denied_read.pid()).unwrap();
    assert!(
        !denied_read.release_and_wait().success(),
        "read of /dev/kmsg allowed after update"
    );

    // Freeze through cgroup.freeze.
    let mut a = Proc::sleep();
    let mut b = Proc::sleep();
    cg.join(a.pid()).unwrap();
    cg.join(b.pid()).unwrap();
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
    cg.thaw().unwrap();
    assert!(read(&dir.join("cgroup.events")).contains("frozen 0"));

    let stats = cg.stats().unwrap();
    assert!(stats["cpu"]["usage"]["total"].as_u64().is_some(), "{stats}");

    // SIGTERM: freeze, signal each, thaw. SIGKILL: cgroup.kill.
    cg.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(a.wait_signal(), Some(libc::SIGTERM));
    // Reaped before the SIGKILL: on a loaded machine that could overtake its SIGTERM.
    assert_eq!(b.wait_signal(), Some(libc::SIGTERM));
    let mut c = Proc::sleep();
    cg.join(c.pid()).unwrap();
    assert!(dir.join("cgroup.kill").exists());
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(c.wait_signal(), Some(libc::SIGKILL));

    cg.delete().unwrap();
    assert!(!dir.exists());
    eprintln!("v2_for_real exercised {exercised:?} on {}", mount.display());
}

/// The init's way in (join.rs): born in the cgroup2 part by clone3, walking into every v1
/// hierarchy itself; from there on it is where `join` would have put it, on every hierarchy.
#[test]
fn a_process_cloned_through_the_doors_is_in_the_cgroup_on_every_hierarchy() {
    let cg = Cgroup::new(Some(&name("doors")), "c1", false).unwrap();
    let _cleanup = Cleanup(cg.clone());
    cg.create(None).unwrap();
    let mut doors = cg.doors(&SubCgroups::default()).unwrap();
    let (walked_r, walked_w) = nix::unistd::pipe().unwrap();
    let pid = doors.clone(0).unwrap();
    if pid == 0 {
        // Only async-signal-safe work in this child of a multi-threaded test process.
        drop(walked_r);
        let code = match doors.walk_in() {
            Ok(()) => i32::from(nix::unistd::write(&walked_w, b"1").is_err()),
            Err(_) => 2,
        };
        // SAFETY: pause(2) and _exit(2) take nothing; the parent kills this process.
        unsafe {
            if code == 0 {
                libc::pause();
            }
            libc::_exit(code)
        }
    }
    drop(doors);
    drop(walked_w);
    let mut byte = [0u8; 1];
    let walked = nix::unistd::read(&walked_r, &mut byte);
    let dirs = cg.dirs();
    let missing: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| {
            !read(&d.join("cgroup.procs"))
                .lines()
                .any(|l| l == pid.to_string())
        })
        .collect();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    assert_eq!(
        walked.ok(),
        Some(1),
        "the child did not walk through the v1 doors"
    );
    assert!(missing.is_empty(), "pid {pid} is not in {missing:?}");
    assert!(!dirs.is_empty());
    cg.delete().unwrap();
}
