//! IPv6 on user-defined bridge networks (`network create --ipv6 --subnet V4 --subnet V6`),
//! through the real docker CLIs, against a daemon in a network namespace of the test's own:
//! docker's errors for bad input, the network's and the containers' inspect fields, two
//! containers reaching each other by name over IPv6 (AAAA from the embedded resolver), the
//! `ip6 berth` table, and nothing left of it (rules, addresses) once the network is gone.
mod common;

use std::process::{Child, Command, Output, Stdio};

use common::net::{httpd, persistent_netns, NetEngine};
use common::*;
use serde_json::Value;

const CLIS: [&str; 2] = ["/usr/bin/docker", "/usr/local/bin/docker"];

fn engine() -> NetEngine {
    NetEngine::start(&[
        "--bip",
        "10.230.0.1/24",
        "--bridge",
        "bt-v60",
        "--default-address-pool",
        "base=10.231.0.0/22,size=24",
    ])
}

/// `args` run in the daemon's namespace (nft, ip).
fn in_daemon_netns(e: &NetEngine, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", e.netns.display()))
        .arg("--")
        .args(args)
        .output()
        .expect("nsenter");
    ok(out)
}

fn refused(out: Output, message: &str) {
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr(&out).contains(message), "want {message:?}: {out:?}");
}

fn sh(bin: &str, host: &str, network: &str, script: &str) -> Output {
    cli(
        bin,
        host,
        &[
            "run",
            "--rm",
            "--network",
            network,
            "busybox",
            "sh",
            "-c",
            script,
        ],
    )
}

