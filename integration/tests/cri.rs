//! berth under Kubernetes' CRI: Debian's containerd 1.6 with its CRI plugin (a private one per
//! test, in a network namespace of its own, see `berth_integration::cri`), driven by a CRI
//! client of Kubernetes' generated protos, for each runtime handler: stock `runc`,
//! `berth-runc` (berth-runtime behind containerd's runc shim) and `berth` (berth's shim and
//! runtime). Every handler must give the same observable results.
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_integration::cri::{images, Cri, Handler, BERTH_TYPE, RUNC_TYPE};
use berth_integration::host::{cgroups_named, mounts_mentioning};
use k8s_cri::v1::*;

/// One test per handler.
macro_rules! handlers {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn runc() {
                super::$body("runc");
            }
            #[test]
            fn berth_runc() {
                super::$body("berth-runc");
            }
            #[test]
            fn berth() {
                super::$body("berth");
            }
        }
    };
}

/// A pod run through the CRI: its id and the config it was made with.
struct Pod {
    id: String,
    config: PodSandboxConfig,
    log_dir: PathBuf,
}

fn namespaces(network: NamespaceMode) -> Option<NamespaceOption> {
    Some(NamespaceOption {
        network: network as i32,
        pid: NamespaceMode::Pod as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    })
}

/// RunPodSandbox of pod `name` (hostname, DNS, a port mapping, labels, annotations).
fn run_pod(cri: &Cri, handler: &str, name: &str, network: NamespaceMode) -> Pod {
    run_pod_with(cri, handler, name, network, |_| {})
}

fn run_pod_with(
    cri: &Cri,
    handler: &str,
    name: &str,
    network: NamespaceMode,
    edit: impl FnOnce(&mut PodSandboxConfig),
) -> Pod {
    let log_dir = cri.dir.join("logs").join(name);
    std::fs::create_dir_all(&log_dir).unwrap();
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "berth-test".into(),
            attempt: 0,
        }),
        // A host-network pod keeps the host's UTS namespace, so no hostname (as the kubelet).
        hostname: if network == NamespaceMode::Pod {
            format!("{name}-host")
        } else {
            String::new()
        },
        log_directory: log_dir.display().to_string(),
        dns_config: Some(DnsConfig {
            servers: vec!["192.0.2.53".into()],
            searches: vec!["berth.test".into()],
            options: vec!["ndots:2".into()],
        }),
        port_mappings: if network == NamespaceMode::Pod {
            vec![PortMapping {
                protocol: Protocol::Tcp as i32,
                container_port: 8080,
                host_port: 18080,
                host_ip: String::new(),
            }]
        } else {
            Vec::new()
        },
        labels: HashMap::from([("app".into(), name.into())]),
        annotations: HashMap::from([("berth.test/pod".into(), name.into())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/{name}", cri.cgroup_parent),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: namespaces(network),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut config = config;
    edit(&mut config);
    let id = cri
        .call(cri.runtime().run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        }))
        .unwrap_or_else(|e| panic!("RunPodSandbox {name} ({handler}): {e}\n{}", cri.log()))
        .pod_sandbox_id;
    Pod {
        id,
        config,
        log_dir,
    }
}

/// CreateContainer + StartContainer of `name` running `sh -c script` in `pod`.
fn run_container(cri: &Cri, pod: &Pod, name: &str, script: &str) -> String {
    run_container_with(cri, pod, name, script, |_| {})
}

/// [`run_container`] with the config (resources, security context) changed by `edit`.
fn run_container_with(
    cri: &Cri,
    pod: &Pod,
    name: &str,
    script: &str,
    edit: impl FnOnce(&mut LinuxContainerConfig),
) -> String {
    let mut linux = LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            namespace_options: pod
                .config
                .linux
                .as_ref()
                .and_then(|l| l.security_context.as_ref())
                .and_then(|s| s.namespace_options.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    edit(&mut linux);
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: images::BUSYBOX.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        labels: HashMap::from([("container".into(), name.into())]),
        linux: Some(linux),
        ..Default::default()
    };
    let id = cri
        .call(cri.runtime().create_container(CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        }))
        .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", cri.log()))
        .container_id;
    cri.call(cri.runtime().start_container(StartContainerRequest {
        container_id: id.clone(),
    }))
    .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", cri.log()));
    id
}

fn exec_sync(
    cri: &Cri,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<ExecSyncResponse, tonic::Status> {
    cri.call(cri.runtime().exec_sync(ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    }))
}

/// stdout of a successful `sh -c script` exec.
fn sh(cri: &Cri, id: &str, script: &str) -> String {
    let r = exec_sync(cri, id, &["sh", "-c", script], 30)
        .unwrap_or_else(|e| panic!("ExecSync {script:?}: {e}"));
    assert_eq!(
        r.exit_code,
        0,
        "{script:?}: stdout {} stderr {}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    String::from_utf8_lossy(&r.stdout).into_owned()
}

fn list_pods(cri: &Cri) -> ListPodSandboxResponse {
    cri.call(
        cri.runtime()
            .list_pod_sandbox(ListPodSandboxRequest::default()),
    )
    .unwrap_or_else(|e| panic!("ListPodSandbox: {e}"))
}

fn container_status(cri: &Cri, id: &str) -> ContainerStatus {
    cri.call(cri.runtime().container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    }))
    .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
    .status
    .expect("status")
}

