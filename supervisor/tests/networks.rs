//! Networks through the real docker CLIs (Debian's 20.10 and the newer one) on `berth
//! daemon`: create/ls/inspect/rm/prune/connect/disconnect, IPAM (static addresses, no address
//! twice, overlaps refused, persisted across a restart), and docker's errors and exit codes.
//! The daemon runs in a network namespace of its own (`unshare --net`), with private pools.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const CLIS: [&str; 2] = ["/usr/bin/docker", "/usr/local/bin/docker"];

/// The daemon in its own network namespace, default bridge and pools on private ranges.
fn daemon(dir: &Path) -> Daemon {
    start_wrapped(
        dir,
        &["unshare", "--net", "--"],
        &[
            "--bip",
            "10.230.0.1/24",
            "--bridge",
            "bt-test0",
            "--default-address-pool",
            "base=10.231.0.0/22,size=24",
        ],
    )
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// Fails with `code` and an error that contains `message`.
fn refused(out: Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert!(stderr(&out).contains(message), "want {message:?}: {out:?}");
}

#[test]
fn network_commands_with_docker_clis() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let host = d.host.clone();
    let _cleanup = common::net::Cleanup::new(&host, dir.path());
    for bin in CLIS {
        let run = |args: &[&str]| cli(bin, &host, args);
        let id = ok(run(&[
            "network",
            "create",
            "--subnet",
            "10.240.0.0/24",
            "--gateway",
            "10.240.0.254",
            "--ip-range",
            "10.240.0.128/25",
            "--label",
            "team=net",
            "--attachable",
            "-o",
            "com.docker.network.bridge.name=bt-n1",
            "n1",
        ]));
        let id = id.trim().to_string();
        assert_eq!(id.len(), 64, "{bin}: {id}");
        let v = json(run(&["network", "inspect", "n1"]));
        let n = &v[0];
        assert_eq!(n["Id"], id.as_str());
        assert_eq!(n["Driver"], "bridge");
        assert_eq!(n["Scope"], "local");
        assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.240.0.0/24");
        assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.240.0.254");
        assert_eq!(n["IPAM"]["Config"][0]["IPRange"], "10.240.0.128/25");
        assert_eq!(n["Labels"]["team"], "net");
        assert_eq!(n["Options"]["com.docker.network.bridge.name"], "bt-n1");
        assert_eq!(n["Attachable"], true, "{bin}: {n}");
        assert_eq!(
            ok(run(&["network", "inspect", "-f", "{{.Attachable}}", "n1"])),
            "true\n"
        );
        // A subnet from the daemon's pool, not docker's 172.17/16.
        let auto = ok(run(&["network", "create", "n2"]));
        let v = json(run(&[
            "network",
            "inspect",
            "--format",
            "{{json .IPAM.Config}}",
            auto.trim(),
        ]));
        assert_eq!(v[0]["Subnet"], "10.231.0.0/24", "{bin}");
        assert_eq!(v[0]["Gateway"], "10.231.0.1");
        // Not --attachable: false, as on dockerd.
        let attachable = ok(run(&["network", "inspect", "-f", "{{.Attachable}}", "n2"]));
        assert_eq!(attachable, "false\n", "{bin}");
        let ls = ok(run(&["network", "ls"]));
        let lines: Vec<&str> = ls.lines().collect();
        assert!(lines[0].starts_with("NETWORK ID     NAME"), "{ls}");
        for name in ["bridge", "host", "none", "n1", "n2"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.split_whitespace().nth(1) == Some(name)),
                "{ls}"
            );
        }
        assert!(
            ls.contains(&format!("{}   n1        bridge    local", &id[..12])),
            "{ls}"
        );
        assert_eq!(
            ok(run(&["network", "ls", "-q", "-f", "label=team=net"])).trim(),
            &id[..12]
        );
        assert_eq!(
            ok(run(&[
                "network",
                "ls",
                "-f",
                "type=custom",
                "--format",
                "{{.Name}}"
            ])),
            "n1\nn2\n"
        );
        assert_eq!(
            ok(run(&[
                "network",
                "ls",
                "-f",
                "driver=null",
                "--format",
                "{{.Name}}"
            ])),
            "none\n"
        );
        assert_eq!(
            ok(run(&["network", "ls", "--no-trunc", "-q", "-f", "name=n1"])).trim(),
            id
        );
        // Bad input: docker's words, nothing made.
        refused(
            run(&["network", "create", "n1"]),
            1,
            "network with name n1 already exists",
        );
        refused(
            run(&["network", "create", "--subnet", "10.240.0.0/16", "n3"]),
            1,
            "Pool overlaps with other one on this address space",
        );
        refused(
            run(&["network", "create", "--subnet", "10.230.0.128/25", "n3"]),
            1,
            "Pool overlaps with other one on this address space",
        );
        refused(
            run(&["network", "create", "--subnet", "10.250.0.0/33", "n3"]),
            1,
            "invalid CIDR address: 10.250.0.0/33",
        );
        refused(
            run(&[
                "network",
                "create",
                "--subnet",
                "10.250.0.0/24",
                "--gateway",
                "10.251.0.1",
                "n3",
            ]),
            1,
            "10.251.0.1",
        );
        refused(
            run(&["network", "create", "-d", "overlay9", "n3"]),
            1,
            "plugin not found",
        );
        // 20.10 words a 404 itself; the newer CLI prints the daemon's message.
        let missing = if bin == DOCKER {
            "No such network: n3"
        } else {
            "network n3 not found"
        };
        refused(run(&["network", "inspect", "n3"]), 1, missing);
        refused(run(&["network", "rm", "n3"]), 1, missing);
        refused(
            run(&["network", "rm", "bridge"]),
            1,
            "bridge is a pre-defined network and cannot be removed",
        );
        assert_eq!(
            ok(run(&["network", "rm", "n1", auto.trim()])),
            format!("n1\n{}\n", auto.trim())
        );
        assert_eq!(ok(run(&["network", "ls", "-q", "-f", "type=custom"])), "");
        // prune: only the unused custom networks, with docker's report.
        ok(run(&["network", "create", "--label", "keep=1", "p1"]));
        ok(run(&["network", "create", "p2"]));
        assert_eq!(
            ok(run(&["network", "prune", "-f", "--filter", "label!=keep"])),
            "Deleted Networks:\np2\n\n"
        );
        assert_eq!(
            ok(run(&["network", "prune", "-f"])),
            "Deleted Networks:\np1\n\n"
        );
        let raw = ok(run(&["network", "ls", "--format", "{{.Name}}"]));
        assert_eq!(raw, "bridge\nhost\nnone\n", "{bin}");
    }
}

