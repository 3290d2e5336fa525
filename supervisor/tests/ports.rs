//! Published ports, berth's nftables table, isolation and the default bridge, through the
//! real docker CLIs and berth's own, against a daemon in a network namespace of the test's
//! own (a `sleep` holds it, so that a killed daemon can come back into the same one).
//! "The host" below is that namespace: its 127.0.0.1, and 10.77.0.1 standing for the
//! host's other addresses. Nothing touches the machine's own network.
mod common;

use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::net::httpd;
use common::*;
use serde_json::Value;

const NEW_DOCKER: &str = "/usr/local/bin/docker";
const HOST_ADDR: &str = "10.77.0.1";

/// A network namespace held by a `sleep`, with `lo` up and 10.77.0.1 on it too.
struct Netns {
    holder: Child,
}

impl Netns {
    fn new() -> Netns {
        let holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "infinity"])
            .spawn()
            .expect("unshare (util-linux) missing");
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let ns = format!("/proc/{}/ns/net", holder.id());
        for _ in 0..200 {
            if std::fs::read_link(&ns).is_ok_and(|l| l != own) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let n = Netns { holder };
        for cmd in ["ip link set lo up", "ip addr add 10.77.0.1/32 dev lo"] {
            ok(n.run(&cmd.split(' ').collect::<Vec<_>>()));
        }
        n
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder.id())
    }

    fn wrapper(&self) -> [String; 3] {
        [
            "nsenter".into(),
            format!("--net={}", self.path()),
            "--".into(),
        ]
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    fn curl(&self, url: &str) -> Output {
        self.run(&["curl", "-sS", "--max-time", "5", url])
    }

    /// Sends `message` over UDP from inside the namespace and returns the answer.
    fn udp(&self, to: &str, message: &str) -> Option<String> {
        let ns = std::fs::File::open(self.path()).unwrap();
        let (to, message) = (to.to_string(), message.to_string());
        std::thread::spawn(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let any = if to.starts_with('[') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let s = std::net::UdpSocket::bind(any).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 128];
            // UDP may be lost before the server binds: a bounded number of tries.
            for _ in 0..30 {
                s.send_to(message.as_bytes(), &to).unwrap();
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            None
        })
        .join()
        .unwrap()
    }

    fn ruleset(&self) -> String {
        stdout(&self.run(&["nft", "list", "ruleset"]))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Removes every container of the daemon when dropped (before the daemon goes).
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        let ids = stdout(&berth(&self.0, &["ps", "-aq"]));
        for id in ids.lines() {
            let _ = berth(&self.0, &["rm", "-f", id]);
        }
    }
}

/// The daemon in `ns`, answering (so its table is made).
fn daemon(dir: &Path, ns: &Netns) -> Daemon {
    let w = ns.wrapper();
    let d = start_wrapped(
        dir,
        &[w[0].as_str(), w[1].as_str(), w[2].as_str()],
        &[
            "--bip",
            "10.230.0.1/24",
            "--bridge",
            "bt-def0",
            "--default-address-pool",
            "base=10.231.0.0/22,size=24",
        ],
    );
    ok(berth(&d.host, &["version"]));
    d
}

fn inspect(host: &str, name: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(cli(DOCKER, host, &["inspect", name]))).unwrap();
    v[0].clone()
}

fn refused(out: Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert!(stderr(&out).contains(message), "want {message:?}: {out:?}");
}

/// An image whose config EXPOSEs 80/tcp.
fn seed_images(data_root: &Path) {
    seed(data_root, "busybox", &busybox_image("ports", 1));
    let mut image = busybox_image("exposed", 1);
    let mut config: Value = serde_json::from_slice(&image.config).unwrap();
    config["config"]["ExposedPorts"] = serde_json::json!({"80/tcp": {}});
    image.config = serde_json::to_vec(&config).unwrap();
    image.id = berth_supervisor::images::content::digest_of(&image.config);
    let mut manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["config"]["digest"] = image.id.clone().into();
    manifest["config"]["size"] = image.config.len().into();
    image.manifest = serde_json::to_vec(&manifest).unwrap();
    seed(data_root, "exposed", &image);
}