/// Polls `check` (returning what it saw) until it holds or 20 s passed.
fn eventually<T: std::fmt::Debug>(what: &str, mut check: impl FnMut() -> (bool, T)) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, seen) = check();
        if ok {
            return seen;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop_and_remove_container(cri: &Cri, id: &str, timeout: i64) -> ContainerStatus {
    cri.call(cri.runtime().stop_container(StopContainerRequest {
        container_id: id.into(),
        timeout,
    }))
    .unwrap_or_else(|e| panic!("StopContainer {id}: {e}\n{}", cri.log()));
    let status = container_status(cri, id);
    cri.call(cri.runtime().remove_container(RemoveContainerRequest {
        container_id: id.into(),
    }))
    .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    status
}

/// StopPodSandbox + RemovePodSandbox, then nothing of the pod or its containers is left:
/// no shim, mount, cgroup, network namespace, veth or CNI address.
fn remove_pod_and_check(cri: &Cri, pod: &Pod, containers: &[&str], ip: Option<&str>) {
    let (_, info) = cri.pod_status(&pod.id);
    let netns = berth_integration::cri::netns_of(&info);
    cri.call(cri.runtime().stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.id.clone(),
    }))
    .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", cri.log()));
    cri.call(cri.runtime().remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.id.clone(),
    }))
    .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", cri.log()));
    let listed = list_pods(cri);
    assert!(
        listed.items.iter().all(|p| p.id != pod.id),
        "pod still listed"
    );
    let shim_of = |id: &str| {
        berth_integration::cri::processes(|c| c.contains("containerd-shim") && c.contains(id))
    };
    eventually("the pod's shim exits", || {
        let left = shim_of(&pod.id);
        (left.is_empty(), left)
    });
    for id in containers.iter().copied().chain([pod.id.as_str()]) {
        let mounts = mounts_mentioning(Path::new(id));
        assert!(mounts.is_empty(), "mounts of {id} left: {mounts:?}");
        let cgroups = cgroups_named(id);
        assert!(cgroups.is_empty(), "cgroups of {id} left: {cgroups:?}");
    }
    if let Some(path) = netns {
        assert!(!Path::new(&path).exists(), "pod netns {path} left");
    }
    let veths = cri.in_netns(&["ip", "-o", "link", "show", "type", "veth"]);
    assert!(veths.trim().is_empty(), "veths left: {veths}");
    if let Some(ip) = ip {
        let lease = cri.dir.join("cni/ipam").join(&cri.network).join(ip);
        assert!(!lease.exists(), "CNI address {ip} still reserved");
    }
}