#[test]
fn berth_network_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let b = |args: &[&str]| berth(&d.host, args);
    let id = ok(b(&[
        "network",
        "create",
        "--subnet",
        "10.243.0.0/24",
        "--label",
        "x=1",
        "--attachable",
        "bn",
    ]));
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ls = ok(b(&["network", "ls", "-f", "name=bn"]));
    assert_eq!(
        ls,
        format!(
            "NETWORK ID     NAME      DRIVER    SCOPE\n{}   bn        bridge    local\n",
            &id[..12]
        )
    );
    let v = json(b(&["network", "inspect", "bn"]));
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.243.0.1");
    assert_eq!(v[0]["Attachable"], true, "{v}");
    assert_eq!(
        ok(b(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "bn",
            "none"
        ])),
        "bn bridge\nnone null\n"
    );
    refused(
        b(&["network", "create", "--gateway", "10.0.0.1", "bx"]),
        1,
        "every ip-range or gateway must have a corresponding subnet",
    );
    refused(
        b(&["network", "create", "--subnet", "10.243.0.0/16", "bx"]),
        1,
        "Error response from daemon: Pool overlaps with other one on this address space",
    );
    refused(
        b(&["network", "inspect", "bx"]),
        1,
        "Error: No such network: bx",
    );
    refused(b(&["network", "rm", "bx"]), 1, "Error: No such network: bx");
    refused(
        b(&["network", "ls", "-f", "colour=red"]),
        1,
        "Invalid filter 'colour'",
    );
    assert_eq!(ok(b(&["network", "rm", "bn"])), "bn\n");
    assert_eq!(ok(b(&["network", "prune", "-f"])), "");
}

