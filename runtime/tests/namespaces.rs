//! Namespaces: each new one differs from the host's, joined ones are shared, user mappings.
mod support;
use support::*;

/// `ns:[inode]` for each kind, as the container sees its own.
fn inside_ns(b: &mut Bundle) -> Vec<(String, String)> {
    b.set(
        "/process/args",
        json!([
            "sh",
            "-c",
            "for n in /proc/self/ns/*; do echo ${n##*/} $(readlink $n); done"
        ]),
    );
    let out = runtime().run_ok(b);
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ns_value(list: &[(String, String)], kind: &str) -> String {
    list.iter()
        .find(|(k, _)| k == kind)
        .unwrap_or_else(|| panic!("no {kind} in {list:?}"))
        .1
        .clone()
}

#[test]
fn every_namespace_is_new() {
    let mut b = Bundle::new(&["true"]);
    for kind in ["user", "cgroup"] {
        b.namespace(kind, None);
    }
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    // The busybox rootfs must be reachable by the mapped root.
    std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    let inside = inside_ns(&mut b);
    for (kind, file) in [
        ("pid", "pid"),
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("mount", "mnt"),
        ("user", "user"),
        ("cgroup", "cgroup"),
    ] {
        assert_ne!(
            ns_value(&inside, file),
            ns_of("self", file),
            "{kind} namespace is the host's"
        );
    }
}

#[test]
fn absent_namespace_is_shared_with_host() {
    let mut b = Bundle::new(&["true"]);
    b.without_namespace("network");
    let inside = inside_ns(&mut b);
    assert_eq!(ns_value(&inside, "net"), ns_of("self", "net"));
    assert_ne!(ns_value(&inside, "uts"), ns_of("self", "uts"));
}

#[test]
fn time_namespace_is_new() {
    let mut b = Bundle::new(&["true"]);
    b.namespace("time", None);
    let inside = inside_ns(&mut b);
    assert_ne!(ns_value(&inside, "time"), ns_of("self", "time"));
}

#[test]
fn namespace_joined_by_path_is_shared() {
    let rt = runtime();
    let holder = Bundle::new(&["sleep", "60"]);
    let hid = unique_id("nsholder");
    rt.start(&holder, &hid);
    let pid = rt.pid(&hid).to_string();
    let mut b = Bundle::new(&["true"]);
    for (kind, file) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        b.namespace(kind, Some(&format!("/proc/{pid}/ns/{file}")));
    }
    let inside = inside_ns(&mut b);
    for file in ["net", "ipc", "uts"] {
        assert_eq!(
            ns_value(&inside, file),
            ns_of(&pid, file),
            "{file} not joined"
        );
    }
    assert_ne!(ns_value(&inside, "mnt"), ns_of(&pid, "mnt"));
}

#[test]
fn user_namespace_maps_ids() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u",
    ]);
    b.namespace("user", None);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 200000, "size": 1000}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 300000, "size": 2000}]),
    );
    std::process::Command::new("chown")
        .args(["-R", "200000:300000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    let out = runtime().run_ok(&b);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["0", "200000", "1000"], "{out}");
    assert_eq!(rows[1], ["0", "300000", "2000"], "{out}");
    assert_eq!(rows[2], ["0"], "{out}");
}

#[test]
fn hostname_and_domainname() {
    let out = sh_with("hostname; cat /proc/sys/kernel/domainname", |b| {
        b.set("/hostname", json!("box-one"));
        b.set("/domainname", json!("example.test"));
    });
    assert_eq!(out, "box-one\nexample.test\n");
}

#[test]
fn sysctls_apply_in_the_container_only() {
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let out = sh_with(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
        |b| {
            b.set(
                "/linux/sysctl",
                json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}),
            );
        },
    );
    assert_eq!(out, "1\n123456789\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
}
