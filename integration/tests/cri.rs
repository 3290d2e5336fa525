//! berth under Kubernetes' CRI: Debian's containerd 1.6 with its CRI plugin (a private one per
//! test, in a network namespace of its own, see `berth_integration::cri`), driven by a CRI
//! client of Kubernetes' generated protos, for each runtime handler: stock `runc`,
//! `berth-runc` (berth-runtime behind containerd's runc shim) and `berth` (berth's shim and
//! runtime). Every handler must give the same observable results.
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_integration::cri::{images, Cri};
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
        linux: Some(LinuxContainerConfig {
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
        }),
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
    let listed = cri
        .call(
            cri.runtime()
                .list_pod_sandbox(ListPodSandboxRequest::default()),
        )
        .unwrap();
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
    let listed = cri
        .call(
            cri.runtime()
                .list_pod_sandbox(ListPodSandboxRequest::default()),
        )
        .unwrap();
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

handlers!(cri_host_network_pod, host_network_pod);
/// A host-network pod shares containerd's network namespace (the harness's own here).
fn host_network_pod(handler: &str) {
    let cri = Cri::start(&format!("hostnet-{handler}"));
    let pod = run_pod(&cri, handler, "hostnet", NamespaceMode::Node);
    let c = run_container(&cri, &pod, "probe", "exec sleep 100000");
    let inode: u64 = sh(&cri, &c, "stat -L -c %i /proc/self/ns/net")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(inode, std::fs::metadata(cri.netns()).unwrap().ino());
    stop_and_remove_container(&cri, &c, 2);
    remove_pod_and_check(&cri, &pod, &[&c], None);
}