#[test]
fn ipv6_networks_reach_containers_by_name_and_leave_nothing_behind() {
    let e = engine();
    let host = e.host.clone();
    let www = e.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello over v6\n").unwrap();
    let volume = format!("{}:/www:ro", www.display());
    for bin in CLIS {
        let run = |args: &[&str]| cli(bin, &host, args);
        // Bad input, in docker's words; nothing made.
        refused(
            run(&["network", "create", "--ipv6", "nov6"]),
            "could not find an available, non-overlapping IPv6 address pool",
        );
        refused(
            run(&[
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "fd00:zz::/64",
                "bad",
            ]),
            "invalid CIDR address: fd00:zz::/64",
        );
        ok(run(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "10.251.0.0/24",
            "--subnet",
            "fd00:beef::/64",
            "-o",
            "com.docker.network.bridge.name=bt-six",
            "six",
        ]));
        refused(
            run(&[
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "fd00:beef::/80",
                "overlap",
            ]),
            "Pool overlaps with other one on this address space",
        );
        let ls = ok(run(&["network", "ls", "--format", "{{.Name}}"]));
        assert!(!ls.contains("nov6") && !ls.contains("bad") && !ls.contains("overlap"));
        let n: Value = serde_json::from_str(&ok(run(&["network", "inspect", "six"]))).unwrap();
        assert_eq!(n[0]["EnableIPv6"], true, "{n}");
        let config = &n[0]["IPAM"]["Config"];
        assert_eq!(config[0]["Subnet"], "10.251.0.0/24", "{n}");
        assert_eq!(config[1]["Subnet"], "fd00:beef::/64", "{n}");
        assert_eq!(config[1]["Gateway"], "fd00:beef::1", "{n}");
        // A static --ip6 outside the subnet: refused, nothing made.
        refused(
            run(&[
                "run",
                "-d",
                "--name",
                "off",
                "--network",
                "six",
                "--ip6",
                "fd00:cafe::5",
                "busybox",
                "true",
            ]),
            "does not belong to any of this network's subnets",
        );
        httpd(
            bin,
            &host,
            "srv",
            &volume,
            &["--network", "six", "--ip6", "fd00:beef::99"],
        );
        let c: Value = serde_json::from_str(&ok(run(&["inspect", "srv"]))).unwrap();
        let six = &c[0]["NetworkSettings"]["Networks"]["six"];
        assert_eq!(six["GlobalIPv6Address"], "fd00:beef::99", "{six}");
        assert_eq!(six["GlobalIPv6PrefixLen"], 64, "{six}");
        assert_eq!(six["IPv6Gateway"], "fd00:beef::1", "{six}");
        assert_eq!(six["IPAMConfig"]["IPv6Address"], "fd00:beef::99", "{six}");
        assert_eq!(six["IPAddress"], "10.251.0.2", "{six}");
        let members: Value =
            serde_json::from_str(&ok(run(&["network", "inspect", "six"]))).unwrap();
        let members = members[0]["Containers"].to_string();
        assert!(
            members.contains(r#""IPv6Address":"fd00:beef::99/64""#),
            "{members}"
        );
        // A second container: the next address, AAAA of srv, ping and http over IPv6.
        let got = ok(sh(
            bin,
            &host,
            "six",
            "busybox ip -6 addr show eth0; busybox ip -6 route; \
             busybox nslookup -type=aaaa srv; busybox ping -6 -c 1 -W 5 srv && \
             i=0; until busybox wget -q -O- 'http://[fd00:beef::99]/'; do \
             [ $i -gt 50 ] && exit 1; i=$((i+1)); busybox sleep 0.1; done",
        ));
        assert!(
            got.contains("inet6 fd00:beef::2/64 scope global"),
            "{bin}: {got}"
        );
        // Usable at once: no duplicate address detection, so never tentative.
        let global = got.lines().find(|l| l.contains("fd00:beef::2/64")).unwrap();
        assert!(!global.contains("tentative"), "{bin}: {got}");
        assert!(
            got.contains("default via fd00:beef::1 dev eth0"),
            "{bin}: {got}"
        );
        assert!(got.contains("Address: fd00:beef::99"), "{bin}: {got}");
        assert!(got.contains("1 packets received"), "{bin}: {got}");
        assert!(got.ends_with("hello over v6\n"), "{bin}: {got}");
        let hosts = ok(run(&["exec", "srv", "busybox", "cat", "/etc/hosts"]));
        assert!(hosts.contains("\nfd00:beef::99\t"), "{hosts}");
        // berth's ip6 table: the network's masquerade out.
        let table = in_daemon_netns(&e, &["nft", "list", "table", "ip6", "berth"]);
        assert!(
            table.contains("ip6 saddr fd00:beef::/64 oifname != \"bt-six\" masquerade"),
            "{table}"
        );
        // Gone with the network: no ip6 table, no address on a bridge.
        ok(run(&["rm", "-f", "srv"]));
        ok(run(&["network", "rm", "six"]));
        let tables = in_daemon_netns(&e, &["nft", "list", "tables"]);
        assert!(!tables.contains("ip6 berth"), "{bin}: {tables}");
        assert!(tables.contains("ip berth"), "{bin}: {tables}");
        let addrs = in_daemon_netns(&e, &["ip", "-6", "addr"]);
        assert!(!addrs.contains("fd00:beef"), "{bin}: {addrs}");
    }
}