/// `-v` flags that let a busybox container run the host's python3 (a UDP echo server).
const HOST_USR: [&str; 6] = [
    "-v",
    "/usr:/usr:ro",
    "-v",
    "/usr/lib:/lib:ro",
    "-v",
    "/usr/lib64:/lib64:ro",
];

const UDP_ECHO: &str = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
s.bind(('',53))\nwhile True:\n d,a=s.recvfrom(99)\n s.sendto(b'echo:'+d,a)";

fn web_root(dir: &Path) -> String {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from web\n").unwrap();
    format!("{}:/www:ro", www.display())
}

/// Waits (bounded) until `url` answers from the namespace; its body.
fn fetch(ns: &Netns, url: &str) -> String {
    for _ in 0..100 {
        let out = ns.curl(url);
        if out.status.success() {
            return stdout(&out);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} never answered: {:?}", ns.curl(url));
}

/// A container's wget of `url`: (succeeded, output).
fn wget_from(host: &str, network: &str, url: &str, extra: &[&str]) -> (bool, String) {
    let script = format!(
        // (busybox-static's own `wget -T` dies of SIGSEGV: `timeout` bounds it instead. Not
        // as the last command: `sh -c` would exec it as the container's PID 1, which ignores
        // timeout's SIGTERM, and a dropped connect then waits out TCP's ~130 s of SYN retries.)
        "{} busybox timeout 3 busybox wget -q -O- {url}; exit $?",
        extra.join(" ")
    );
    let out = cli(
        DOCKER,
        host,
        &[
            "run",
            "--rm",
            "--network",
            network,
            "--cap-add",
            "NET_ADMIN",
            "busybox",
            "sh",
            "-c",
            &script,
        ],
    );
    (
        out.status.success(),
        format!("{:?} {}{}", out.status, stdout(&out), stderr(&out)),
    )
}

#[test]
fn published_ports_answer_on_localhost_other_addresses_and_by_hairpin() {
    let dir = tempfile::tempdir().unwrap();
    seed_images(&dir.path().join("data"));
    let ns = Netns::new();
    let d = daemon(dir.path(), &ns);
    let host = d.host.clone();
    let _clean = Containers(host.clone());
    let volume = web_root(dir.path());
    httpd(DOCKER, &host, "web", &volume, &["-p", "8080:80"]);
    // The default bridge is plumbed: eth0, an address of --bip's subnet, the default route.
    let inside = ok(cli(
        DOCKER,
        &host,
        &[
            "exec",
            "web",
            "sh",
            "-c",
            "busybox ip -4 addr show eth0; busybox ip route",
        ],
    ));
    assert!(inside.contains("inet 10.230.0.2/24"), "{inside}");
    assert!(
        inside.contains("default via 10.230.0.1 dev eth0"),
        "{inside}"
    );
    // From the host, on 127.0.0.1 and on its other address, by kernel NAT.
    assert_eq!(fetch(&ns, "http://127.0.0.1:8080/"), "hello from web\n");
    assert_eq!(
        fetch(&ns, &format!("http://{HOST_ADDR}:8080/")),
        "hello from web\n"
    );
    // On [::1] too (the container has no IPv6 address): by the daemon's forwarder, a
    // thread of its own, since no NAT rule can carry a packet from ::1 off `lo`.
    assert_eq!(fetch(&ns, "http://[::1]:8080/"), "hello from web\n");
    // NET I/O counts eth0's traffic (the two answers), not lo's.
    let net = ok(cli(
        DOCKER,
        &host,
        &["stats", "--no-stream", "--format", "{{.NetIO}}", "web"],
    ));
    let (rx, tx) = net.trim().split_once(" / ").expect("rx / tx");
    assert!(rx != "0B" && tx != "0B", "eth0's traffic in NET I/O: {net}");
    // No proxy: nothing but the daemon and the shims in the namespace, and a DNAT rule.
    let rules = ns.ruleset();
    assert!(rules.contains("table ip berth"), "{rules}");
    assert!(
        rules.contains("tcp dport 8080 dnat to 10.230.0.2:80"),
        "{rules}"
    );
    // Hairpin: another container reaches it through the host's address and the gateway,
    // from the default bridge and from a user network.
    ok(cli(
        DOCKER,
        &host,
        &[
            "network",
            "create",
            "--subnet",
            "10.232.0.0/24",
            "-o",
            "com.docker.network.bridge.name=bt-user",
            "user",
        ],
    ));
    for (network, target) in [
        ("bridge", format!("http://{HOST_ADDR}:8080/")),
        ("bridge", "http://10.230.0.1:8080/".to_string()),
        ("user", format!("http://{HOST_ADDR}:8080/")),
    ] {
        let (done, got) = wget_from(&host, network, &target, &[]);
        assert!(
            done && got.contains("hello from web"),
            "{network} {target}: {got}"
        );
    }
    // UDP on 127.0.0.1 only, TCP on an ephemeral port, -P with the image's EXPOSE.
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "127.0.0.1:5353:53/udp",
        "-p",
        "80",
    ];
    args.extend_from_slice(&HOST_USR);
    args.extend_from_slice(&["busybox", "/usr/bin/python3", "-c", UDP_ECHO]);
    ok(cli(DOCKER, &host, &args));
    assert_eq!(
        ns.udp("127.0.0.1:5353", "ping").as_deref(),
        Some("echo:ping")
    );
    let udp = inspect(&host, "udp");
    let ports = &udp["NetworkSettings"]["Ports"];
    assert_eq!(
        ports["53/udp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "5353"}])
    );
    let ephemeral: u16 = ports["80/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ephemeral > 1024, "{ports}");
    assert_eq!(
        udp["HostConfig"]["PortBindings"]["53/udp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "5353"}])
    );
    httpd(NEW_DOCKER, &host, "all", &volume, &["-P"]);
    // "exposed" EXPOSEs 80: -P gives it an ephemeral port (berth's `port` shows it).
    ok(cli(
        NEW_DOCKER,
        &host,
        &[
            "run", "-d", "--name", "exposed", "-v", &volume, "-P", "exposed", "busybox", "httpd",
            "-f", "-p", "80", "-h", "/www",
        ],
    ));
    let lines = ok(berth(&host, &["port", "exposed", "80"]));
    let port = lines
        .lines()
        .next()
        .unwrap_or_default()
        .strip_prefix("0.0.0.0:")
        .unwrap_or_else(|| panic!("{lines}"));
    assert_eq!(lines, format!("0.0.0.0:{port}\n[::]:{port}\n"));
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
    ] {
        assert_eq!(fetch(&ns, &url), "hello from web\n");
    }
    // `all` has no EXPOSE (and no -p): -P publishes nothing.
    assert_eq!(
        inspect(&host, "all")["NetworkSettings"]["Ports"],
        serde_json::json!({})
    );
    // port and ps, as docker prints them.
    for bin in [DOCKER, NEW_DOCKER] {
        assert_eq!(
            ok(cli(bin, &host, &["port", "web"])).lines().next(),
            Some("80/tcp -> 0.0.0.0:8080"),
            "{bin}"
        );
        let ps = ok(cli(
            bin,
            &host,
            &["ps", "--filter", "name=udp", "--format", "{{.Ports}}"],
        ));
        // Every address is 0.0.0.0 and [::] (20.10 prints the latter `:::`), as dockerd's.
        let v6 = if bin == DOCKER { ":::" } else { "[::]:" };
        assert_eq!(
            ps.trim(),
            format!("127.0.0.1:5353->53/udp, 0.0.0.0:{ephemeral}->80/tcp, {v6}{ephemeral}->80/tcp"),
            "{bin}"
        );
    }
    let ps = ok(berth(
        &host,
        &["ps", "--filter", "name=udp", "--format", "{{.Ports}}"],
    ));
    assert_eq!(
        ps.trim(),
        format!("127.0.0.1:5353->53/udp, 0.0.0.0:{ephemeral}->80/tcp, [::]:{ephemeral}->80/tcp")
    );
    assert_eq!(
        ok(berth(&host, &["port", "udp"])),
        format!(
            "53/udp -> 127.0.0.1:5353\n80/tcp -> 0.0.0.0:{ephemeral}\n80/tcp -> [::]:{ephemeral}\n"
        )
    );
    // Published on ::1 only, TCP and UDP: the forwarder's alone, nothing on 127.0.0.1.
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "lo6",
        "-v",
        &volume,
        "-p",
        "[::1]:8081:80",
        "-p",
        "[::1]:5354:53/udp",
    ];
    args.extend_from_slice(&HOST_USR);
    args.extend_from_slice(&[
        "busybox",
        "sh",
        "-c",
        "busybox httpd -p 80 -h /www; exec /usr/bin/python3 -c \"$0\"",
        UDP_ECHO,
    ]);
    ok(cli(NEW_DOCKER, &host, &args));
    assert_eq!(fetch(&ns, "http://[::1]:8081/"), "hello from web\n");
    assert!(!ns.curl("http://127.0.0.1:8081/").status.success());
    assert_eq!(ns.udp("[::1]:5354", "ping6").as_deref(), Some("echo:ping6"));
    assert_eq!(
        inspect(&host, "lo6")["NetworkSettings"]["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "::1", "HostPort": "8081"}])
    );
    for (bin, want) in [
        (DOCKER, "::1:5354->53/udp, ::1:8081->80/tcp"),
        (NEW_DOCKER, "[::1]:5354->53/udp, [::1]:8081->80/tcp"),
        (BERTH, "[::1]:5354->53/udp, [::1]:8081->80/tcp"),
    ] {
        let args = ["ps", "--filter", "name=lo6", "--format", "{{.Ports}}"];
        let ps = match bin {
            BERTH => ok(berth(&host, &args)),
            _ => ok(cli(bin, &host, &args)),
        };
        assert_eq!(ps.trim(), want, "{bin}");
    }
    assert_eq!(
        ok(cli(NEW_DOCKER, &host, &["port", "lo6", "80"])),
        "[::1]:8081\n"
    );
    // A port already taken (by a container, or by a process of the host): docker's error,
    // the container left created, no rule added.
    let before = ns.ruleset();
    let mut listener = String::new();
    for (name, spec) in [("again", "8080:80"), ("taken", "9090:80")] {
        if name == "taken" {
            listener = ok(ns.run(&[
                "sh",
                "-c",
                "busybox nc -l -p 9090 </dev/null >/dev/null 2>&1 & echo $!",
            ]));
        }
        let mut tries = 0;
        let out = loop {
            let out = cli(
                DOCKER,
                &host,
                &[
                    "run", "-d", "--name", name, "-p", spec, "busybox", "busybox", "sleep", "60",
                ],
            );
            // The listener of the host may not have bound yet.
            if out.status.success() && tries < 20 {
                ok(cli(DOCKER, &host, &["rm", "-f", name]));
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            break out;
        };
        let port = spec.split(':').next().unwrap();
        refused(
            out,
            125,
            &format!("Bind for 0.0.0.0:{port} failed: port is already allocated"),
        );
        assert_eq!(inspect(&host, name)["State"]["Status"], "created");
        assert_eq!(ns.ruleset(), before, "{name}: the rules changed");
    }
    let _ = Command::new("kill").arg(listener.trim()).status();
    // Stopped: the rule and the port go.
    ok(cli(DOCKER, &host, &["stop", "-t", "1", "web"]));
    assert!(!ns.ruleset().contains("dport 8080"), "{}", ns.ruleset());
    assert!(!ns.curl("http://127.0.0.1:8080/").status.success());
    ok(cli(
        DOCKER,
        &host,
        &[
            "rm", "-f", "web", "udp", "all", "exposed", "again", "taken", "lo6",
        ],
    ));
    ok(cli(DOCKER, &host, &["network", "rm", "user"]));
    assert!(!ns.ruleset().contains("bt-user"), "{}", ns.ruleset());
}

#[test]
fn published_ports_keep_answering_across_a_daemon_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    seed_images(&dir.path().join("data"));
    let ns = Netns::new();
    let mut d = daemon(dir.path(), &ns);
    let host = d.host.clone();
    let _clean = Containers(host.clone());
    let volume = web_root(dir.path());
    httpd(DOCKER, &host, "web", &volume, &["-p", "8080:80"]);
    assert_eq!(fetch(&ns, "http://127.0.0.1:8080/"), "hello from web\n");
    // kill -9: the kernel's rules carry on without the daemon.
    // SAFETY: signals our own child.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGKILL) };
    let _ = d.child.wait();
    assert_eq!(fetch(&ns, "http://127.0.0.1:8080/"), "hello from web\n");
    // Someone deletes berth's table while the daemon is away: it comes back at start.
    ok(ns.run(&["nft", "delete", "table", "ip", "berth"]));
    assert!(!ns.curl("http://127.0.0.1:8080/").status.success());
    d = daemon(dir.path(), &ns);
    assert_eq!(fetch(&ns, "http://127.0.0.1:8080/"), "hello from web\n");
    assert_eq!(
        fetch(&ns, &format!("http://{HOST_ADDR}:8080/")),
        "hello from web\n"
    );
    // [::1] is the daemon's forwarder: back with the daemon.
    assert_eq!(fetch(&ns, "http://[::1]:8080/"), "hello from web\n");
    // The restarted daemon holds the port again.
    let out = cli(
        DOCKER,
        &host,
        &[
            "run", "-d", "--name", "again", "-p", "8080:80", "busybox", "busybox", "sleep", "60",
        ],
    );
    refused(out, 125, "port is already allocated");
    // A clean restart too.
    drop(d);
    d = daemon(dir.path(), &ns);
    assert_eq!(fetch(&ns, "http://127.0.0.1:8080/"), "hello from web\n");
    assert_eq!(
        ok(cli(DOCKER, &host, &["port", "web", "80"])),
        "0.0.0.0:8080\n:::8080\n"
    );
    assert_eq!(fetch(&ns, "http://[::1]:8080/"), "hello from web\n");
    ok(cli(DOCKER, &host, &["rm", "-f", "web", "again"]));
    assert!(!ns.ruleset().contains("dport 8080"), "{}", ns.ruleset());
    drop(d);
}

/// A second namespace, "the world" beyond the host: 10.78.0.2, reached through a veth from
/// the host's 10.78.0.1, with no route back to the containers' subnets (so only masquerade
/// gets an answer back), serving http on 80.
fn world(ns: &Netns, dir: &Path) -> (Netns, Child) {
    let w = Netns::new();
    let pid = w.holder.id().to_string();
    for cmd in [
        vec![
            "ip", "link", "add", "bt-wh", "type", "veth", "peer", "name", "bt-ww", "netns", &pid,
        ],
        vec!["ip", "addr", "add", "10.78.0.1/24", "dev", "bt-wh"],
        vec!["ip", "link", "set", "bt-wh", "up"],
    ] {
        ok(ns.run(&cmd));
    }
    ok(w.run(&["ip", "addr", "add", "10.78.0.2/24", "dev", "bt-ww"]));
    ok(w.run(&["ip", "link", "set", "bt-ww", "up"]));
    let www = dir.join("world");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the world\n").unwrap();
    let server = Command::new("nsenter")
        .arg(format!("--net={}", w.path()))
        .args(["--", "busybox", "httpd", "-f", "-p", "10.78.0.2:80", "-h"])
        .arg(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (w, server)
}

#[test]
fn masquerade_out_isolation_between_networks_and_internal_has_no_way_out() {
    let dir = tempfile::tempdir().unwrap();
    seed_images(&dir.path().join("data"));
    let ns = Netns::new();
    let (_world, server) = world(&ns, dir.path());
    let _server = Killed(server);
    let d = daemon(dir.path(), &ns);
    let host = d.host.clone();
    let _clean = Containers(host.clone());
    let volume = web_root(dir.path());
    for (name, subnet, internal) in [
        ("a", "10.245.0.0/24", false),
        ("b", "10.246.0.0/24", false),
        ("i", "10.247.0.0/24", true),
    ] {
        let bridge = format!("com.docker.network.bridge.name=bt-{name}");
        let mut args = vec!["network", "create", "--subnet", subnet, "-o", &bridge];
        if internal {
            args.push("--internal");
        }
        args.push(name);
        ok(cli(DOCKER, &host, &args));
    }
    httpd(
        DOCKER,
        &host,
        "srv",
        &volume,
        &["--network", "b", "--ip", "10.246.0.10"],
    );
    let world_url = "http://10.78.0.2/";
    // Out through masquerade, from a user network and the default bridge.
    for network in ["a", "bridge"] {
        let (done, got) = wget_from(&host, network, world_url, &[]);
        assert!(
            done && got.contains("hello from the world"),
            "{network}: {got}"
        );
    }
    // Same network: yes. Another network: no (isolation), though the route is there.
    let (done, got) = wget_from(&host, "b", "http://10.246.0.10/", &[]);
    assert!(done && got.contains("hello from web"), "{got}");
    let (done, got) = wget_from(&host, "a", "http://10.246.0.10/", &[]);
    assert!(!done, "network a reached network b: {got}");
    // --internal: no default route, and none works when the container makes one.
    let (done, got) = wget_from(&host, "i", world_url, &[]);
    assert!(!done, "{got}");
    let (done, got) = wget_from(
        &host,
        "i",
        world_url,
        &["busybox ip route add default via 10.247.0.1 &&"],
    );
    assert!(!done, "an --internal network got out: {got}");
    // A port published from an --internal network is not reachable either (docker's rule).
    // The rules go with their networks.
    ok(cli(DOCKER, &host, &["rm", "-f", "srv"]));
    ok(cli(DOCKER, &host, &["network", "rm", "a", "b", "i"]));
    let rules = ns.ruleset();
    for gone in ["bt-a", "bt-b", "bt-i", "10.245.0.0", "10.247.0.0"] {
        assert!(!rules.contains(gone), "{gone}: {rules}");
    }
    assert!(rules.contains("bt-def0"), "{rules}");
}

/// A child killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_port_specs_are_refused_with_docker_s_errors() {
    let dir = tempfile::tempdir().unwrap();
    seed_images(&dir.path().join("data"));
    let ns = Netns::new();
    let d = daemon(dir.path(), &ns);
    let host = d.host.clone();
    let _clean = Containers(host.clone());
    let before = ns.ruleset();
    for (spec, message) in [
        ("", "no port specified: <empty>"),
        ("abc", "invalid containerPort: abc"),
        ("80/xyz", "invalid proto: xyz"),
        ("abc:80", "invalid hostPort: abc"),
        ("70000:80", "invalid hostPort: 70000"),
        ("1.2.3:80:80", "invalid IP address: 1.2.3"),
        ("[fd00::zz]:80:80", "invalid IP address: fd00::zz"),
        (
            "8080-8081:80-82",
            "invalid ranges specified for container and host Ports: 80-82 and 8080-8081",
        ),
    ] {
        let out = berth(&host, &["run", "-d", "-p", spec, "busybox", "true"]);
        refused(out, 125, message);
        let out = cli(
            NEW_DOCKER,
            &host,
            &["run", "-d", "-p", spec, "busybox", "true"],
        );
        refused(out, 125, message);
    }
    // The daemon's own check, for clients that send the API what a CLI would not.
    let socket = format!("{}/berth.sock", dir.path().display());
    for (bindings, bad) in [
        (r#"{"abc/tcp": [{"HostPort": "80"}]}"#, "abc"),
        (r#"{"80/tcp": [{"HostPort": "99999"}]}"#, "99999"),
        (
            r#"{"80/tcp": [{"HostIp": "1.2.3", "HostPort": "80"}]}"#,
            "1.2.3",
        ),
        (
            r#"{"80/tcp": [{"HostIp": "fd00::zz", "HostPort": "80"}]}"#,
            "fd00::zz",
        ),
    ] {
        let body = format!(
            r#"{{"Image": "busybox", "Cmd": ["true"], "HostConfig": {{"PortBindings": {bindings}}}}}"#
        );
        let out = Command::new("curl")
            .args([
                "-sS",
                "-w",
                "\n%{http_code}",
                "--unix-socket",
                &socket,
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
                "http://x/containers/create",
            ])
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(text.ends_with("\n400"), "{bindings}: {text}");
        assert!(
            text.contains(&format!("invalid port specification: \\\"{bad}\\\"")),
            "{bindings}: {text}"
        );
    }
    assert_eq!(ok(berth(&host, &["ps", "-aq"])), "", "a container was made");
    assert_eq!(ns.ruleset(), before);
}