handlers!(cri_version_and_status, version_and_status);
fn version_and_status(handler: &str) {
    let cri = Cri::start(&format!("status-{handler}"));
    let v = cri
        .call(cri.runtime().version(VersionRequest {
            version: "v1".into(),
        }))
        .unwrap();
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(v.runtime_api_version, "v1");
    let status = cri
        .call(cri.runtime().status(StatusRequest { verbose: true }))
        .unwrap();
    let conditions = status.status.expect("runtime status").conditions;
    for kind in ["RuntimeReady", "NetworkReady"] {
        let c = conditions
            .iter()
            .find(|c| c.r#type == kind)
            .unwrap_or_else(|| panic!("no {kind} in {conditions:?}"));
        assert!(c.status, "{kind}: {c:?}");
    }
    let pod = run_pod(&cri, handler, "status", NamespaceMode::Node);
    let (status, _) = cri.pod_status(&pod.id);
    assert_eq!(status.runtime_handler, handler);
    remove_pod_and_check(&cri, &pod, &[], None);
}

handlers!(cri_pod_with_two_containers, pod_with_two_containers);
/// A CNI pod: its IP, labels, hostname, DNS; two containers sharing its network, IPC and pid
/// namespaces (one serves on localhost, the other fetches); ExecSync; CRI-format logs and
/// ReopenContainerLog; ContainerStatus; StopContainer's grace period; teardown leaves nothing.
fn pod_with_two_containers(handler: &str) {
    let cri = Cri::start(&format!("pod-{handler}"));
    let pod = run_pod(&cri, handler, "web", NamespaceMode::Pod);
    let (status, _) = cri.pod_status(&pod.id);
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    let ip = status.network.expect("pod network").ip;
    assert!(ip.starts_with("10.88.77."), "pod IP {ip:?}");
    assert_eq!(status.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(
        status.annotations.get("berth.test/pod").map(String::as_str),
        Some("web")
    );
    let listed = list_pods(&cri);
    let item = listed
        .items
        .iter()
        .find(|p| p.id == pod.id)
        .expect("pod listed");
    assert_eq!(item.runtime_handler, handler);

    let server = run_container(
        &cri,
        &pod,
        "server",
        "mkdir -p /www && echo hello-from-server > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    let client = run_container(
        &cri,
        &pod,
        "client",
        "echo out-line; echo err-line >&2; while :; do [ -f /tmp/say ] && cat /tmp/say && rm /tmp/say; sleep 0.2; done",
    );
    let fetched = eventually("the client reaches the server on localhost", || {
        let r = exec_sync(
            &cri,
            &client,
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
            10,
        );
        let out = r.map(|r| String::from_utf8_lossy(&r.stdout).into_owned());
        (
            out.as_deref().is_ok_and(|o| o == "hello-from-server\n"),
            out,
        )
    });
    drop(fetched);
    for ns in ["net", "ipc", "pid"] {
        let script = format!("readlink /proc/self/ns/{ns}");
        assert_eq!(
            sh(&cri, &server, &script),
            sh(&cri, &client, &script),
            "{ns} namespace"
        );
    }
    // The pod's port mapping (portmap's DNAT on the host side): host port 18080 on the
    // bridge's address reaches the server's 8080.
    let gateway = berth_integration::cri::SUBNET.replace(".0/24", ".1");
    let page = eventually("host port 18080 reaches the pod", || {
        let page = http_get(&cri, &format!("{gateway}:18080"));
        (page.ends_with("hello-from-server\n"), page)
    });
    assert!(page.starts_with("HTTP/1."), "{page}");

    // The pause process (pid 1 of the pod's pid namespace) adopts and reaps an orphan.
    let orphan = sh(
        &cri,
        &client,
        "sleep 3 </dev/null >/dev/null 2>&1 & echo $!",
    );
    let orphan = orphan.trim();
    let parent = sh(
        &cri,
        &client,
        &format!("grep PPid: /proc/{orphan}/status; cat /proc/1/comm"),
    );
    assert_eq!(
        parent.split_whitespace().collect::<Vec<_>>(),
        ["PPid:", "1", "pause"],
        "the orphan's parent"
    );
    eventually("the pause process reaps the orphan", || {
        let state = sh(
            &cri,
            &client,
            &format!("cat /proc/{orphan}/stat 2>/dev/null || echo gone"),
        );
        (state.trim() == "gone", state)
    });

    let ps = sh(&cri, &client, "ps -o comm");
    assert!(
        ps.contains("httpd") && ps.contains("pause"),
        "ps in the pod: {ps}"
    );
    assert_eq!(sh(&cri, &client, "hostname"), "web-host\n");
    let resolv = sh(&cri, &client, "cat /etc/resolv.conf");
    for want in [
        "nameserver 192.0.2.53",
        "search berth.test",
        "options ndots:2",
    ] {
        assert!(resolv.contains(want), "resolv.conf lacks {want}: {resolv}");
    }

    let r = exec_sync(
        &cri,
        &client,
        &["sh", "-c", "echo o; echo e >&2; exit 3"],
        10,
    )
    .unwrap();
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"o\n"[..], &b"e\n"[..], 3)
    );
    let timed_out = exec_sync(&cri, &client, &["sleep", "60"], 1);
    let err = timed_out.expect_err("ExecSync past its timeout");
    assert!(
        err.message().contains("timeout") || err.message().contains("deadline"),
        "{err}"
    );

    let log = pod.log_dir.join("client.log");
    let text = eventually("both streams in the CRI log", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        (
            t.contains(" stdout F out-line") && t.contains(" stderr F err-line"),
            t,
        )
    });
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(parts.len(), 4, "CRI log line {line:?}");
        assert!(
            parts[0].contains('T') && parts[0].ends_with('Z'),
            "timestamp in {line:?}"
        );
        assert!(
            matches!(parts[1], "stdout" | "stderr") && matches!(parts[2], "F" | "P"),
            "{line:?}"
        );
    }
    let rotated = pod.log_dir.join("client.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    cri.call(
        cri.runtime()
            .reopen_container_log(ReopenContainerLogRequest {
                container_id: client.clone(),
            }),
    )
    .unwrap_or_else(|e| panic!("ReopenContainerLog: {e}"));
    sh(&cri, &client, "echo after-reopen > /tmp/say");
    eventually("output after ReopenContainerLog in the new file", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        (t.contains(" stdout F after-reopen"), t)
    });

    // One shim serves the pod: its pause and both containers (grouped by the
    // io.kubernetes.cri.sandbox-id annotation, by containerd-shim-runc-v2 and berth's alike).
    let shims = cri.shims();
    assert_eq!(shims.len(), 1, "shims of one pod: {shims:?}");

    let st = container_status(&cri, &server);
    assert_eq!(st.state, ContainerState::ContainerRunning as i32);
    assert!(st.started_at > 0 && st.created_at > 0, "{st:?}");
    assert_eq!(
        st.log_path,
        pod.log_dir.join("server.log").display().to_string()
    );

    // Ignores SIGTERM (and leaves a child behind): killed after the 2 s grace period.
    let stubborn = run_container(
        &cri,
        &pod,
        "stubborn",
        "trap 'echo got-term' TERM; echo ready; while :; do sleep 1; done",
    );
    eventually("stubborn is ready", || {
        let t = std::fs::read_to_string(pod.log_dir.join("stubborn.log")).unwrap_or_default();
        (t.contains("ready"), t)
    });
    let st = stop_and_remove_container(&cri, &stubborn, 2);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "Error"), "{st:?}");
    let said = std::fs::read_to_string(pod.log_dir.join("stubborn.log")).unwrap_or_default();
    assert!(said.contains("got-term"), "SIGTERM came first: {said}");
    let st = stop_and_remove_container(&cri, &server, 10);
    assert_eq!(st.state, ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, 143, "httpd ends on SIGTERM: {st:?}");
    assert!(st.finished_at >= st.started_at, "{st:?}");
    stop_and_remove_container(&cri, &client, 10);
    let left = cri
        .call(
            cri.runtime()
                .list_containers(ListContainersRequest::default()),
        )
        .unwrap();
    assert!(left.containers.is_empty(), "{:?}", left.containers);
    remove_pod_and_check(&cri, &pod, &[&server, &client, &stubborn], Some(&ip));
    // containerd logs "Failed to pipe stdout of container" when it closes a container's
    // fifos before their writers did. Here containerd-shim-runc-v2 gives two such lines (the
    // stubborn container's leftover child holds its stdout when the SIGKILL comes); berth's
    // shim closes the output at the exit and gives none.
    if handler == "berth" {
        let log = cri.log();
        let noise: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("Failed to pipe"))
            .collect();
        assert!(
            noise.is_empty(),
            "containerd could not pipe a container's output: {noise:#?}"
        );
    }
}