/// A server in "the world", killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// "The world" beyond the daemon's host, in a namespace of the test's own (unmounted with
/// the engine): a veth with fd00:78::1 on the host's side (one of the host's IPv6
/// addresses) and fd00:78::2 on the world's, with no route back to the containers'
/// subnets (so only masquerade gets an answer back), serving http on [fd00:78::2]:80 with a
/// CGI that prints the client's address.
fn world(e: &NetEngine) -> Server {
    let ns = e.dir.path().join("world.netns");
    persistent_netns(&ns);
    let ns_arg = ns.display().to_string();
    in_daemon_netns(
        e,
        &[
            "ip", "link", "add", "bt-w6h", "type", "veth", "peer", "name", "bt-w6w", "netns",
            &ns_arg,
        ],
    );
    in_daemon_netns(
        e,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:78::1/64",
            "dev",
            "bt-w6h",
            "nodad",
        ],
    );
    in_daemon_netns(e, &["ip", "link", "set", "bt-w6h", "up"]);
    let world = |args: &[&str]| {
        ok(Command::new("nsenter")
            .arg(format!("--net={ns_arg}"))
            .arg("--")
            .args(args)
            .output()
            .expect("nsenter"))
    };
    world(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:78::2/64",
        "dev",
        "bt-w6w",
        "nodad",
    ]);
    world(&["ip", "link", "set", "bt-w6w", "up"]);
    let www = e.dir.path().join("world");
    let cgi = www.join("cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    let script = cgi.join("addr");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"client $REMOTE_ADDR\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = Command::new("nsenter")
        .arg(format!("--net={ns_arg}"))
        .args([
            "--",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "[fd00:78::2]:80",
            "-h",
        ])
        .arg(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(server);
    // Up once it answers from the world's own side.
    for _ in 0..100 {
        let got = Command::new("nsenter")
            .arg(format!("--net={ns_arg}"))
            .args([
                "--",
                "curl",
                "-sS",
                "--max-time",
                "1",
                "http://[fd00:78::2]/cgi-bin/addr",
            ])
            .output()
            .unwrap();
        if stdout(&got).contains("client") {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the world's httpd does not answer");
}

#[test]
fn ipv6_published_ports_answer_on_host_v6_addresses_and_containers_get_out_masqueraded() {
    let e = engine();
    let host = e.host.clone();
    let _world = world(&e);
    let www = e.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "published over v6\n").unwrap();
    let volume = format!("{}:/www:ro", www.display());
    let world_ns = format!("--net={}", e.dir.path().join("world.netns").display());
    for (bin, port) in [(CLIS[0], "8080"), (CLIS[1], "8081")] {
        let run = |args: &[&str]| cli(bin, &host, args);
        ok(run(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "10.252.0.0/24",
            "--subnet",
            "fd00:cafe::/64",
            "-o",
            "com.docker.network.bridge.name=bt-six6",
            "six",
        ]));
        let publish = format!("{port}:80");
        httpd(
            bin,
            &host,
            "web",
            &volume,
            &["--network", "six", "-p", &publish],
        );
        // From the world, to the host's IPv6 address (prerouting's DNAT).
        let url = format!("http://[fd00:78::1]:{port}/");
        let mut got = String::new();
        for _ in 0..50 {
            let out = Command::new("nsenter")
                .args([
                    world_ns.as_str(),
                    "--",
                    "curl",
                    "-sS",
                    "--max-time",
                    "2",
                    &url,
                ])
                .output()
                .unwrap();
            got = format!("{}{}", stdout(&out), stderr(&out));
            if out.status.success() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(got, "published over v6\n", "{bin}: from the world");
        // From the host itself (output's DNAT).
        let got = in_daemon_netns(&e, &["curl", "-sS", "--max-time", "5", &url]);
        assert_eq!(got, "published over v6\n", "{bin}: from the host");
        // And on the host's [::1]: no NAT for it, the daemon's forwarder carries it.
        let lo6 = format!("http://[::1]:{port}/");
        let got = in_daemon_netns(&e, &["curl", "-sS", "--max-time", "5", &lo6]);
        assert_eq!(got, "published over v6\n", "{bin}: from the host's ::1");
        let table = in_daemon_netns(&e, &["nft", "list", "table", "ip6", "berth"]);
        assert!(
            table.contains(&format!("tcp dport {port} dnat to [fd00:cafe::2]:80")),
            "{bin}: {table}"
        );
        // By hairpin from a container on the network, and out to the world, seen from
        // there with the host's address (masquerade), not the container's.
        let script = format!(
            "busybox wget -q -O- {url} && \
             busybox wget -q -O- 'http://[fd00:78::2]/cgi-bin/addr'"
        );
        let got = ok(sh(bin, &host, "six", &script));
        assert!(got.starts_with("published over v6\n"), "{bin}: {got}");
        assert!(
            got.contains("client fd00:78::1") || got.contains("client [fd00:78::1]"),
            "{bin}: {got}"
        );
        assert!(!got.contains("fd00:cafe"), "{bin}: {got}");
        ok(run(&["rm", "-f", "web"]));
        ok(run(&["network", "rm", "six"]));
        let tables = in_daemon_netns(&e, &["nft", "list", "tables"]);
        assert!(!tables.contains("ip6 berth"), "{bin}: {tables}");
    }
}
