use serde_json::{json, Value};

use super::*;

const MINIMAL_20_10: &str = include_str!("../testdata/create-minimal-docker-20.10.json");
const FULL_20_10: &str = include_str!("../testdata/create-full-docker-20.10.json");
const FULL_28: &str = include_str!("../testdata/create-full-docker-28.json");

fn parse(raw: &str) -> CreateRequest {
    serde_json::from_str(raw).expect("create request parses")
}

fn round_trip(raw: &str) -> (Value, Value) {
    let sent: Value = serde_json::from_str(raw).unwrap();
    let back = serde_json::to_value(parse(raw)).unwrap();
    (sent, back)
}

#[test]
fn docker_20_10_minimal_request_round_trips_exactly() {
    let (sent, back) = round_trip(MINIMAL_20_10);
    assert_eq!(sent, back);
}

#[test]
fn docker_20_10_full_request_round_trips_exactly() {
    let (sent, back) = round_trip(FULL_20_10);
    assert_eq!(sent, back);
}

#[test]
fn docker_28_full_request_carries_every_flag() {
    let r = parse(FULL_28);
    let (c, h) = (&r.config, &r.host_config);
    assert_eq!(
        (c.hostname.as_str(), c.domainname.as_str()),
        ("h1", "example.org")
    );
    assert_eq!(c.user, "1000:1000");
    assert!(c.tty && c.open_stdin && c.stdin_once && c.attach_stdin);
    assert_eq!(
        c.env.as_deref(),
        Some(&["A=1".to_string(), "B".to_string()][..])
    );
    assert_eq!(
        c.cmd.as_deref(),
        Some(&["echo".to_string(), "hi".to_string()][..])
    );
    assert_eq!(c.entrypoint.as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert_eq!(c.working_dir, "/work");
    assert_eq!(c.stop_signal, "SIGUSR1");
    assert_eq!(c.stop_timeout, Some(5));
    let hc = c.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test.as_deref().unwrap(), ["CMD-SHELL", "true"]);
    assert_eq!((hc.interval, hc.retries), (2_000_000_000, 3));
    let ports: Vec<_> = c.exposed_ports.as_ref().unwrap().keys().collect();
    assert_eq!(ports, ["80/tcp", "90/tcp"]);
    assert_eq!(c.labels.as_ref().unwrap()["k"], "v");

    assert_eq!(list(&h.binds), ["/tmp:/h:ro"]);
    assert_eq!(h.log_config.r#type, "json-file");
    assert_eq!(h.network_mode, "none");
    let binding = &h.port_bindings.as_ref().unwrap()["80/tcp"]
        .as_ref()
        .unwrap()[0];
    assert_eq!(binding.host_port, "8080");
    assert_eq!(
        h.restart_policy,
        RestartPolicy {
            name: "on-failure".into(),
            maximum_retry_count: 3
        }
    );
    assert_eq!(list(&h.cap_add), ["CAP_NET_ADMIN"]);
    assert_eq!(list(&h.cap_drop), ["CAP_MKNOD"]);
    assert_eq!(list(&h.dns), ["1.1.1.1"]);
    assert_eq!(list(&h.extra_hosts), ["a:1.2.3.4"]);
    assert_eq!(list(&h.group_add), ["10"]);
    assert_eq!(
        (
            h.ipc_mode.as_str(),
            h.pid_mode.as_str(),
            h.uts_mode.as_str(),
            h.userns_mode.as_str()
        ),
        ("host", "host", "host", "host")
    );
    assert_eq!(h.oom_score_adj, 100);
    assert!(h.privileged && h.readonly_rootfs);
    assert_eq!(
        list(&h.security_opt),
        ["no-new-privileges", "seccomp=unconfined"]
    );
    let tmpfs = h.tmpfs.as_ref().unwrap();
    assert_eq!(
        (tmpfs["/run"].as_str(), tmpfs["/t"].as_str()),
        ("rw,size=1m", "")
    );
    assert_eq!(h.shm_size, 128 << 20);
    assert_eq!(h.sysctls.as_ref().unwrap()["net.ipv4.ip_forward"], "1");
    assert_eq!(
        (h.cpu_shares, h.memory, h.nano_cpus),
        (512, 64 << 20, 1_500_000_000)
    );
    assert_eq!((h.memory_reservation, h.memory_swap), (32 << 20, 128 << 20));
    assert_eq!(h.cgroup_parent, "foo");
    assert_eq!(h.cpuset_cpus, "0");
    assert_eq!(
        list(&h.devices),
        [DeviceMapping {
            path_on_host: "/dev/null".into(),
            path_in_container: "/dev/n".into(),
            cgroup_permissions: "rw".into()
        }]
    );
    assert_eq!((h.oom_kill_disable, h.pids_limit), (Some(true), Some(100)));
    assert_eq!(
        list(&h.ulimits),
        [Ulimit {
            name: "nofile".into(),
            hard: 2048,
            soft: 1024
        }]
    );
    let mounts = list(&h.mounts);
    assert_eq!(
        (mounts[0].r#type.as_str(), mounts[0].source.as_str()),
        ("bind", "/etc")
    );
    assert!(mounts[0].read_only);
    let tmpfs = mounts[1].tmpfs_options.as_ref().unwrap();
    assert_eq!((tmpfs.size_bytes, tmpfs.mode), (1024, 0o1770));
    assert_eq!(h.init, Some(true));
}

#[test]
fn docker_28_request_reparses_to_the_same_value() {
    let r = parse(FULL_28);
    let again: CreateRequest = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
    assert_eq!(r, again);
}

#[test]
fn empty_body_is_all_defaults() {
    assert_eq!(parse("{}"), CreateRequest::default());
}

#[test]
fn null_is_accepted_everywhere_like_docker() {
    let r: CreateRequest = serde_json::from_value(json!({
        "Hostname": null, "Tty": null, "Env": null, "Cmd": null, "Entrypoint": null,
        "ExposedPorts": {"80/tcp": null}, "Labels": null, "StopTimeout": null,
        "HostConfig": {
            "Binds": null, "LogConfig": null, "RestartPolicy": null, "Memory": null,
            "PidsLimit": null, "OomKillDisable": null, "ConsoleSize": null, "Privileged": null,
            "PortBindings": {"80/tcp": null}, "Mounts": [{"Type": "bind", "BindOptions": null}]
        },
        "NetworkingConfig": null
    }))
    .unwrap();
    assert_eq!(r.config.hostname, "");
    assert!(!r.config.tty);
    assert_eq!(r.host_config.memory, 0);
    assert_eq!(r.host_config.pids_limit, None);
    assert!(r.host_config.port_bindings.unwrap()["80/tcp"].is_none());
    let ser = serde_json::to_value(parse(r#"{"ExposedPorts": {"80/tcp": null}}"#)).unwrap();
    assert_eq!(ser["ExposedPorts"], json!({"80/tcp": {}}));
}

#[test]
fn str_slice_takes_a_string_or_a_list_and_keeps_null_apart_from_empty() {
    let r = parse(r#"{"Cmd": "echo hi", "Entrypoint": [""], "HostConfig": {"CapAdd": "ALL"}}"#);
    assert_eq!(r.config.cmd.unwrap(), ["echo hi"]);
    assert_eq!(r.config.entrypoint.unwrap(), [""]);
    assert_eq!(r.host_config.cap_add.unwrap(), ["ALL"]);
    assert_eq!(
        parse(r#"{"Entrypoint": []}"#).config.entrypoint,
        Some(vec![])
    );
    assert_eq!(parse(r#"{"Entrypoint": null}"#).config.entrypoint, None);
    let ser = serde_json::to_value(parse("{}")).unwrap();
    assert_eq!(
        (&ser["Cmd"], &ser["Entrypoint"]),
        (&Value::Null, &Value::Null)
    );
}

#[test]
fn a_wrong_type_names_the_field() {
    let err = serde_json::from_str::<CreateRequest>(r#"{"HostConfig": {"Memory": "lots"}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lots"), "{err}");
    let err = serde_json::from_str::<CreateRequest>(r#"{"Tty": 3}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bool"), "{err}");
}