/// `GET /` of `addr` (host:port) from containerd's network namespace: the whole response.
fn http_get(cri: &Cri, addr: &str) -> String {
    let addr = addr.to_owned();
    cri.in_netns_thread(move || {
        use std::io::{Read, Write};
        let Ok(mut tcp) = std::net::TcpStream::connect(&addr) else {
            return String::new();
        };
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = write!(tcp, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        let mut page = String::new();
        let _ = tcp.read_to_string(&mut page);
        page
    })
}

handlers!(cri_host_network_pod, host_network_pod);
/// A host-network pod shares containerd's network namespace (the harness's own here);
/// containers that end by themselves are reported `Completed` or `Error` with their code.
fn host_network_pod(handler: &str) {
    let cri = Cri::start(&format!("hostnet-{handler}"));
    let pod = run_pod(&cri, handler, "hostnet", NamespaceMode::Node);
    let c = run_container(&cri, &pod, "probe", "exec sleep 100000");
    let inode: u64 = sh(&cri, &c, "stat -L -c %i /proc/self/ns/net")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(inode, std::fs::metadata(cri.netns()).unwrap().ino());
    let done = run_container(&cri, &pod, "done", "exit 0");
    let failed = run_container(&cri, &pod, "failed", "exit 7");
    for (id, code, reason) in [(&done, 0, "Completed"), (&failed, 7, "Error")] {
        let st = eventually("the container exits", || {
            let st = container_status(&cri, id);
            (st.state == ContainerState::ContainerExited as i32, st)
        });
        assert_eq!((st.exit_code, st.reason.as_str()), (code, reason), "{st:?}");
        // containerd stamps started_at after its Start call returns, finished_at from the
        // exit event: an instant exit may come first, so only both being set is asserted.
        assert!(st.finished_at > 0 && st.started_at > 0, "{st:?}");
    }
    for id in [&c, &done, &failed] {
        stop_and_remove_container(&cri, id, 2);
    }
    remove_pod_and_check(&cri, &pod, &[&c, &done, &failed], None);
}

/// The pid of container `id`'s init (containerd's verbose status).
fn container_pid(cri: &Cri, id: &str) -> u32 {
    let r = cri
        .call(cri.runtime().container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }))
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&r.info["info"]).unwrap();
    info["pid"].as_u64().expect("pid in verbose info") as u32
}

/// A cgroup file of `pid`: `v1` in its v1 `controller` hierarchy, else `v2` (pure cgroup v2).
fn cgroup_file(pid: u32, controller: &str, v1: &str, v2: &str) -> String {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let rel = table.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        format!("/sys/fs/cgroup{rel}/{v2}")
    } else {
        let (ctrls, rel) = table
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, rel) = (parts.next()?, parts.next()?, parts.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == controller)
                    .then_some((ctrls, rel))
            })
            .unwrap_or_else(|| panic!("no {controller} in {table}"));
        format!("/sys/fs/cgroup/{ctrls}{rel}/{v1}")
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_owned()
}