fn address(host: &str, container: &str, network: &str) -> String {
    let v = json(cli(DOCKER, host, &["inspect", container]));
    v[0]["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn containers_get_addresses_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        &dir.path().join("data"),
        "busybox",
        &busybox_image("net", 1),
    );
    let mut d = daemon(dir.path());
    let host = d.host.clone();
    let _cleanup = common::net::Cleanup::new(&host, dir.path());
    let run = |bin: &str, args: &[&str]| cli(bin, &host, args);
    ok(run(
        DOCKER,
        &["network", "create", "--subnet", "10.241.0.0/29", "small"],
    ));
    ok(run(
        DOCKER,
        &["network", "create", "--subnet", "10.242.0.0/24", "other"],
    ));
    ok(run(
        DOCKER,
        &[
            "create",
            "--name",
            "ca",
            "--network",
            "small",
            "--ip",
            "10.241.0.2",
            "--network-alias",
            "web",
            "busybox",
            "true",
        ],
    ));
    ok(run(
        DOCKER,
        &[
            "create",
            "--name",
            "cb",
            "--network",
            "small",
            "busybox",
            "true",
        ],
    ));
    assert_eq!(address(&host, "ca", "small"), "10.241.0.2");
    assert_eq!(address(&host, "cb", "small"), "10.241.0.3");
    let v = json(run(DOCKER, &["inspect", "ca"]));
    let ep = &v[0]["NetworkSettings"]["Networks"]["small"];
    assert_eq!(ep["IPAMConfig"]["IPv4Address"], "10.241.0.2");
    assert_eq!(ep["Aliases"][0], "web");
    assert_eq!(ep["Gateway"], "10.241.0.1");
    assert_eq!(ep["IPPrefixLen"], 29);
    assert_eq!(ep["MacAddress"], "02:42:0a:f1:00:02");
    // The default network is docker's `bridge`, on --bip's subnet.
    ok(run(DOCKER, &["create", "--name", "cc", "busybox", "true"]));
    assert_eq!(address(&host, "cc", "bridge"), "10.230.0.2");
    let v = json(run(DOCKER, &["inspect", "cc"]));
    assert_eq!(v[0]["NetworkSettings"]["IPAddress"], "10.230.0.2");
    let n = json(run(DOCKER, &["network", "inspect", "small"]));
    let members = n[0]["Containers"].as_object().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members
        .values()
        .any(|m| m["Name"] == "ca" && m["IPv4Address"] == "10.241.0.2/29"));
    // connect/disconnect on created containers, with both CLIs.
    for bin in CLIS {
        ok(run(
            bin,
            &[
                "network",
                "connect",
                "--ip",
                "10.242.0.9",
                "--alias",
                "db",
                "other",
                "ca",
            ],
        ));
        assert_eq!(address(&host, "ca", "other"), "10.242.0.9");
        refused(
            run(bin, &["network", "connect", "other", "ca"]),
            1,
            "already exists in network other",
        );
        refused(
            run(
                bin,
                &["network", "connect", "--ip", "10.242.0.9", "other", "cb"],
            ),
            1,
            "Address already in use",
        );
        refused(
            run(bin, &["network", "rm", "other"]),
            1,
            "has active endpoints",
        );
        ok(run(bin, &["network", "disconnect", "other", "ca"]));
        assert_eq!(address(&host, "ca", "other"), "");
        refused(
            run(bin, &["network", "disconnect", "other", "ca"]),
            1,
            "is not connected to network other",
        );
        refused(
            run(bin, &["network", "connect", "nope", "ca"]),
            1,
            "network nope not found",
        );
    }
    // Restart: networks, ids and reservations are kept; no address is handed out twice.
    let small_id = json(run(DOCKER, &["network", "inspect", "small"]))[0]["Id"].clone();
    drop(d);
    d = daemon(dir.path());
    let host = d.host.clone();
    let run = |bin: &str, args: &[&str]| cli(bin, &host, args);
    assert_eq!(
        json(run(DOCKER, &["network", "inspect", "small"]))[0]["Id"],
        small_id
    );
    assert_eq!(address(&host, "ca", "small"), "10.241.0.2");
    for (name, ip) in [
        ("cd", "10.241.0.4"),
        ("ce", "10.241.0.5"),
        ("cf", "10.241.0.6"),
    ] {
        ok(run(
            DOCKER,
            &[
                "create",
                "--name",
                name,
                "--network",
                "small",
                "busybox",
                "true",
            ],
        ));
        assert_eq!(address(&host, name, "small"), ip);
    }
    // The /29 is full: the start of a seventh says so; so do a bad --ip and an unknown network.
    for bin in CLIS {
        let out = run(bin, &["run", "--network", "small", "busybox", "true"]);
        refused(
            out,
            125,
            "no available IPv4 addresses on this network's address pools: small",
        );
        let out = run(
            bin,
            &[
                "run",
                "--network",
                "other",
                "--ip",
                "10.9.9.9",
                "busybox",
                "true",
            ],
        );
        refused(
            out,
            125,
            "Invalid address 10.9.9.9: It does not belong to any of this network's subnets",
        );
        let out = run(bin, &["run", "--network", "nope", "busybox", "true"]);
        refused(out, 125, "network nope not found");
        // 20.10 drops --ip without --network before it sends the request; the newer CLI
        // and berth's send it.
        if bin != DOCKER {
            let out = run(bin, &["run", "--ip", "10.230.0.50", "busybox", "true"]);
            refused(
                out,
                125,
                "user specified IP address is supported on user defined networks only",
            );
        }
    }
    let out = berth(&host, &["run", "--ip", "10.230.0.50", "busybox", "true"]);
    refused(
        out,
        125,
        "user specified IP address is supported on user defined networks only",
    );
    // rm frees the address for the next one.
    ok(run(DOCKER, &["rm", "cb"]));
    ok(run(
        DOCKER,
        &[
            "create",
            "--name",
            "cg",
            "--network",
            "small",
            "busybox",
            "true",
        ],
    ));
    assert_eq!(address(&host, "cg", "small"), "10.241.0.3");
    let all = ok(run(DOCKER, &["ps", "-aq"]));
    for id in all.split_whitespace() {
        ok(run(DOCKER, &["rm", "-f", id]));
    }
    ok(run(DOCKER, &["network", "rm", "small", "other"]));
}

