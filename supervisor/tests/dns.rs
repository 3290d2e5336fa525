//! Name resolution on `berth daemon` through the real docker CLIs and berth's: the embedded
//! resolver of user-defined networks (container names, aliases, short ids, compose's
//! connect-before-start aliases; nothing across networks; NXDOMAIN for unknown names; other
//! names forwarded upstream, a silent upstream skipped), resolv.conf by docker's rules, and the
//! responders made again by a restarted daemon. The daemon lives in a network namespace of the
//! test's own; the "upstream" DNS server is a thread of this test inside that namespace.
mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};

use common::net::NetEngine;
use common::*;
use hickory_server::proto::op::{Message, MessageType, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{RData, Record, RecordType};

const DOCKER28: &str = "/usr/local/bin/docker";
const CLIS: [&str; 2] = ["/usr/bin/docker", DOCKER28];

fn engine() -> NetEngine {
    NetEngine::start(&[
        "--bip",
        "10.230.0.1/24",
        "--bridge",
        "bt-dns0",
        "--default-address-pool",
        "base=10.231.0.0/22,size=24",
    ])
}

/// An upstream DNS server on `addr` (port 53) in the namespace at `netns`: `ext.example.` is
/// 192.0.2.77, everything else NXDOMAIN; `silent` never answers.
fn upstream(netns: &Path, addr: &str, silent: bool) {
    let file = std::fs::File::open(netns).unwrap();
    let addr = format!("{addr}:53");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind(&addr).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if silent {
                continue;
            }
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            r.add_queries(q.queries.clone());
            let query = &q.queries[0];
            if query.name().to_ascii().eq_ignore_ascii_case("ext.example.") {
                if query.query_type() == RecordType::A {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::A(A([192, 0, 2, 77].into())),
                    ));
                }
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            r.metadata.message_type = MessageType::Response;
            let _ = socket.send_to(&r.to_vec().unwrap(), from);
        }
    });
    rx.recv().unwrap();
}

/// `sh -c script` in a new container on `network` (extra flags before the image).
fn run_on(bin: &str, host: &str, network: &str, flags: &[&str], script: &str) -> Output {
    let mut args = vec!["run", "--rm", "--network", network];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    cli(bin, host, &args)
}

/// busybox's `nslookup -type=TYPE NAME` from a new container on `network`: its output.
fn lookup(bin: &str, host: &str, network: &str, kind: &str, name: &str) -> Output {
    let script = format!("busybox nslookup -type={kind} \"$T\"");
    run_on(bin, host, network, &["-e", &format!("T={name}")], &script)
}

/// busybox httpd serving `hello from NAME` on a user network.
fn web_server(bin: &str, e: &NetEngine, name: &str, network: &str, flags: &[&str]) -> String {
    let www = e.dir.path().join(format!("www-{name}"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), format!("hello from {name}\n")).unwrap();
    let volume = format!("{}:/www:ro", www.display());
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "-v",
        &volume,
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "busybox", "busybox", "httpd", "-f", "-p", "80", "-h", "/www",
    ]);
    ok(cli(bin, &e.host, &args)).trim().to_string()
}

/// Fetches `http://NAME/` from a new container on `network` (retried while httpd comes up).
const FETCH: &str = "i=0; until busybox wget -q -O- http://$T/; do [ $i -gt 50 ] && exit 1; \
                     i=$((i+1)); busybox sleep 0.1; done";

fn fetch(bin: &str, host: &str, network: &str, target: &str) -> Output {
    run_on(bin, host, network, &["-e", &format!("T={target}")], FETCH)
}