handlers!(cri_resources_stats_oom, resources_stats_oom);
/// UpdateContainerResources reaches the cgroup; ContainerStats has non-zero figures; a
/// container over its memory limit is reported OOMKilled.
fn resources_stats_oom(handler: &str) {
    const MIB: i64 = 1 << 20;
    let cri = Cri::start(&format!("res-{handler}"));
    let pod = run_pod(&cri, handler, "res", NamespaceMode::Node);
    let busy = run_container_with(
        &cri,
        &pod,
        "busy",
        "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo done; exec sleep 100000",
        |l| {
            l.resources = Some(LinuxContainerResources {
                memory_limit_in_bytes: 64 * MIB,
                cpu_shares: 512,
                ..Default::default()
            })
        },
    );
    let pid = container_pid(&cri, &busy);
    let limit = || cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(limit(), (64 * MIB).to_string());
    cri.call(
        cri.runtime()
            .update_container_resources(UpdateContainerResourcesRequest {
                container_id: busy.clone(),
                linux: Some(LinuxContainerResources {
                    memory_limit_in_bytes: 96 * MIB,
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    ..Default::default()
                }),
                ..Default::default()
            }),
    )
    .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}"));
    assert_eq!(limit(), (96 * MIB).to_string());
    let quota = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(quota.starts_with("50000"), "cpu quota {quota}");

    eventually("busy did its work", || {
        let t = std::fs::read_to_string(pod.log_dir.join("busy.log")).unwrap_or_default();
        (t.contains("done"), t)
    });
    let stats = cri
        .call(cri.runtime().container_stats(ContainerStatsRequest {
            container_id: busy.clone(),
        }))
        .unwrap_or_else(|e| panic!("ContainerStats: {e}"))
        .stats
        .expect("stats");
    let cpu = stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value);
    let mem = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value);
    assert!(
        cpu.unwrap_or(0) > 0 && mem.unwrap_or(0) > 0,
        "cpu {cpu:?} memory {mem:?}"
    );
    let all = cri
        .call(
            cri.runtime()
                .list_container_stats(ListContainerStatsRequest::default()),
        )
        .unwrap();
    assert!(all
        .stats
        .iter()
        .any(|s| s.attributes.as_ref().is_some_and(|a| a.id == busy)));

    let hog = run_container_with(
        &cri,
        &pod,
        "hog",
        "exec dd if=/dev/zero of=/dev/null bs=128M count=1",
        |l| {
            l.resources = Some(LinuxContainerResources {
                memory_limit_in_bytes: 32 * MIB,
                ..Default::default()
            })
        },
    );
    let st = eventually("hog is OOM-killed", || {
        let st = container_status(&cri, &hog);
        (st.state == ContainerState::ContainerExited as i32, st)
    });
    assert_eq!(
        (st.reason.as_str(), st.exit_code),
        ("OOMKilled", 137),
        "{st:?}"
    );
    stop_and_remove_container(&cri, &busy, 2);
    stop_and_remove_container(&cri, &hog, 2);
    remove_pod_and_check(&cri, &pod, &[&busy, &hog], None);
}

/// The value of `key:` in `/proc/self/status` as the container sees it.
fn status_field(cri: &Cri, id: &str, key: &str) -> String {
    let out = sh(cri, id, &format!("grep '^{key}:' /proc/self/status"));
    out.split_once(':')
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// Whether the container's mount at `path` is read-only.
fn mount_is_ro(cri: &Cri, id: &str, path: &str) -> bool {
    let line = sh(
        cri,
        id,
        &format!("grep ' {path} ' /proc/mounts | tail -n 1"),
    );
    let options = line.split_whitespace().nth(3).unwrap_or_default();
    assert!(!options.is_empty(), "no mount at {path}");
    options.split(',').any(|o| o == "ro")
}

fn caps(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("cap mask {s:?}"))
}