/// The kernel side: two containers on a user network reach each other (busybox httpd and
/// wget), `/etc/hosts` names the container, and the namespaces go with the containers
/// (isolation between bridge networks needs berth's nftables table: not yet). Bridges and veths live in the daemon's own namespace.
#[test]
fn containers_on_a_user_network_reach_each_other() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        &dir.path().join("data"),
        "busybox",
        &busybox_image("net", 1),
    );
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from srv\n").unwrap();
    let d = daemon(dir.path());
    let host = d.host.clone();
    let _cleanup = common::net::Cleanup::new(&host, dir.path());
    for bin in CLIS {
        let run = |args: &[&str]| cli(bin, &host, args);
        ok(run(&[
            "network",
            "create",
            "--subnet",
            "10.245.0.0/24",
            "-o",
            "com.docker.network.bridge.name=bt-web",
            "web",
        ]));
        ok(run(&[
            "network",
            "create",
            "--subnet",
            "10.246.0.0/24",
            "-o",
            "com.docker.network.bridge.name=bt-far",
            "far",
        ]));
        let volume = format!("{}:/www:ro", www.display());
        common::net::httpd(
            bin,
            &host,
            "srv",
            &volume,
            &["--network", "web", "--ip", "10.245.0.10"],
        );
        let got = ok(run(&[
            "run",
            "--rm",
            "--network",
            "web",
            "--hostname",
            "cli1",
            "busybox",
            "sh",
            "-c",
            "i=0; until busybox wget -q -O- http://10.245.0.10/; do \
             [ $i -gt 100 ] && exit 1; i=$((i+1)); busybox sleep 0.1; done; \
             busybox ip -4 addr show eth0 && busybox ip route && busybox grep cli1 /etc/hosts",
        ]));
        assert!(got.starts_with("hello from srv\n"), "{bin}: {got}");
        assert!(got.contains("inet 10.245.0.2/24"), "{bin}: {got}");
        assert!(
            got.contains("default via 10.245.0.1 dev eth0"),
            "{bin}: {got}"
        );
        assert!(got.contains("10.245.0.2\tcli1"), "{bin}: {got}");
        // `none` and the default bridge (not plumbed yet): lo only.
        let lo = ok(run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "busybox",
            "ip",
            "-o",
            "link",
        ]));
        assert_eq!(lo.lines().count(), 1, "{lo}");
        ok(run(&["rm", "-f", "srv"]));
        let netns = dir.path().join("exec/netns");
        assert_eq!(
            std::fs::read_dir(&netns).unwrap().count(),
            0,
            "{bin}: a netns was left"
        );
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains(&netns.display().to_string()), "{mounts}");
        ok(run(&["network", "rm", "web", "far"]));
    }
    // Nothing of it in the host's namespace.
    let out = Command::new("ip")
        .args(["link", "show", "bt-web"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "bt-web exists on the host: {out:?}");
}