#[test]
fn names_resolve_on_their_network_only() {
    let e = engine();
    let host = e.host.clone();
    upstream(&e.netns, "127.0.0.1", false);
    for (i, bin) in CLIS.iter().enumerate() {
        let run = |args: &[&str]| cli(bin, &host, args);
        ok(run(&[
            "network",
            "create",
            "--subnet",
            "10.245.0.0/24",
            "front",
        ]));
        ok(run(&[
            "network",
            "create",
            "--subnet",
            "10.246.0.0/24",
            "back",
        ]));
        let id = web_server(bin, &e, "srv", "front", &["--network-alias", "www"]);
        for target in ["srv", "www", &id[..12], "srv.front", "SRV"] {
            let got = ok(fetch(bin, &host, "front", target));
            assert_eq!(got, "hello from srv\n", "{bin}: {target}");
        }
        // The resolver's view, with the nslookup the image has.
        let got = ok(run_on(
            bin,
            &host,
            "front",
            &[],
            "busybox nslookup -type=a srv; cat /etc/resolv.conf",
        ));
        assert!(got.contains("Address: 10.245.0.2"), "{bin}: {got}");
        assert!(got.contains("nameserver 127.0.0.11\n"), "{bin}: {got}");
        assert!(got.contains("options ndots:0\n"), "{bin}: {got}");
        // From another network: not there, at once (NXDOMAIN, not a time-out).
        let out = lookup(bin, &host, "back", "a", "srv");
        assert!(!out.status.success(), "{bin}: {out:?}");
        assert!(stdout(&out).contains("NXDOMAIN"), "{bin}: {out:?}");
        let out = lookup(bin, &host, "front", "a", "nobody");
        assert!(stdout(&out).contains("NXDOMAIN"), "{bin}: {out:?}");
        // A second container on both networks sees srv through front.
        let out = lookup(bin, &host, "back", "a", "srv.back");
        assert!(stdout(&out).contains("NXDOMAIN"), "{bin}: {out:?}");
        // compose's way: created, connected with aliases, then started.
        let name = format!("late{i}");
        ok(run(&[
            "create",
            "--name",
            &name,
            "--network",
            "back",
            "busybox",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ]));
        let short = &ok(run(&["inspect", "-f", "{{.Id}}", &name]))[..12];
        ok(run(&[
            "network", "connect", "--alias", "svc", "--alias", short, "front", &name,
        ]));
        ok(run(&["start", &name]));
        for target in ["svc", short, &name] {
            let out = lookup(bin, &host, "front", "a", target);
            assert!(
                stdout(&out).contains("Address: 10.245.0."),
                "{bin}: {target}: {out:?}"
            );
        }
        let out = lookup(bin, &host, "back", "a", "svc");
        assert!(
            stdout(&out).contains("NXDOMAIN"),
            "{bin}: alias of front seen on back: {out:?}"
        );
        let out = lookup(bin, &host, "back", "a", &name);
        assert!(
            stdout(&out).contains("Address: 10.246.0."),
            "{bin}: {out:?}"
        );
        ok(run(&["rm", "-f", "srv", &name]));
        ok(run(&["network", "rm", "front", "back"]));
    }
}

#[test]
fn other_names_go_upstream_and_resolv_conf_follows_docker() {
    let e = engine();
    let host = e.host.clone();
    upstream(&e.netns, "127.0.0.1", false);
    upstream(&e.netns, "127.0.0.2", true);
    let bin = DOCKER28;
    let run = |args: &[&str]| cli(bin, &host, args);
    ok(run(&[
        "network",
        "create",
        "--subnet",
        "10.247.0.0/24",
        "n",
    ]));
    // A loopback upstream (reached from the daemon's side), after a silent one.
    let got = ok(run_on(
        bin,
        &host,
        "n",
        &[
            "--dns",
            "127.0.0.2",
            "--dns",
            "127.0.0.1",
            "--dns-search",
            "corp.example",
            "--dns-option",
            "timeout:3",
        ],
        "busybox nslookup -type=a ext.example; cat /etc/resolv.conf",
    ));
    assert!(got.contains("Address: 192.0.2.77"), "{got}");
    assert!(
        got.contains("nameserver 127.0.0.11\nsearch corp.example\noptions timeout:3 ndots:0\n"),
        "{got}"
    );
    // The upstream's NXDOMAIN comes back as such.
    let out = run_on(
        bin,
        &host,
        "n",
        &["--dns", "127.0.0.1"],
        "busybox nslookup -type=a no.example",
    );
    assert!(stdout(&out).contains("NXDOMAIN"), "{out:?}");
    // The default bridge: the host's servers, loopback ones dropped; --dns replaces them.
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    let got = ok(cli(
        bin,
        &host,
        &[
            "run",
            "--rm",
            "busybox",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ],
    ));
    assert!(!got.contains("127.0.0.11"), "{got}");
    for line in host_resolv.lines().filter(|l| l.starts_with("nameserver")) {
        if !line.contains(" 127.") {
            assert!(got.contains(line), "{line:?} missing: {got}");
        }
    }
    let got = ok(cli(
        bin,
        &host,
        &[
            "run",
            "--rm",
            "--dns",
            "9.9.9.9",
            "--dns-search",
            ".",
            "busybox",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ],
    ));
    assert!(
        got.contains("nameserver 9.9.9.9\n") && !got.contains("search"),
        "{got}"
    );
    // The host network: the host's file as it is.
    let got = ok(cli(
        bin,
        &host,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ],
    ));
    assert_eq!(got, host_resolv);
    // The daemon's create-time check (the docker CLIs check --dns before they send it).
    let socket = host.trim_start_matches("unix://");
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            socket,
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-d", r#"{"Image":"busybox","HostConfig":{"Dns":["nope"]}}"#])
        .arg("http://localhost/containers/create")
        .output()
        .expect("curl missing");
    let got = stdout(&out);
    assert!(got.ends_with("\n400"), "{got}");
    assert!(
        got.contains("invalid DNS server address \\\"nope\\\""),
        "{got}"
    );
    assert_eq!(ok(run(&["ps", "-aq"])), "", "a bad create left a container");
    ok(run(&["network", "rm", "n"]));
}