handlers!(cri_security_context, security_context);
/// run_as_user, readonly_rootfs, capabilities, seccomp RuntimeDefault/Unconfined,
/// no_new_privs, masked and readonly paths, privileged (in a privileged pod).
fn security_context(handler: &str) {
    let cri = Cri::start(&format!("sec-{handler}"));
    let pod = run_pod(&cri, handler, "sec", NamespaceMode::Node);
    let sleeper = "exec sleep 100000";
    let secure = |edit: fn(&mut LinuxContainerSecurityContext)| {
        move |l: &mut LinuxContainerConfig| {
            edit(l.security_context.get_or_insert_with(Default::default))
        }
    };
    let user = run_container_with(
        &cri,
        &pod,
        "user",
        sleeper,
        secure(|s| {
            s.run_as_user = Some(Int64Value { value: 65534 });
            s.readonly_rootfs = true;
            s.no_new_privs = true;
            s.seccomp = Some(SecurityProfile {
                profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                ..Default::default()
            });
            s.masked_paths = vec!["/proc/version".into()];
            s.readonly_paths = vec!["/proc/sys".into(), "/dev/shm".into()];
        }),
    );
    assert_eq!(sh(&cri, &user, "id -u"), "65534\n");
    let touch = exec_sync(&cri, &user, &["touch", "/x"], 10).unwrap();
    assert_ne!(touch.exit_code, 0, "touch on a read-only rootfs succeeded");
    assert_eq!(status_field(&cri, &user, "NoNewPrivs"), "1");
    assert_eq!(status_field(&cri, &user, "Seccomp"), "2");
    assert_eq!(sh(&cri, &user, "cat /proc/version | wc -c").trim(), "0");
    for path in ["/proc/sys", "/dev/shm"] {
        assert!(mount_is_ro(&cri, &user, path), "{path} is not read-only");
    }

    let capped = run_container_with(
        &cri,
        &pod,
        "caps",
        sleeper,
        secure(|s| {
            s.capabilities = Some(Capability {
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["CHOWN".into()],
                ..Default::default()
            });
            s.seccomp = Some(SecurityProfile {
                profile_type: security_profile::ProfileType::Unconfined as i32,
                ..Default::default()
            });
        }),
    );
    let eff = caps(&status_field(&cri, &capped, "CapEff"));
    assert!(eff & (1 << 12) != 0, "CAP_NET_ADMIN not added: {eff:x}");
    assert!(eff & 1 == 0, "CAP_CHOWN not dropped: {eff:x}");
    assert_eq!(status_field(&cri, &capped, "Seccomp"), "0");
    // Without paths of its own a container gets the defaults, which leave these alone.
    let version = sh(&cri, &capped, "cat /proc/version | wc -c");
    assert_ne!(version.trim(), "0", "/proc/version masked by default");
    assert!(
        !mount_is_ro(&cri, &capped, "/dev/shm"),
        "/dev/shm read-only"
    );
    stop_and_remove_container(&cri, &user, 2);
    stop_and_remove_container(&cri, &capped, 2);
    remove_pod_and_check(&cri, &pod, &[&user, &capped], None);

    let privileged_pod = run_pod_with(&cri, handler, "priv", NamespaceMode::Node, |c| {
        if let Some(s) = c.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
            s.privileged = true;
        }
    });
    let all = run_container_with(
        &cri,
        &privileged_pod,
        "all",
        sleeper,
        secure(|s| s.privileged = true),
    );
    let host_bounding = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bounding = host_bounding
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(status_field(&cri, &all, "CapEff"), host_bounding);
    let devices: usize = sh(&cri, &all, "ls /dev | wc -l").trim().parse().unwrap();
    assert!(
        devices > 20,
        "a privileged container sees the host's devices: {devices}"
    );
    stop_and_remove_container(&cri, &all, 2);
    remove_pod_and_check(&cri, &privileged_pod, &[&all], None);
}

handlers!(
    cri_pods_survive_containerd_kill,
    pods_survive_containerd_kill
);
/// kill -9 of containerd with pods running (a CNI pod and a host-network one); after the
/// restart both pods and their containers are listed and running and still serve, a
/// container that exited meanwhile is reported with its exit code, and new pods start.
fn pods_survive_containerd_kill(handler: &str) {
    let cri = Cri::start(&format!("restart-{handler}"));
    let pod = run_pod(&cri, handler, "survivor", NamespaceMode::Pod);
    let c = run_container(&cri, &pod, "app", "exec sleep 100000");
    let host_pod = run_pod(&cri, handler, "hostsurvivor", NamespaceMode::Node);
    let quitter = run_container(
        &cri,
        &host_pod,
        "quitter",
        "trap 'exit 5' TERM; while :; do sleep 0.1; done",
    );
    let pid = container_pid(&cri, &c);
    let quitter_pid = container_pid(&cri, &quitter);
    cri.kill_containerd();
    assert!(
        berth_integration::host::process_alive(pid as i32),
        "container died with containerd"
    );
    // SAFETY: the init of a container this test made.
    unsafe { libc::kill(quitter_pid as i32, libc::SIGTERM) };
    eventually("quitter exits while containerd is down", || {
        let alive = berth_integration::host::process_alive(quitter_pid as i32);
        (!alive, alive)
    });
    cri.start_containerd();
    let listed = list_pods(&cri);
    for id in [&pod.id, &host_pod.id] {
        let item = listed
            .items
            .iter()
            .find(|p| &p.id == id)
            .unwrap_or_else(|| panic!("pod {id} not listed after restart"));
        assert_eq!(item.state, PodSandboxState::SandboxReady as i32);
    }
    assert_eq!(
        container_status(&cri, &c).state,
        ContainerState::ContainerRunning as i32
    );
    assert_eq!(sh(&cri, &c, "echo alive"), "alive\n");
    let st = eventually("the exit missed while down is recorded", || {
        let st = container_status(&cri, &quitter);
        (st.state == ContainerState::ContainerExited as i32, st)
    });
    assert_eq!((st.exit_code, st.reason.as_str()), (5, "Error"), "{st:?}");
    let ip = cri.pod_status(&pod.id).0.network.expect("network").ip;
    let late = run_pod(&cri, handler, "late", NamespaceMode::Node);
    let late_c = run_container(&cri, &late, "late", "exec sleep 100000");
    assert_eq!(sh(&cri, &late_c, "echo late"), "late\n");
    // The CNI pod first: the checks after each removal look for any veth left.
    stop_and_remove_container(&cri, &c, 2);
    remove_pod_and_check(&cri, &pod, &[&c], Some(&ip));
    stop_and_remove_container(&cri, &late_c, 2);
    remove_pod_and_check(&cri, &late, &[&late_c], None);
    stop_and_remove_container(&cri, &quitter, 2);
    remove_pod_and_check(&cri, &host_pod, &[&quitter], None);
}

