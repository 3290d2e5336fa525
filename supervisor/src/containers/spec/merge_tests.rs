use serde_json::json;

use super::*;

fn config(v: serde_json::Value) -> Config {
    serde_json::from_value(v).unwrap()
}

#[test]
fn env_user_first_then_the_images_not_overridden() {
    let mut user = config(json!({"Env": ["A=1", "PATH=/mine"], "Cmd": ["x"]}));
    let image = config(json!({"Env": ["PATH=/usr/bin", "B=2", "A=0"]}));
    merge(&mut user, &image).unwrap();
    assert_eq!(user.env.unwrap(), ["A=1", "PATH=/mine", "B=2"]);
    let mut user = config(json!({"Cmd": ["x"]}));
    merge(&mut user, &image).unwrap();
    assert_eq!(user.env.unwrap(), ["PATH=/usr/bin", "B=2", "A=0"]);
}

#[test]
fn process_env_defaults_are_replaced_in_place_or_removed() {
    let c = config(json!({"Hostname": "h", "Tty": true, "Env": ["PATH=/x", "A=1", "HOSTNAME"]}));
    assert_eq!(env(&c), ["PATH=/x", "TERM=xterm", "A=1"]);
    let c = config(json!({"Hostname": "h"}));
    assert_eq!(
        env(&c),
        [format!("PATH={DEFAULT_PATH}"), "HOSTNAME=h".into()]
    );
}

#[test]
fn image_fields_fill_what_the_request_leaves_empty() {
    let mut user =
        config(json!({"Labels": {"a": "user"}, "ExposedPorts": {"80/tcp": {}}, "Cmd": ["x"]}));
    let image = config(json!({
        "User": "nobody", "WorkingDir": "/srv", "StopSignal": "SIGQUIT",
        "Labels": {"a": "image", "b": "image"}, "ExposedPorts": {"443/tcp": {}},
        "Volumes": {"/data": {}}, "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 2}
    }));
    merge(&mut user, &image).unwrap();
    assert_eq!(
        (
            user.user.as_str(),
            user.working_dir.as_str(),
            user.stop_signal.as_str()
        ),
        ("nobody", "/srv", "SIGQUIT")
    );
    let labels = user.labels.unwrap();
    assert_eq!(
        (labels["a"].as_str(), labels["b"].as_str()),
        ("user", "image")
    );
    assert_eq!(user.exposed_ports.unwrap().len(), 2);
    assert!(user.volumes.unwrap().contains_key("/data"));
    assert_eq!(user.healthcheck.unwrap().test.unwrap(), ["CMD", "true"]);
    let mut user =
        config(json!({"User": "root", "Cmd": ["x"], "Healthcheck": {"Test": [], "Retries": 9}}));
    merge(&mut user, &image).unwrap();
    assert_eq!(user.user, "root");
    let hc = user.healthcheck.unwrap();
    assert_eq!(
        (hc.test.unwrap(), hc.interval, hc.retries),
        (vec!["CMD".to_string(), "true".into()], 5, 9)
    );
}

#[test]
fn an_oci_image_config_converts() {
    let image: ImageConfiguration = serde_json::from_value(json!({
        "architecture": "amd64", "os": "linux",
        "config": {"User": "1000", "Env": ["A=1"], "Entrypoint": ["/e"], "Cmd": ["c"],
                   "WorkingDir": "/w", "ExposedPorts": {"80/tcp": {}}, "Labels": {"k": "v"}, "StopSignal": "SIGINT"},
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    let c = image_config(&image);
    assert_eq!(c.user, "1000");
    assert_eq!(c.entrypoint.unwrap(), ["/e"]);
    assert_eq!(c.cmd.unwrap(), ["c"]);
    assert_eq!(c.working_dir, "/w");
    assert!(c.exposed_ports.unwrap().contains_key("80/tcp"));
    assert_eq!(c.labels.unwrap()["k"], "v");
    assert_eq!(c.stop_signal, "SIGINT");
}

#[test]
fn hostname_is_the_short_id() {
    let mut c = Config::default();
    fill_hostname(&mut c, &HostConfig::default(), "0123456789abcdef", "host");
    assert_eq!(c.hostname, "0123456789ab");
    let mut c = config(json!({"Hostname": "mine"}));
    fill_hostname(&mut c, &HostConfig::default(), "0123456789abcdef", "host");
    assert_eq!(c.hostname, "mine");
}