#[test]
fn a_restarted_daemon_serves_running_containers_again() {
    let mut e = engine();
    let bin = DOCKER28;
    ok(cli(
        bin,
        &e.host,
        &["network", "create", "--subnet", "10.248.0.0/24", "n"],
    ));
    web_server(bin, &e, "srv", "n", &["--network-alias", "www"]);
    ok(cli(
        bin,
        &e.host,
        &[
            "run",
            "-d",
            "--name",
            "client",
            "--network",
            "n",
            "busybox",
            "busybox",
            "sleep",
            "1000",
        ],
    ));
    let ask = |host: &str| {
        cli(
            bin,
            host,
            &[
                "exec",
                "client",
                "sh",
                "-c",
                "busybox nslookup -type=a www && busybox wget -q -O- http://srv/",
            ],
        )
    };
    assert!(ok(ask(&e.host)).contains("hello from srv"));
    e.restart_daemon();
    let got = ok(ask(&e.host));
    assert!(
        got.contains("Address: 10.248.0.2") && got.contains("hello from srv"),
        "{got}"
    );
    e.kill_daemon_and_restart();
    let got = ok(ask(&e.host));
    assert!(got.contains("hello from srv"), "{got}");
}

fn exec(bin: &str, host: &str, container: &str, script: &str) -> String {
    ok(cli(bin, host, &["exec", container, "sh", "-c", script]))
}