handlers!(cri_runtime_options, runtime_options);
/// The handler's runc-style options as a cluster sets them in containerd's CRI config
/// (containerd hands runc's shim its options itself, berth's shim reads them from the
/// `ConfigPath` file): `BinaryName` is the runtime binary run for every step and `Root` its
/// state root, with containerd's namespace under it as runc-v2 does. `SystemdCgroup = true`
/// with a cgroupfs parent fails RunPodSandbox on every handler, leaving nothing; where systemd
/// is not the cgroup manager, berth's shim says so itself before calling the runtime.
fn runtime_options(handler: &str) {
    let bin = berth_integration::cri::bin_dir();
    let (runtime_type, real) = match handler {
        "runc" => (RUNC_TYPE, PathBuf::from("/usr/sbin/runc")),
        "berth-runc" => (RUNC_TYPE, bin.join("berth-runtime")),
        _ => (BERTH_TYPE, bin.join("berth-runtime")),
    };
    let cri = Cri::start_with(&format!("opts-{handler}"), |dir| {
        let wrapper = dir.join("logged-runtime");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$@\" >> {}\nexec {} \"$@\"\n",
                dir.join("runtime-calls").display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let handler = |name: &str, binary: &Path, systemd_cgroup| Handler {
            name: name.into(),
            runtime_type: runtime_type.into(),
            binary_name: binary.display().to_string(),
            root: dir.join(format!("{name}-root")).display().to_string(),
            systemd_cgroup,
        };
        vec![
            handler("opts", &wrapper, false),
            handler("opts-systemd", &real, true),
        ]
    });
    let root = cri
        .dir
        .join("opts-root")
        .join(berth_integration::cri::NAMESPACE);
    let pod = run_pod(&cri, "opts", "opts", NamespaceMode::Node);
    let c = run_container(&cri, &pod, "app", "exec sleep 100000");
    assert_eq!(sh(&cri, &c, "echo ok"), "ok\n");
    for id in [&pod.id, &c] {
        assert!(
            root.join(id).is_dir(),
            "no runtime state of {id} under Root {}",
            root.display()
        );
    }
    let calls = std::fs::read_to_string(cri.dir.join("runtime-calls")).unwrap_or_default();
    let with_root = format!("--root {}", root.display());
    for step in ["create", "start", "exec"] {
        assert!(
            calls
                .lines()
                .any(|l| l.contains(&with_root) && l.split(' ').any(|w| w == step)),
            "BinaryName not run for {step} with {with_root}: {calls}"
        );
    }
    stop_and_remove_container(&cri, &c, 2);
    remove_pod_and_check(&cri, &pod, &[&c], None);
    for id in [&pod.id, &c] {
        assert!(!root.join(id).exists(), "runtime state of {id} left");
    }
    let calls = std::fs::read_to_string(cri.dir.join("runtime-calls")).unwrap_or_default();
    assert!(
        calls
            .lines()
            .any(|l| l.contains(&with_root) && l.contains(" delete ")),
        "BinaryName not run for delete: {calls}"
    );

    let refused = cri.call(cri.runtime().run_pod_sandbox(RunPodSandboxRequest {
        config: Some(pod.config.clone()),
        runtime_handler: "opts-systemd".into(),
    }));
    let err = refused.expect_err("RunPodSandbox with SystemdCgroup and a cgroupfs parent");
    assert!(err.message().contains("systemd"), "{err}");
    if handler == "berth" && !Path::new("/run/systemd/system").is_dir() {
        assert!(
            err.message()
                .contains("SystemdCgroup = true, but systemd is not the cgroup manager here"),
            "{err}"
        );
    }
    let listed = list_pods(&cri);
    assert!(listed.items.is_empty(), "{:?}", listed.items);
    eventually("no shim left after the refusal", || {
        let shims = cri.shims();
        (shims.is_empty(), shims)
    });
    let mounts = mounts_mentioning(&cri.dir.join("root"));
    assert!(mounts.is_empty(), "mounts left: {mounts:#?}");
}