#[test]
fn live_connect_disconnect_hosts_and_flags() {
    let e = engine();
    let host = e.host.clone();
    let bin = "/usr/bin/docker";
    let run = |args: &[&str]| cli(bin, &host, args);
    ok(run(&[
        "network",
        "create",
        "--subnet",
        "10.249.0.0/24",
        "na",
    ]));
    ok(run(&[
        "network",
        "create",
        "--subnet",
        "10.250.0.0/24",
        "nb",
    ]));
    let id = ok(run(&[
        "run",
        "-d",
        "--name",
        "cl",
        "--network",
        "na",
        "--hostname",
        "clh",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "busybox",
        "sleep",
        "1000",
    ]));
    let short = &id[..12];
    let hosts = exec(bin, &host, "cl", "busybox cat /etc/hosts");
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(
        hosts.contains("10.1.2.3\tdb\n10.230.0.1\tgw\n10.249.0.2\tclh cl\n"),
        "{hosts}"
    );
    // Live connect: a new eth1 with the asked address, the alias resolvable on nb at once.
    ok(run(&[
        "network",
        "connect",
        "--alias",
        "cb",
        "--ip",
        "10.250.0.50",
        "nb",
        "cl",
    ]));
    let links = exec(bin, &host, "cl", "busybox ip -o -4 addr");
    assert!(links.contains("eth1    inet 10.250.0.50/24"), "{links}");
    let hosts = exec(bin, &host, "cl", "busybox cat /etc/hosts");
    assert!(hosts.contains("10.250.0.50\tclh cl cb\n"), "{hosts}");
    for target in ["cb", "cl", short] {
        let out = lookup(bin, &host, "nb", "a", target);
        assert!(
            stdout(&out).contains("Address: 10.250.0.50"),
            "{target}: {out:?}"
        );
    }
    let ping = run_on(bin, &host, "nb", &[], "busybox ping -c 1 -W 5 cb");
    assert!(ping.status.success(), "{ping:?}");
    // docker's inspect of it.
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["inspect", "cl"]))).unwrap();
    let nb = &v[0]["NetworkSettings"]["Networks"]["nb"];
    assert_eq!(nb["IPAddress"], "10.250.0.50");
    assert_eq!(nb["Aliases"], serde_json::json!(["cb", short]));
    assert_eq!(nb["DNSNames"], serde_json::json!(["cl", "cb", short]));
    assert_eq!(
        v[0]["HostConfig"]["ExtraHosts"],
        serde_json::json!(["db:10.1.2.3", "gw:host-gateway"])
    );
    // Live disconnect: the link goes, and so does the name.
    ok(run(&["network", "disconnect", "nb", "cl"]));
    let links = exec(bin, &host, "cl", "busybox ip -o link");
    assert!(!links.contains("eth1"), "{links}");
    let out = lookup(bin, &host, "nb", "a", "cb");
    assert!(stdout(&out).contains("NXDOMAIN"), "{out:?}");
    let hosts = exec(bin, &host, "cl", "busybox cat /etc/hosts");
    assert!(!hosts.contains("10.250.0.50"), "{hosts}");
    // berth's own run flags.
    let got = ok(berth(
        &host,
        &[
            "run", "--rm", "--network", "na", "--ip", "10.249.0.77", "--network-alias", "zed",
            "--mac-address", "92:d0:c6:0a:29:33", "--dns", "127.0.0.1", "--dns-search",
            "x.example", "--dns-option", "attempts:2", "--add-host", "h:1.2.3.4", "--hostname",
            "hb", "busybox", "sh", "-c",
            "busybox ip link show eth0; busybox cat /etc/resolv.conf /etc/hosts; busybox nslookup -type=a zed.",
        ],
    ));
    assert!(got.contains("link/ether 92:d0:c6:0a:29:33"), "{got}");
    assert!(
        got.contains("nameserver 127.0.0.11\nsearch x.example\noptions attempts:2 ndots:0\n"),
        "{got}"
    );
    assert!(got.contains("1.2.3.4\th\n10.249.0.77\thb "), "{got}");
    assert!(got.contains("Address: 10.249.0.77"), "{got}");
    // Bad input: docker's words and codes, and no container left behind.
    let before = ok(run(&["ps", "-aq"]));
    for bin in CLIS {
        let out = cli(
            bin,
            &host,
            &[
                "run",
                "--network",
                "na",
                "--ip",
                "10.9.9.9",
                "busybox",
                "true",
            ],
        );
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(
            stderr(&out).contains(
                "Invalid address 10.9.9.9: It does not belong to any of this network's subnets"
            ),
            "{out:?}"
        );
        let out = cli(bin, &host, &["run", "--network", "nope", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(stderr(&out).contains("network nope not found"), "{out:?}");
        assert!(!stderr(&out).contains("Unable to find image"), "{out:?}");
        let out = cli(bin, &host, &["run", "--add-host", "bad", "busybox", "true"]);
        assert_ne!(out.status.code(), Some(0), "{out:?}");
        assert!(stderr(&out).contains("bad format for add-host"), "{out:?}");
    }
    let out = berth(
        &host,
        &["run", "--add-host", "h:1.2.3.999", "busybox", "true"],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("invalid argument \"h:1.2.3.999\" for \"--add-host\" flag: invalid IP address in add-host: \"1.2.3.999\""),
        "{out:?}"
    );
    let out = berth(
        &host,
        &[
            "run",
            "--mac-address",
            "zz",
            "--network",
            "na",
            "busybox",
            "true",
        ],
    );
    assert!(
        stderr(&out).contains("invalid MAC address \"zz\""),
        "{out:?}"
    );
    let socket = host.trim_start_matches("unix://");
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            socket,
            "-H",
            "Content-Type: application/json",
        ])
        .args([
            "-d",
            r#"{"Image":"busybox","HostConfig":{"ExtraHosts":["bad"]}}"#,
        ])
        .arg("http://localhost/containers/create")
        .output()
        .expect("curl missing");
    let got = stdout(&out);
    assert!(
        got.ends_with("\n400") && got.contains("bad format for add-host"),
        "{got}"
    );
    assert_eq!(
        ok(run(&["ps", "-aq"])),
        before,
        "bad input left a container"
    );
}