/// What a streaming URL (Exec or Attach) sent over a websocket, channel by channel
/// (`v4.channel.k8s.io`: 1 stdout, 2 stderr, 3 status), until the server closed or
/// `until` held on what arrived.
fn stream(cri: &Cri, url: &str, until: fn(&[Vec<u8>; 4]) -> bool) -> [Vec<u8>; 4] {
    // The server speaks websocket on its http:// URL.
    let url = url.replacen("http://", "ws://", 1);
    cri.in_netns_thread(move || {
        use tungstenite::client::IntoClientRequest;
        let mut request = url.as_str().into_client_request().expect("stream URL");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        let host = request.uri().authority().expect("host:port").to_string();
        let tcp = std::net::TcpStream::connect(&host).expect("connect to the streaming server");
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let (mut ws, _) = tungstenite::client(request, tcp).expect("websocket handshake");
        let mut got: [Vec<u8>; 4] = Default::default();
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Binary(data)) if !data.is_empty() => {
                    let channel = data[0] as usize;
                    if channel < 4 {
                        got[channel].extend_from_slice(&data[1..]);
                    }
                    if until(&got) {
                        let _ = ws.close(None);
                        return got;
                    }
                }
                Ok(tungstenite::Message::Close(_)) | Err(_) => return got,
                Ok(_) => {}
            }
        }
    })
}

handlers!(cri_exec_and_attach_urls, exec_and_attach_urls);
/// Exec and Attach give URLs of containerd's streaming server; a websocket client runs the
/// exec through one and reads a container's output through the other.
fn exec_and_attach_urls(handler: &str) {
    let cri = Cri::start(&format!("stream-{handler}"));
    let pod = run_pod(&cri, handler, "stream", NamespaceMode::Node);
    let c = run_container(
        &cri,
        &pod,
        "ticker",
        "while :; do echo tick; sleep 0.2; done",
    );
    let url = cri
        .call(
            cri.runtime().exec(ExecRequest {
                container_id: c.clone(),
                cmd: ["sh", "-c", "echo exec-out; echo exec-err >&2; exit 0"]
                    .map(String::from)
                    .to_vec(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        )
        .unwrap_or_else(|e| panic!("Exec: {e}"))
        .url;
    let got = stream(&cri, &url, |_| false);
    assert_eq!(String::from_utf8_lossy(&got[1]), "exec-out\n");
    assert_eq!(String::from_utf8_lossy(&got[2]), "exec-err\n");
    let status = String::from_utf8_lossy(&got[3]);
    assert!(status.contains("Success"), "exec status {status:?}");

    let url = cri
        .call(cri.runtime().attach(AttachRequest {
            container_id: c.clone(),
            stdout: true,
            stderr: true,
            ..Default::default()
        }))
        .unwrap_or_else(|e| panic!("Attach: {e}"))
        .url;
    let got = stream(&cri, &url, |g| {
        String::from_utf8_lossy(&g[1]).contains("tick\n")
    });
    assert!(
        String::from_utf8_lossy(&got[1]).contains("tick\n"),
        "{got:?}"
    );
    stop_and_remove_container(&cri, &c, 2);
    remove_pod_and_check(&cri, &pod, &[&c], None);
}

handlers!(
    cri_leftovers_killed_at_init_exit,
    leftovers_killed_at_init_exit
);
/// A container without a pid namespace of its own (the pod's, or the host's) whose init
/// exits while a child of it still runs: the child is killed at the exit (`kill --all`, as
/// containerd-shim-runc-v2 does), the container is reported exited with the init's code,
/// and the pod goes away with nothing left (critest's nginx workers once survived their
/// master with berth's shim and held StopPodSandbox for 120 s).
fn leftovers_killed_at_init_exit(handler: &str) {
    let cri = Cri::start(&format!("leftovers-{handler}"));
    for (n, pid_mode) in [(0, NamespaceMode::Pod), (1, NamespaceMode::Node)] {
        let name = format!("left{n}");
        let pod = run_pod_with(&cri, handler, &name, NamespaceMode::Pod, |c| {
            let ns = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
            ns.namespace_options.as_mut().unwrap().pid = pid_mode as i32;
        });
        // A command line no other process has: this test process, this handler, this pod.
        let h = berth_integration::cri::HANDLERS
            .iter()
            .position(|x| *x == handler)
            .unwrap();
        let marker = 200_000 + std::process::id() % 1000 * 100 + h as u32 * 10 + n;
        let leftovers =
            || berth_integration::cri::processes(|c| c.trim_end() == format!("sleep {marker}"));
        let c = run_container(
            &cri,
            &pod,
            "parent",
            &format!("sleep {marker} & sleep 3; exit 5"),
        );
        eventually("the child runs beside its parent", || {
            let left = leftovers();
            (!left.is_empty(), left)
        });
        let st = eventually("the parent exits", || {
            let st = container_status(&cri, &c);
            (st.state == ContainerState::ContainerExited as i32, st)
        });
        assert_eq!(st.exit_code, 5, "{pid_mode:?}: {st:?}");
        eventually("the child is killed at its parent's exit", || {
            let left = leftovers();
            (left.is_empty(), left)
        });
        stop_and_remove_container(&cri, &c, 2);
        remove_pod_and_check(&cri, &pod, &[&c], None);
    }
}
