//! `berth compose` and Debian's docker-compose 1.29 against a berth daemon in a network
//! namespace of the test's own: a multi-service busybox app (a one-shot init gating the web
//! server with service_completed_successfully, httpd, a client built from a Dockerfile, a
//! named volume, an anonymous volume, a published port; the client reaching web by its
//! service name), idempotent up, recreate on change,
//! scale, exec, logs, run, down -v leaving nothing; one project driven by both tools;
//! every bad-input case failing with one clear error and nothing made; `logs -f`, `up
//! --build`, `--abort-on-container-exit`, `pull`/`push` through a registry, and the spec
//! keys users lean on (extends, env_file, aliases, restart, profiles), by both tools.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

const DOCKER_COMPOSE: &str = "/usr/bin/docker-compose";

fn daemon(dir: &Path) -> Daemon {
    seed(&dir.join("data"), "busybox", &busybox_image("compose", 1));
    start_wrapped(
        dir,
        // lo is down in a new network namespace: up, for the published port on 127.0.0.1.
        &[
            "unshare",
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ],
        &[
            "--bip",
            "10.232.0.1/24",
            "--bridge",
            "bt-cmp0",
            "--default-address-pool",
            "base=10.233.0.0/20,size=24",
        ],
    )
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tool {
    Berth,
    DockerCompose,
}

impl Tool {
    /// Both tools, each with a project of its own: `base` for berth compose, `base129`
    /// for docker-compose 1.29.
    fn both(base: &str) -> [(Tool, String); 2] {
        [
            (Tool::Berth, base.to_string()),
            (Tool::DockerCompose, format!("{base}129")),
        ]
    }

    /// The first container of `service`, named as this tool names it (`P-S-1`, `P_S_1`).
    fn container(self, project: &str, service: &str) -> String {
        match self {
            Tool::Berth => format!("{project}-{service}-1"),
            Tool::DockerCompose => format!("{project}_{service}_1"),
        }
    }
}

/// One project directory and the daemon it runs on; dropping it takes the project down
/// (and removes whatever containers are left), so a failed assertion leaves nothing.
struct App {
    host: String,
    dir: PathBuf,
    name: String,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.compose(Tool::Berth, &["down", "-v", "-t", "0", "--remove-orphans"]);
        let out = berth(&self.host, &["ps", "-aq"]);
        for id in stdout(&out).split_whitespace() {
            let _ = berth(&self.host, &["rm", "-f", id]);
        }
    }
}

impl App {
    fn new(host: &str, dir: &Path, name: &str, files: &[(&str, &str)]) -> App {
        let dir = dir.join(name);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        App {
            host: host.to_string(),
            dir,
            name: name.to_string(),
        }
    }

    fn compose_env(&self, tool: Tool, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = match tool {
            Tool::Berth => {
                let mut c = Command::new(BERTH);
                c.args(["-H", &self.host, "compose"]);
                c
            }
            Tool::DockerCompose => {
                assert!(
                    Path::new(DOCKER_COMPOSE).exists(),
                    "docker-compose 1.29 missing: apt-get install docker-compose"
                );
                let mut c = Command::new(DOCKER_COMPOSE);
                c.env("DOCKER_HOST", &self.host)
                    .env("DOCKER_CONFIG", config_dir(&self.host));
                c
            }
        };
        c.args(["-p", &self.name])
            .args(args)
            .current_dir(&self.dir)
            .env("BERTH_CONFIG", config_dir(&self.host))
            .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run compose")
    }

    fn compose(&self, tool: Tool, args: &[&str]) -> Output {
        self.compose_env(tool, args, &[])
    }

    /// Idempotent: a second `up -d` says `says` and keeps every container.
    fn up_again_keeps_all(&self, tool: Tool, says: &str) {
        let ids = || {
            let mut v: Vec<String> = ok(self.compose(tool, &["ps", "-q"]))
                .lines()
                .map(String::from)
                .collect();
            v.sort();
            v
        };
        let before = ids();
        let again = self.compose(tool, &["up", "-d"]);
        assert!(again.status.success(), "{}", err_text(&again));
        assert!(err_text(&again).contains(says), "{}", err_text(&again));
        assert_eq!(ids(), before);
    }

    fn inspect(&self, name: &str) -> Value {
        let out = ok(berth(&self.host, &["inspect", name]));
        serde_json::from_str::<Value>(&out).unwrap()[0].clone()
    }

    /// Names of the project's containers, networks and volumes (by label) still there.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let mut out = Vec::new();
        for (kind, args) in [
            (
                "container",
                vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &label],
            ),
            (
                "network",
                vec!["network", "ls", "--format", "{{.Name}}", "--filter", &label],
            ),
            (
                "volume",
                vec!["volume", "ls", "--format", "{{.Name}}", "--filter", &label],
            ),
        ] {
            let listed = ok(docker(&self.host, &args));
            out.extend(listed.split_whitespace().map(|n| format!("{kind} {n}")));
        }
        out
    }
}

/// GET of `url` from the daemon's network namespace: the "host" of the published ports.
fn from_host(d: &Daemon, url: &str) -> String {
    let netns = format!("--net=/proc/{}/ns/net", d.child.id());
    ok(Command::new("nsenter")
        .args([&netns, "curl", "-sS", "--max-time", "5", url])
        .output()
        .expect("nsenter (util-linux), curl"))
}

fn err_text(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

const APP: &str = r#"
services:
  init:
    image: busybox
    command: ["sh", "-c", "echo initialised > /data/init; echo init-done"]
    volumes:
      - data:/data
  web:
    image: busybox
    command: busybox httpd -f -p 80 -h /www
    depends_on:
      init:
        condition: service_completed_successfully
    environment:
      GREETING: ${GREETING:-hello}
    volumes:
      - ./www:/www:ro
      - data:/data
      - /cache
    ports:
      - "127.0.0.1:18080:80"
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 200ms
      retries: 50
  client:
    build: ./client
    depends_on:
      web: {condition: service_healthy}
    command: ["sh", "-c", "echo client-up; exec busybox sleep 1000000"]
    stop_grace_period: 1s
volumes:
  data:
"#;

const DOCKERFILE: &str =
    "FROM busybox\nRUN busybox mkdir /built && echo from-dockerfile > /built/marker\n";

/// Fetches web's page by its service name, retrying while web (re)starts.
const WGET_WEB: &str = "i=0; until busybox wget -q -O- http://web/; do [ $i -gt 100 ] && exit 1; \
                        i=$((i+1)); busybox sleep 0.1; done";

fn app_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("compose.yaml", APP),
        ("www/index.html", "hello from web\n"),
        ("client/Dockerfile", DOCKERFILE),
    ]
}

#[test]
fn berth_compose_runs_a_multi_service_app() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let app = App::new(&d.host, dir.path(), "demo", &app_files());
    let up = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(up.status.success(), "{}", err_text(&up));

    // Docker's names and labels.
    let web = app.inspect("demo-web-1");
    let labels = &web["Config"]["Labels"];
    assert_eq!(labels["com.docker.compose.project"], "demo");
    assert_eq!(labels["com.docker.compose.service"], "web");
    assert_eq!(labels["com.docker.compose.container-number"], "1");
    assert_eq!(labels["com.docker.compose.oneoff"], "False");
    assert_eq!(
        labels["com.docker.compose.project.working_dir"],
        app.dir.display().to_string()
    );
    assert_eq!(
        labels["com.docker.compose.project.config_files"],
        app.dir.join("compose.yaml").display().to_string()
    );
    assert_eq!(
        labels["com.docker.compose.config-hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(web["State"]["Running"], true);
    assert!(web["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("GREETING=hello")));
    let aliases = &web["NetworkSettings"]["Networks"]["demo_default"]["Aliases"];
    assert!(
        aliases
            .as_array()
            .is_some_and(|a| a.contains(&Value::from("web"))),
        "aliases: {aliases}"
    );
    let binding = &web["HostConfig"]["PortBindings"]["80/tcp"][0];
    assert_eq!(binding["HostPort"], "18080", "{binding}");
    // The client waited for web's healthcheck; the published port answers on the host.
    assert!(
        stderr(&up).contains("Container demo-web-1  Healthy"),
        "{}",
        err_text(&up)
    );
    assert_eq!(web["State"]["Health"]["Status"], "healthy");
    assert_eq!(from_host(&d, "http://127.0.0.1:18080/"), "hello from web\n");

    // The one-shot init ran to completion before web started, into the named volume.
    let init = app.inspect("demo-init-1");
    assert_eq!(init["State"]["Status"], "exited");
    assert_eq!(init["State"]["ExitCode"], 0);
    let ip = web["NetworkSettings"]["Networks"]["demo_default"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!ip.is_empty());

    // The client was built from its Dockerfile and reaches web on the project network.
    let url = format!("http://{ip}/");
    let got = ok(app.compose(
        Tool::Berth,
        &["exec", "-T", "client", "sh", "-c", &format!("busybox cat /built/marker; i=0; until busybox wget -q -O- {url}; do [ $i -gt 100 ] && exit 1; i=$((i+1)); busybox sleep 0.1; done")],
    ));
    assert_eq!(got, "from-dockerfile\nhello from web\n");
    // And by web's service name: compose makes it an alias on the project network, and the
    // daemon's DNS answers it for the project's containers.
    let by_name = ok(app.compose(
        Tool::Berth,
        &[
            "exec",
            "-T",
            "client",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://web/",
        ],
    ));
    assert_eq!(by_name, "hello from web\n");
    let data = ok(app.compose(
        Tool::Berth,
        &["exec", "-T", "web", "busybox", "cat", "/data/init"],
    ));
    assert_eq!(data, "initialised\n");

    // ps, logs, config.
    let ps = ok(app.compose(Tool::Berth, &["ps", "--services"]));
    assert_eq!(ps, "client\nweb\n");
    let all = ok(app.compose(Tool::Berth, &["ps", "-a", "-q"]));
    assert_eq!(all.lines().count(), 3, "{all}");
    let logs = ok(app.compose(Tool::Berth, &["logs", "--no-color", "init", "client"]));
    assert!(
        logs.contains("demo-init-1") && logs.contains("| init-done"),
        "{logs}"
    );
    assert!(logs.contains("demo-client-1 | client-up"), "{logs}");
    let services = ok(app.compose(Tool::Berth, &["config", "--services"]));
    assert_eq!(services, "client\ninit\nweb\n");

    app.up_again_keeps_all(Tool::Berth, "Container demo-web-1  Running");

    // A changed service is recreated (same name, new container), its anonymous volume kept.
    ok(app.compose(
        Tool::Berth,
        &["exec", "-T", "web", "sh", "-c", "echo kept > /cache/f"],
    ));
    let old_id = app.inspect("demo-web-1")["Id"].clone();
    let client_id = app.inspect("demo-client-1")["Id"].clone();
    let changed = app.compose_env(Tool::Berth, &["up", "-d"], &[("GREETING", "changed")]);
    assert!(changed.status.success(), "{}", err_text(&changed));
    let web = app.inspect("demo-web-1");
    assert_ne!(web["Id"], old_id);
    assert_eq!(
        app.inspect("demo-client-1")["Id"],
        client_id,
        "client unchanged"
    );
    assert!(web["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("GREETING=changed")));
    let kept = ok(app.compose(
        Tool::Berth,
        &["exec", "-T", "web", "busybox", "cat", "/cache/f"],
    ));
    assert_eq!(kept, "kept\n");
    // The name follows the service to its new container.
    let again = ok(app.compose(Tool::Berth, &["exec", "-T", "client", "sh", "-c", WGET_WEB]));
    assert_eq!(again, "hello from web\n");

    // Scale up and down.
    ok(app.compose_env(
        Tool::Berth,
        &["up", "-d", "--scale", "client=2"],
        &[("GREETING", "changed")],
    ));
    assert_eq!(app.inspect("demo-client-2")["State"]["Running"], true);
    let two = ok(app.compose(
        Tool::Berth,
        &[
            "exec",
            "-T",
            "--index",
            "2",
            "client",
            "busybox",
            "cat",
            "/built/marker",
        ],
    ));
    assert_eq!(two, "from-dockerfile\n");
    ok(app.compose_env(
        Tool::Berth,
        &["up", "-d", "--scale", "client=1"],
        &[("GREETING", "changed")],
    ));
    let gone = berth(&app.host, &["inspect", "demo-client-2"]);
    assert!(!gone.status.success(), "demo-client-2 is still there");

    // run: a one-off container of a service, removed with --rm.
    let run = ok(app.compose(
        Tool::Berth,
        &[
            "run",
            "--rm",
            "-T",
            "client",
            "busybox",
            "cat",
            "/built/marker",
        ],
    ));
    assert!(run.ends_with("from-dockerfile\n"), "{run}");

    // stop / start.
    ok(app.compose(Tool::Berth, &["stop", "client"]));
    assert_eq!(app.inspect("demo-client-1")["State"]["Running"], false);
    ok(app.compose(Tool::Berth, &["start", "client"]));
    assert_eq!(app.inspect("demo-client-1")["State"]["Running"], true);

    // down -v: exactly the project's objects go, and all of them.
    let other = ok(berth(&app.host, &["volume", "create", "unrelated"]));
    let down = app.compose(Tool::Berth, &["down", "-v"]);
    assert!(down.status.success(), "{}", err_text(&down));
    assert_eq!(app.leftovers(), Vec::<String>::new());
    // The anonymous /cache volume, carried over at the recreate, went too.
    let volumes = ok(berth(&app.host, &["volume", "ls", "-q"]));
    assert_eq!(volumes.trim(), other.trim(), "volumes left");
    assert_eq!(ok(berth(&app.host, &["ps", "-aq"])), "", "containers left");
    let networks = ok(berth(
        &app.host,
        &["network", "ls", "--format", "{{.Name}}"],
    ));
    assert!(!networks.contains("demo_default"), "{networks}");
}

/// A project started by one tool is seen, and taken down, by the other: docker-compose
/// 1.29's `P_S_N` names and compose v2's `P-S-N` both count as the project's containers.
#[test]
fn docker_compose_and_berth_compose_share_a_project() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let app = App::new(&d.host, dir.path(), "both", &app_files());

    let up = app.compose(Tool::DockerCompose, &["up", "-d"]);
    assert!(up.status.success(), "{}", err_text(&up));
    let web = app.inspect("both_web_1");
    assert_eq!(web["State"]["Running"], true);
    assert_eq!(app.inspect("both_init_1")["State"]["ExitCode"], 0);
    let got = ok(app.compose(
        Tool::DockerCompose,
        &["exec", "-T", "client", "busybox", "cat", "/built/marker"],
    ));
    assert_eq!(got, "from-dockerfile\n");
    // docker-compose's service-name alias resolves through berth's DNS.
    let by_name = ok(app.compose(
        Tool::DockerCompose,
        &["exec", "-T", "client", "sh", "-c", WGET_WEB],
    ));
    assert_eq!(by_name, "hello from web\n");
    // docker-compose's own listing sees each container once (label filters are ANDed).
    let ps = ok(app.compose(Tool::DockerCompose, &["ps", "-q"]));
    assert_eq!(ps.lines().count(), 3, "{ps}");
    let logs = ok(app.compose(Tool::DockerCompose, &["logs", "--no-color", "init"]));
    assert!(logs.contains("init-done"), "{logs}");
    assert_eq!(web["State"]["Health"]["Status"], "healthy");
    assert_eq!(from_host(&d, "http://127.0.0.1:18080/"), "hello from web\n");
    app.up_again_keeps_all(Tool::DockerCompose, "both_web_1 is up-to-date");
    // Recreate on change, and scale.
    let changed = app.compose_env(
        Tool::DockerCompose,
        &["up", "-d", "--scale", "client=2"],
        &[("GREETING", "changed")],
    );
    assert!(changed.status.success(), "{}", err_text(&changed));
    let web2 = app.inspect("both_web_1");
    assert_ne!(web2["Id"], web["Id"], "{}", err_text(&changed));
    assert!(web2["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("GREETING=changed")));
    assert_eq!(app.inspect("both_client_2")["State"]["Running"], true);
    let by_name = ok(app.compose(
        Tool::DockerCompose,
        &["exec", "-T", "--index", "2", "client", "sh", "-c", WGET_WEB],
    ));
    assert_eq!(by_name, "hello from web\n");

    // berth compose sees the same project and takes it down.
    let ps = ok(app.compose(Tool::Berth, &["ps"]));
    assert!(
        ps.contains("both_web_1") && ps.contains("both_client_1"),
        "{ps}"
    );
    let exec = ok(app.compose(
        Tool::Berth,
        &["exec", "-T", "web", "busybox", "cat", "/data/init"],
    ));
    assert_eq!(exec, "initialised\n");
    let down = app.compose(Tool::Berth, &["down", "-v"]);
    assert!(down.status.success(), "{}", err_text(&down));
    assert_eq!(app.leftovers(), Vec::<String>::new());

    // And the other way round.
    let up = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(up.status.success(), "{}", err_text(&up));
    let ps = ok(app.compose(Tool::DockerCompose, &["ps"]));
    assert!(
        ps.contains("both-web-1") && ps.contains("both-client-1"),
        "{ps}"
    );
    let down = app.compose(Tool::DockerCompose, &["down", "-v"]);
    assert!(down.status.success(), "{}", err_text(&down));
    assert_eq!(app.leftovers(), Vec::<String>::new());
}

/// A bad-input case: its name, files, the command's arguments, the error it must print.
type Case = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
    &'static str,
);

/// Each bad input: non-zero, one clear error naming the place, and nothing created.
#[test]
fn bad_input_fails_with_one_clear_error_and_nothing_made() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let cases: Vec<Case> = vec![
        (
            "malformed",
            vec![("compose.yaml", "services:\n  web:\n    image: [busybox\n")],
            vec!["up", "-d"],
            "compose.yaml:4:1:",
        ),
        (
            "unknownkey",
            vec![("compose.yaml", "services:\n  web:\n    image: busybox\n    ports:\n      - {target: 80, publish: 1}\n")],
            vec!["up", "-d"],
            "services.web.ports[0].publish: unknown key",
        ),
        (
            "wrongtype",
            vec![("compose.yaml", "services:\n  web:\n    image: busybox\n    ports: [[80]]\n")],
            vec!["up", "-d"],
            "services.web.ports[0]: must be a string or a mapping",
        ),
        (
            "missingvar",
            vec![("compose.yaml", "services:\n  web:\n    image: ${IMAGE:?set IMAGE}\n")],
            vec!["up", "-d"],
            "services.web.image: required variable IMAGE is missing a value: set IMAGE",
        ),
        (
            "cycle",
            vec![("compose.yaml", "services:\n  a: {image: busybox, depends_on: [b]}\n  b: {image: busybox, depends_on: [a]}\n")],
            vec!["up", "-d"],
            "dependency cycle between services: a -> b -> a",
        ),
        (
            "unknownservice",
            vec![("compose.yaml", "services:\n  web: {image: busybox}\n")],
            vec!["up", "-d", "nosuch"],
            "no such service: nosuch",
        ),
        (
            "failingbuild",
            vec![
                ("compose.yaml", "services:\n  web: {image: busybox, command: busybox sleep 100}\n  app: {build: ./app, depends_on: [web]}\n"),
                ("app/Dockerfile", "FROM busybox\nRUN exit 3\n"),
            ],
            vec!["up", "-d"],
            "failed to build service \"app\"",
        ),
        (
            "undefinedsecret",
            vec![("compose.yaml", "services:\n  web: {image: busybox, secrets: [nosuch]}\n")],
            vec!["up", "-d"],
            "services.web.secrets: refers to undefined secret \"nosuch\"",
        ),
        (
            "missingsecretfile",
            vec![("compose.yaml", "services:\n  web: {image: busybox, configs: [c]}\nconfigs:\n  c: {file: ./nosuch.conf}\n")],
            vec!["up", "-d"],
            "services.web.configs: config \"c\": ",
        ),
        (
            "includeconflict",
            vec![
                ("compose.yaml", "include: [./other/compose.yaml]\nservices:\n  web: {image: busybox, command: busybox sleep 1}\n"),
                ("other/compose.yaml", "services:\n  web: {image: busybox, command: busybox sleep 2}\n"),
            ],
            vec!["up", "-d"],
            "compose.yaml:1:11: include[0]: services.web of ",
        ),
        (
            "includecycle",
            vec![
                ("compose.yaml", "include: [./a.yaml]\nservices:\n  web: {image: busybox}\n"),
                ("a.yaml", "include: [./compose.yaml]\n"),
            ],
            vec!["up", "-d"],
            "include[0]: include cycle: ",
        ),
        (
            "includemissing",
            vec![("compose.yaml", "include: [./nosuch.yaml]\nservices:\n  web: {image: busybox}\n")],
            vec!["up", "-d"],
            "include[0]: ",
        ),
    ];
    for (name, files, args, want) in cases {
        let app = App::new(&d.host, dir.path(), name, &files);
        let out = app.compose(Tool::Berth, &args);
        let text = err_text(&out);
        assert!(!out.status.success(), "{name}: succeeded: {text}");
        assert!(text.contains(want), "{name}: want {want:?} in: {text}");
        let last = stderr(&out);
        let last = last.lines().last().unwrap_or("");
        assert!(
            last.contains(want),
            "{name}: the last line should say it: {text}"
        );
        assert_eq!(app.leftovers(), Vec::<String>::new(), "{name}: {text}");
        assert_eq!(
            ok(berth(&app.host, &["ps", "-aq"])),
            "",
            "{name}: a container was made"
        );
    }
}

/// Events of the daemon so far, as `STATUS NAME` lines in order.
fn events(host: &str) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = ok(docker(
        host,
        &[
            "events",
            "--since",
            "0",
            "--until",
            &now.to_string(),
            "--filter",
            "type=container",
            "--format",
            "{{.Status}} {{.Actor.Attributes.name}}",
        ],
    ));
    out.lines().map(String::from).collect()
}

/// Where `line` is in `events`, or a failure that shows them all.
fn position(events: &[String], line: &str) -> usize {
    events
        .iter()
        .position(|e| e == line)
        .unwrap_or_else(|| panic!("no event {line:?} in {events:#?}"))
}

const HEALTH_APP: &str = r#"
services:
  web:
    image: busybox
    command: sh -c 'busybox sleep 1; exec busybox httpd -f -p 80 -h /www'
    volumes: ["./www:/www:ro"]
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 200ms
      retries: 50
  client:
    image: busybox
    command: ["busybox", "sleep", "1000000"]
    stop_grace_period: 0s
    depends_on:
      web: {condition: service_healthy}
"#;

/// `service_healthy`, by `berth compose` and by docker-compose 1.29 (which reads the
/// condition in the compose-spec format): the dependent starts only after the dependency's
/// healthcheck passed (the daemon's events say so, in order); an unhealthy dependency fails
/// `up` with one error and leaves the dependent uncreated.
#[test]
fn health_gates_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    for (tool, project) in Tool::both("health") {
        let app = App::new(
            &d.host,
            dir.path(),
            &project,
            &[("compose.yaml", HEALTH_APP), ("www/index.html", "ok\n")],
        );
        let web = tool.container(&project, "web");
        let client = tool.container(&project, "client");
        let up = app.compose(tool, &["up", "-d"]);
        assert!(up.status.success(), "{tool:?}: {}", err_text(&up));
        if tool == Tool::Berth {
            assert!(
                stderr(&up).contains(&format!("Container {web}  Healthy")),
                "{}",
                err_text(&up)
            );
        }
        assert_eq!(app.inspect(&web)["State"]["Health"]["Status"], "healthy");
        assert_eq!(app.inspect(&client)["State"]["Running"], true);
        let events = events(&d.host);
        let started = position(&events, &format!("start {web}"));
        let healthy = position(&events, &format!("health_status: healthy {web}"));
        let client_started = position(&events, &format!("start {client}"));
        assert!(
            started < healthy && healthy < client_started,
            "{tool:?}: web healthy before client starts: {events:#?}"
        );
        ok(app.compose(tool, &["down", "-t", "0"]));

        let sick = HEALTH_APP
            .replace("http://127.0.0.1/", "http://127.0.0.1:81/")
            .replace("retries: 50", "retries: 2");
        std::fs::write(app.dir.join("compose.yaml"), sick).unwrap();
        let up = app.compose(tool, &["up", "-d"]);
        assert!(!up.status.success(), "{tool:?}: {}", err_text(&up));
        let text = err_text(&up);
        // berth compose ends with the one error; docker-compose 1.29 names the
        // dependency's short id, then says it gave up.
        let last = stderr(&up);
        let last = last
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        match tool {
            Tool::Berth => assert!(
                last.contains(&format!("container {web} is unhealthy")),
                "{text}"
            ),
            Tool::DockerCompose => assert!(
                text.contains("ERROR: for client  Container") && text.contains("is unhealthy"),
                "{text}"
            ),
        }
        assert!(
            !berth(&app.host, &["inspect", &client]).status.success(),
            "{tool:?}: {client} was made: {text}"
        );
        ok(app.compose(tool, &["down", "-t", "0"]));
    }
}

/// A foreground `berth compose up` and what it printed so far (stdout and stderr).
struct Foreground {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Foreground {
    fn start(app: &App) -> Foreground {
        let mut child = Command::new(BERTH)
            .args(["-H", &app.host, "compose", "-p", &app.name, "up"])
            .current_dir(&app.dir)
            .env("BERTH_CONFIG", config_dir(&app.host))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run berth compose up");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let seen = seen.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let mut s = seen.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        Foreground { child, seen }
    }

    fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (up to a minute: a liveness bound, not a speed one) for `what` in the output.
    fn wait_for(&self, what: &str) {
        for _ in 0..600 {
            if self.text().contains(what) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no {what:?} in: {}", self.text());
    }

    fn interrupt(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    }

    /// The exit code, waiting up to a minute.
    fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("berth compose up still running: {}", self.text());
    }
}

/// Ctrl-C in a foreground `up`, as compose v2: the logs are attached; the first SIGINT says
/// "Gracefully stopping...", stops the project's containers (they stay, exited) and exits
/// 130; a second SIGINT during a stop that would take long kills them.
#[test]
fn foreground_up_stops_on_ctrl_c_and_kills_on_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let text = r#"
services:
  web:
    image: busybox
    command: ["sh", "-c", "trap 'echo web-stopping; exit 0' TERM; echo web-ready; while :; do busybox sleep 0.1; done"]
  worker:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo worker-ready; while :; do busybox sleep 0.1; done"]
    depends_on: [web]
"#;
    let app = App::new(&d.host, dir.path(), "fg", &[("compose.yaml", text)]);
    let mut up = Foreground::start(&app);
    up.wait_for("fg-web-1    | web-ready");
    up.wait_for("fg-worker-1 | worker-ready");
    up.interrupt();
    let code = up.exit_code();
    let out = up.text();
    assert_eq!(code, Some(130), "{out}");
    assert!(
        out.contains("Gracefully stopping... (press Ctrl+C again to force)"),
        "{out}"
    );
    for name in ["fg-web-1", "fg-worker-1"] {
        let c = app.inspect(name);
        assert_eq!(c["State"]["Status"], "exited", "{name}: {out}");
        assert_eq!(
            c["State"]["ExitCode"], 0,
            "{name} stopped by SIGTERM: {out}"
        );
    }
    // The stop reached web's own handler, and its last words were still printed.
    assert!(out.contains("fg-web-1    | web-stopping"), "{out}");
    // Kept, not removed: up starts the same containers again.
    let ids = ok(app.compose(Tool::Berth, &["ps", "-a", "-q"]));
    assert_eq!(ids.lines().count(), 2, "{ids}");
    let again = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(again.status.success(), "{}", err_text(&again));
    assert_eq!(ok(app.compose(Tool::Berth, &["ps", "-q"])), ids);
    ok(app.compose(Tool::Berth, &["down", "-t", "0"]));

    // A container that ignores SIGTERM (a shell's sleep as pid 1) with a long grace
    // period: the second Ctrl-C kills it instead of waiting.
    let stubborn = r#"
services:
  slow:
    image: busybox
    command: ["sh", "-c", "echo slow-ready; exec busybox sleep 1000000"]
    stop_grace_period: 1000s
"#;
    std::fs::write(app.dir.join("compose.yaml"), stubborn).unwrap();
    let mut up = Foreground::start(&app);
    up.wait_for("fg-slow-1 | slow-ready");
    up.interrupt();
    up.wait_for("Gracefully stopping...");
    up.wait_for("Container fg-slow-1  Stopping");
    up.interrupt();
    let code = up.exit_code();
    let out = up.text();
    assert_eq!(code, Some(130), "{out}");
    let c = app.inspect("fg-slow-1");
    assert_eq!(c["State"]["Status"], "exited", "{out}");
    assert_eq!(c["State"]["ExitCode"], 137, "killed: {out}");
}

/// Top-level `secrets` and `configs` with `file:` sources, used by services in the short
/// and long syntax (read-only at /run/secrets/NAME, /NAME, or the target); and `include`
/// of a file whose relative paths and `.env` are its own directory's.
#[test]
fn secrets_configs_and_include() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let main = r#"
include:
  - ./db/compose.yaml
services:
  app:
    image: busybox
    command: ["busybox", "sleep", "1000000"]
    stop_grace_period: 0s
    depends_on: [db]
    secrets:
      - token
      - source: token
        target: other_token
      - source: token
        target: /etc/token
        mode: 0400
    configs:
      - app_conf
      - source: app_conf
        target: /etc/app.conf
secrets:
  token:
    file: ./token.txt
configs:
  app_conf:
    file: ./conf/app.conf
"#;
    let included = r#"
services:
  db:
    image: busybox
    command: ["busybox", "sleep", "1000000"]
    stop_grace_period: 0s
    environment:
      WHERE: ${WHERE}
    volumes: ["./seed:/seed:ro"]
    secrets: [dbpass]
secrets:
  dbpass:
    file: ./dbpass.txt
"#;
    let app = App::new(
        &d.host,
        dir.path(),
        "sc",
        &[
            ("compose.yaml", main),
            ("token.txt", "s3cret\n"),
            ("conf/app.conf", "answer=42\n"),
            ("db/compose.yaml", included),
            ("db/.env", "WHERE=included\n"),
            ("db/seed/file", "seeded\n"),
            ("db/dbpass.txt", "dbpass\n"),
        ],
    );
    let up = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(up.status.success(), "{}", err_text(&up));
    let cat = |service: &str, path: &str| {
        ok(app.compose(
            Tool::Berth,
            &["exec", "-T", service, "busybox", "cat", path],
        ))
    };
    for path in [
        "/run/secrets/token",
        "/run/secrets/other_token",
        "/etc/token",
    ] {
        assert_eq!(cat("app", path), "s3cret\n", "{path}");
    }
    for path in ["/app_conf", "/etc/app.conf"] {
        assert_eq!(cat("app", path), "answer=42\n", "{path}");
    }
    let write = app.compose(
        Tool::Berth,
        &[
            "exec",
            "-T",
            "app",
            "sh",
            "-c",
            "echo x > /run/secrets/token",
        ],
    );
    assert!(!write.status.success(), "a secret is read-only");
    assert_eq!(
        std::fs::read_to_string(app.dir.join("token.txt")).unwrap(),
        "s3cret\n"
    );
    let mounts = app.inspect("sc-app-1")["Mounts"].clone();
    let secret = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/run/secrets/token")
        .unwrap_or_else(|| panic!("{mounts}"))
        .clone();
    assert_eq!(secret["RW"], false, "{secret}");
    assert_eq!(
        secret["Source"],
        app.dir.join("token.txt").display().to_string()
    );

    // The included service: paths and variables of its own directory.
    assert_eq!(cat("db", "/seed/file"), "seeded\n");
    assert_eq!(cat("db", "/run/secrets/dbpass"), "dbpass\n");
    let env = ok(app.compose(
        Tool::Berth,
        &["exec", "-T", "db", "sh", "-c", "echo $WHERE"],
    ));
    assert_eq!(env, "included\n");
    let services = ok(app.compose(Tool::Berth, &["config", "--services"]));
    assert_eq!(services, "app\ndb\n");
    // It is one project: the included service's container carries the project's labels.
    assert_eq!(
        app.inspect("sc-db-1")["Config"]["Labels"]["com.docker.compose.project"],
        "sc"
    );
    let again = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(
        stderr(&again).contains("Container sc-app-1  Running"),
        "{}",
        err_text(&again)
    );
    let down = app.compose(Tool::Berth, &["down", "-v"]);
    assert!(down.status.success(), "{}", err_text(&down));
    assert_eq!(app.leftovers(), Vec::<String>::new());
}

/// The rest of the command set on one small project: config, version, build, up
/// --no-start / start / --wait, ps --format json, logs --tail / -t, exec -u -w -e, run -e
/// --entrypoint --no-deps, port, top, images, pause / unpause, restart, kill, rm,
/// --no-recreate, --force-recreate, --remove-orphans, --exit-code-from, down --rmi local.
#[test]
fn the_command_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let text = r#"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo line-1; echo line-2; echo line-3; exec busybox sleep 1000000"]
    stop_grace_period: 0s
    ports: ["127.0.0.1:18091:80"]
    volumes: ["data:/data"]
  built:
    build: ./b
    command: ["busybox", "sleep", "1000000"]
    stop_grace_period: 0s
    depends_on: [web]
volumes:
  data:
"#;
    let app = App::new(
        &d.host,
        dir.path(),
        "cmds",
        &[
            ("compose.yaml", text),
            ("b/Dockerfile", "FROM busybox\nRUN echo built > /marker\n"),
        ],
    );
    let run = |args: &[&str]| ok(app.compose(Tool::Berth, args));
    let status = |name: &str| app.inspect(name)["State"]["Status"].clone();
    assert_eq!(run(&["config", "--volumes"]), "data\n");
    let yaml = run(&["config"]);
    assert!(
        yaml.contains("services:") && yaml.contains("  web:"),
        "{yaml}"
    );
    assert!(run(&["version"]).starts_with("Docker Compose version v"));

    run(&["build"]);
    assert!(berth(&app.host, &["image", "inspect", "cmds-built"])
        .status
        .success());
    run(&["up", "--no-start"]);
    assert_eq!(status("cmds-web-1"), "created");
    run(&["start"]);
    assert_eq!(status("cmds-web-1"), "running");
    assert_eq!(status("cmds-built-1"), "running");
    run(&["up", "-d", "--wait"]);

    let ps: Value = serde_json::from_str(&run(&["ps", "--format", "json"])).unwrap();
    let mut services: Vec<&str> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Service"].as_str().unwrap())
        .collect();
    services.sort();
    assert_eq!(services, ["built", "web"], "{ps}");

    let tail = run(&["logs", "--no-color", "--tail", "1", "web"]);
    assert!(
        tail.contains("line-3") && !tail.contains("line-1"),
        "{tail}"
    );
    let stamped = run(&["logs", "--no-color", "-t", "web"]);
    let line = stamped.lines().find(|l| l.ends_with("line-1")).unwrap();
    assert!(!line.ends_with("| line-1"), "a timestamp: {stamped}");

    let exec = run(&[
        "exec",
        "-T",
        "-u",
        "65534",
        "-w",
        "/data",
        "-e",
        "X=1",
        "web",
        "sh",
        "-c",
        "busybox id -u; pwd; echo $X",
    ]);
    assert_eq!(exec, "65534\n/data\n1\n");
    let one_off = run(&[
        "run",
        "--rm",
        "-T",
        "--no-deps",
        "-e",
        "Y=2",
        "--entrypoint",
        "sh",
        "built",
        "-c",
        "busybox cat /marker; echo $Y",
    ]);
    assert!(one_off.ends_with("built\n2\n"), "{one_off}");

    assert_eq!(run(&["port", "web", "80"]), "127.0.0.1:18091\n");
    let top = run(&["top", "web"]);
    assert!(top.contains("cmds-web-1") && top.contains("sleep"), "{top}");
    let images = run(&["images"]);
    assert!(
        images.contains("cmds-built") && images.contains("busybox"),
        "{images}"
    );

    run(&["pause", "web"]);
    assert_eq!(status("cmds-web-1"), "paused");
    run(&["unpause", "web"]);
    assert_eq!(status("cmds-web-1"), "running");
    let started = app.inspect("cmds-web-1")["State"]["StartedAt"].clone();
    run(&["restart", "web"]);
    assert_ne!(app.inspect("cmds-web-1")["State"]["StartedAt"], started);
    run(&["kill", "web"]);
    // As docker compose on dockerd: the SIGKILL kill returns once the container exited.
    assert_eq!(status("cmds-web-1"), "exited");
    assert_eq!(app.inspect("cmds-web-1")["State"]["ExitCode"], 137);
    run(&["rm", "-f", "web"]);
    assert!(!berth(&app.host, &["inspect", "cmds-web-1"])
        .status
        .success());

    // --no-recreate makes the missing one and keeps the other; --force-recreate replaces.
    let built = app.inspect("cmds-built-1")["Id"].clone();
    run(&["up", "-d", "--no-recreate"]);
    assert_eq!(status("cmds-web-1"), "running");
    assert_eq!(app.inspect("cmds-built-1")["Id"], built);
    run(&["up", "-d", "--force-recreate", "built"]);
    assert_ne!(app.inspect("cmds-built-1")["Id"], built);

    // A service dropped from the file: an orphan, removed with --remove-orphans.
    let without = format!(
        "{}volumes:\n  data:\n",
        text.split("  built:\n").next().unwrap()
    );
    std::fs::write(app.dir.join("compose.yaml"), &without).unwrap();
    let warned = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(
        stderr(&warned).contains("Found orphan containers (cmds-built-1)"),
        "{}",
        err_text(&warned)
    );
    run(&["up", "-d", "--remove-orphans"]);
    assert!(!berth(&app.host, &["inspect", "cmds-built-1"])
        .status
        .success());
    std::fs::write(app.dir.join("compose.yaml"), text).unwrap();

    // up --build: the changed Dockerfile is built again and the service runs the new image
    // (without --build the existing cmds-built image would be used).
    std::fs::write(
        app.dir.join("b/Dockerfile"),
        "FROM busybox\nRUN echo rebuilt > /marker\n",
    )
    .unwrap();
    run(&["up", "-d", "--build"]);
    assert_eq!(
        run(&["exec", "-T", "built", "busybox", "cat", "/marker"]),
        "rebuilt\n"
    );
    run(&["down", "-v", "--rmi", "local"]);
    assert_eq!(app.leftovers(), Vec::<String>::new());
    assert!(!berth(&app.host, &["image", "inspect", "cmds-built"])
        .status
        .success());
    assert!(berth(&app.host, &["image", "inspect", "busybox"])
        .status
        .success());

    // --exit-code-from: the foreground up ends with that service's exit, the rest stopped.
    let job = r#"
services:
  web:
    image: busybox
    command: ["busybox", "sleep", "1000000"]
    stop_grace_period: 0s
  job:
    image: busybox
    command: ["sh", "-c", "echo job-ran; exit 3"]
"#;
    let jobs = App::new(&d.host, dir.path(), "jobs", &[("compose.yaml", job)]);
    let out = jobs.compose(Tool::Berth, &["up", "--exit-code-from", "job"]);
    assert_eq!(out.status.code(), Some(3), "{}", err_text(&out));
    assert!(stdout(&out).contains("job-ran"), "{}", err_text(&out));
    assert_eq!(jobs.inspect("jobs-web-1")["State"]["Running"], false);
    drop(jobs);

    // --abort-on-container-exit alone: the first exit stops every service, and up ends
    // with that container's code; docker-compose 1.29 the same.
    for (tool, project) in Tool::both("abort") {
        let app = App::new(&d.host, dir.path(), &project, &[("compose.yaml", job)]);
        let out = app.compose(tool, &["up", "--abort-on-container-exit"]);
        let text = err_text(&out);
        assert_eq!(out.status.code(), Some(3), "{tool:?}: {text}");
        assert!(stdout(&out).contains("job-ran"), "{tool:?}: {text}");
        let web = app.inspect(&tool.container(&project, "web"));
        assert_eq!(web["State"]["Status"], "exited", "{tool:?}: {text}");
    }
}

/// The next line of a follower's output that contains `want` (it fails if the output ends).
fn line_with(out: &mut impl std::io::BufRead, want: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap() == 0 {
            panic!("logs -f ended before {want:?}: {seen}");
        }
        seen.push_str(&l);
        if l.contains(want) {
            return l;
        }
    }
}

/// `logs -f` outside `up`: it prints what was there, follows what comes, and ends when the
/// containers stop; on a tty each service's prefix is coloured, as docker compose's.
#[test]
fn logs_follow_and_colours() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let text = r#"
services:
  ticker:
    image: busybox
    command: ["sh", "-c", "echo first; while [ ! -e /go ]; do busybox sleep 0.1; done; echo second"]
  other:
    image: busybox
    command: ["sh", "-c", "echo other-line; exec busybox sleep 1000000"]
    stop_grace_period: 0s
"#;
    let app = App::new(&d.host, dir.path(), "lf", &[("compose.yaml", text)]);
    ok(app.compose(Tool::Berth, &["up", "-d"]));
    let mut follow = Command::new(BERTH)
        .args([
            "-H",
            &app.host,
            "compose",
            "-p",
            "lf",
            "logs",
            "-f",
            "--no-color",
        ])
        .current_dir(&app.dir)
        .env("BERTH_CONFIG", config_dir(&app.host))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth compose logs -f");
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut line = |want: &str| line_with(&mut out, want);
    assert_eq!(line("| first"), "lf-ticker-1 | first\n");
    // The follower is still there; a line written now reaches it.
    assert!(follow.try_wait().unwrap().is_none(), "logs -f ended early");
    ok(app.compose(
        Tool::Berth,
        &["exec", "-T", "ticker", "busybox", "touch", "/go"],
    ));
    assert_eq!(line("| second"), "lf-ticker-1 | second\n");
    // ticker has exited; once the rest stops too, logs -f ends by itself.
    ok(app.compose(Tool::Berth, &["stop", "other"]));
    let mut ended = None;
    for _ in 0..300 {
        ended = follow.try_wait().unwrap();
        if ended.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if ended.is_none() {
        let _ = follow.kill();
        let _ = follow.wait();
        panic!("logs -f still running after every container stopped");
    }
    assert!(ended.unwrap().success());

    // On a tty (script(1) gives it one): the prefix in a colour, reset before the line.
    let tty = Command::new("script")
        .args(["-qec"])
        .arg(format!("{BERTH} -H {} compose -p lf logs ticker", app.host))
        .arg("/dev/null")
        .current_dir(&app.dir)
        .env("BERTH_CONFIG", config_dir(&app.host))
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux)");
    let shown = stdout(&tty);
    assert!(
        shown.contains("\x1b[36mlf-ticker-1 |\x1b[0m first"),
        "{shown:?}"
    );
}

/// docker-compose 1.29 on berth builds a service both ways it knows (through docker-py,
/// and with `COMPOSE_DOCKER_CLI_BUILD=1` through the docker CLI), each `up --build` running
/// the image just built; and its `logs -f` prints what was there and follows what comes.
#[test]
fn docker_compose_builds_both_ways_and_follows_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let text = r#"
services:
  built:
    build: ./b
    command: ["sh", "-c", "busybox cat /marker; exec busybox sleep 1000000"]
    stop_grace_period: 0s
  ticker:
    image: busybox
    command: ["sh", "-c", "echo first; while [ ! -e /go ]; do busybox sleep 0.1; done; echo second; exec busybox sleep 1000000"]
    stop_grace_period: 0s
"#;
    let app = App::new(&d.host, dir.path(), "dcb", &[("compose.yaml", text)]);
    for mode in ["0", "1"] {
        let marker = format!("built-with-cli-{mode}");
        let dockerfile = format!("FROM busybox\nRUN echo {marker} > /marker\n");
        std::fs::create_dir_all(app.dir.join("b")).unwrap();
        std::fs::write(app.dir.join("b/Dockerfile"), dockerfile).unwrap();
        let up = app.compose_env(
            Tool::DockerCompose,
            &["up", "-d", "--build"],
            &[("COMPOSE_DOCKER_CLI_BUILD", mode), ("DOCKER_BUILDKIT", "0")],
        );
        assert!(up.status.success(), "mode {mode}: {}", err_text(&up));
        let got = ok(app.compose(
            Tool::DockerCompose,
            &["exec", "-T", "built", "busybox", "cat", "/marker"],
        ));
        assert_eq!(got, format!("{marker}\n"), "mode {mode}: {}", err_text(&up));
    }
    let images = ok(berth(&d.host, &["images", "--format", "{{.Repository}}"]));
    assert!(images.lines().any(|l| l == "dcb_built"), "{images}");

    let mut follow = Command::new(DOCKER_COMPOSE)
        .args(["-p", "dcb", "logs", "-f", "--no-color", "ticker"])
        .current_dir(&app.dir)
        .env("DOCKER_HOST", &app.host)
        .env("DOCKER_CONFIG", config_dir(&app.host))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run docker-compose logs -f");
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut line = |want: &str| line_with(&mut out, want);
    // 1.29 prefixes a line with the container's name less the project.
    let first = line("| first");
    assert!(first.starts_with("ticker_1 "), "{first:?}");
    assert!(follow.try_wait().unwrap().is_none(), "logs -f ended early");
    ok(app.compose(
        Tool::DockerCompose,
        &["exec", "-T", "ticker", "busybox", "touch", "/go"],
    ));
    let second = line("| second");
    assert!(second.starts_with("ticker_1 "), "{second:?}");
    let _ = follow.kill();
    let _ = follow.wait();
}

/// `pull` and `push`, by `berth compose` and docker-compose 1.29, through Debian's
/// docker-registry on 127.0.0.1 (its port published into the daemon's network namespace):
/// pull fetches the service's image the registry has; push sends the built image, which the
/// registry then holds (skopeo reads it back) and a pull after `rmi` brings back unchanged.
#[test]
fn pull_and_push_through_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let registry = start_registry();
    let port: u16 = registry.addr.rsplit(':').next().unwrap().parse().unwrap();
    let _published = forward_into(Path::new(&format!("/proc/{}/ns/net", d.child.id())), port);
    let image = busybox_image("from-registry", 3);
    let archive = dir.path().join("pulled.tar");
    std::fs::write(&archive, docker_archive(&image, &["pulled:1"])).unwrap();
    skopeo_push(&archive, &format!("{}/pulled:1", registry.addr));
    let text = r#"
services:
  app:
    image: ${REG}/pulled:1
    command: ["busybox", "sleep", "1000000"]
  built:
    image: ${REG}/built-${TOOL}:1
    build: ./b
"#;
    for (tool, project) in Tool::both("pp") {
        let app = App::new(
            &d.host,
            dir.path(),
            &project,
            &[
                ("compose.yaml", text),
                ("b/Dockerfile", "FROM busybox\nRUN echo pushed > /marker\n"),
            ],
        );
        let env = [("REG", registry.addr.as_str()), ("TOOL", project.as_str())];
        let compose = |args: &[&str]| {
            let out = app.compose_env(tool, args, &env);
            assert!(
                out.status.success(),
                "{tool:?} {args:?}: {}",
                err_text(&out)
            );
            out
        };
        let id = |name: &str| {
            ok(berth(
                &app.host,
                &["image", "inspect", "--format", "{{.Id}}", name],
            ))
        };
        let pulled = format!("{}/pulled:1", registry.addr);
        compose(&["pull", "app"]);
        assert_eq!(id(&pulled), format!("{}\n", image.id), "{tool:?}");

        let built = format!("{}/built-{project}:1", registry.addr);
        compose(&["build", "built"]);
        let local = id(&built);
        compose(&["push", "built"]);
        let seen = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--config", "--raw"])
            .arg(format!("docker://{built}"))
            .output()
            .expect("skopeo");
        assert!(seen.status.success(), "{tool:?}: {}", stderr(&seen));
        assert_eq!(
            format!(
                "{}\n",
                berth_supervisor::images::content::digest_of(&seen.stdout)
            ),
            local,
            "{tool:?}: the registry holds the built image's config"
        );
        ok(berth(&app.host, &["rmi", &built]));
        compose(&["pull", "built"]);
        assert_eq!(id(&built), local, "{tool:?}: the pushed image came back");
        ok(berth(&app.host, &["rmi", &built, &pulled]));
    }
}

const SPEC_APP: &str = r#"
services:
  web:
    extends: {file: ./base.yaml, service: base}
    command: busybox httpd -f -p 80 -h /www
    env_file: [./web.env]
    volumes: ["./www:/www:ro", "shared:/shared"]
    networks:
      back:
        aliases: [site]
    ports: ["127.0.0.1:18095:80"]
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 200ms
      retries: 50
  flaky:
    image: busybox
    command: ["sh", "-c", "echo run >> /shared/runs; [ $$(busybox wc -l < /shared/runs) -ge 3 ] && exec busybox sleep 1000000; exit 1"]
    restart: on-failure
    volumes: ["shared:/shared"]
    stop_grace_period: 0s
  probe:
    image: busybox
    command: ["busybox", "sleep", "1000000"]
    stop_grace_period: 0s
    networks: [back]
    depends_on:
      web: {condition: service_healthy}
  debug:
    image: busybox
    command: ["busybox", "sleep", "1000000"]
    stop_grace_period: 0s
    profiles: [debug]
networks:
  back:
volumes:
  shared:
"#;

const SPEC_BASE: &str = r#"
services:
  base:
    image: busybox
    stop_grace_period: 0s
    environment:
      FROM_BASE: "yes"
"#;

/// The spec keys users lean on, by `berth compose` and by docker-compose 1.29, each seen at
/// work: `extends` from another file, `env_file`, a bind and a named volume shared by two
/// services, a network alias resolved by a service on that network, a published port,
/// `restart: on-failure` restarting a failing service until it stays up, `depends_on`
/// service_healthy, and a `profiles` service started only with `--profile`.
#[test]
fn spec_keys_at_work_with_both_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    for (tool, project) in Tool::both("spec") {
        let app = App::new(
            &d.host,
            dir.path(),
            &project,
            &[
                ("compose.yaml", SPEC_APP),
                ("base.yaml", SPEC_BASE),
                ("web.env", "# a comment\nFROM_FILE=file-value\n"),
                ("www/index.html", "spec web\n"),
            ],
        );
        let name = |service: &str| tool.container(&project, service);
        let up = app.compose(tool, &["up", "-d"]);
        assert!(up.status.success(), "{tool:?}: {}", err_text(&up));
        let exec = |service: &str, script: &str| {
            ok(app.compose(tool, &["exec", "-T", service, "sh", "-c", script]))
        };
        assert_eq!(
            exec("web", "echo $FROM_BASE $FROM_FILE"),
            "yes file-value\n",
            "{tool:?}: extends and env_file"
        );
        assert_eq!(
            exec("probe", &WGET_WEB.replace("http://web/", "http://site/")),
            "spec web\n",
            "{tool:?}: the alias"
        );
        assert_eq!(from_host(&d, "http://127.0.0.1:18095/"), "spec web\n");
        assert_eq!(
            app.inspect(&name("web"))["State"]["Health"]["Status"],
            "healthy"
        );
        assert_eq!(app.inspect(&name("probe"))["State"]["Running"], true);
        // flaky exits 1 twice, is restarted each time, and stays up on its third run.
        let mut flaky = Value::Null;
        for _ in 0..300 {
            flaky = app.inspect(&name("flaky"));
            if flaky["RestartCount"] == 2 && flaky["State"]["Running"] == true {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(flaky["RestartCount"], 2, "{tool:?}: {flaky}");
        assert_eq!(flaky["State"]["Running"], true, "{tool:?}");
        assert_eq!(
            exec("web", "busybox cat /shared/runs"),
            "run\nrun\nrun\n",
            "{tool:?}: the named volume"
        );
        // The profile's service: not started by a plain up, started with --profile.
        assert!(!berth(&app.host, &["inspect", &name("debug")])
            .status
            .success());
        let up = app.compose(tool, &["--profile", "debug", "up", "-d"]);
        assert!(up.status.success(), "{tool:?}: {}", err_text(&up));
        assert_eq!(app.inspect(&name("debug"))["State"]["Running"], true);
        let down = app.compose(tool, &["--profile", "debug", "down", "-v"]);
        assert!(down.status.success(), "{tool:?}: {}", err_text(&down));
        assert_eq!(app.leftovers(), Vec::<String>::new(), "{tool:?}");
    }
}

/// The project of the comparison: a server with a published port, a named and a bind volume;
/// a worker depending on it; a service of an inactive profile with a volume of its own.
const COMPARED: &str = r#"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo web-start; exec busybox httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:18095:80"]
    volumes: ["data:/data", "./www:/www:ro"]
    stop_grace_period: 1s
  worker:
    image: busybox
    command: ["sh", "-c", "echo worker-start $$A; exec busybox sleep 1000000"]
    environment: {A: "one"}
    depends_on: [web]
    stop_grace_period: 0s
  extra:
    image: busybox
    profiles: [extra]
    volumes: ["extra:/x"]
volumes:
  data:
  extra:
"#;

/// How an output is compared: as printed, or as a set of lines (1.29 runs some operations
/// in parallel threads: their lines come in any order).
#[derive(Clone, Copy)]
enum Order {
    Kept,
    Any,
}

/// docker-compose 1.29 in one project directory, pointed at berth and at a private dockerd.
/// Dropping it takes the project down on both and removes what is left on berth (its
/// containers outlive its daemon; the dockerd's go with its data root).
struct OnBoth {
    /// berth's socket, then dockerd's.
    hosts: [String; 2],
    dir: PathBuf,
}

impl Drop for OnBoth {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = self.run(host, &["down", "-v", "-t", "0", "--remove-orphans"]);
        }
        for id in stdout(&berth(&self.hosts[0], &["ps", "-aq"])).split_whitespace() {
            let _ = berth(&self.hosts[0], &["rm", "-f", id]);
        }
    }
}

/// One side's answer: exit code, normalised stdout and stderr.
type Answer = (Option<i32>, String, String);

impl OnBoth {
    fn run(&self, host: &str, args: &[&str]) -> Output {
        Command::new(DOCKER_COMPOSE)
            .args(["-p", "cmp"])
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", host)
            .env("DOCKER_CONFIG", config_dir(host))
            .stdin(Stdio::null())
            .output()
            .expect("docker-compose 1.29 missing: apt-get install docker-compose")
    }

    /// `args` on berth, then on dockerd, each answer normalised (`order`, then `also`).
    fn for_both_tools(&self, args: &[&str], order: Order, also: fn(&str) -> String) -> [Answer; 2] {
        self.hosts.clone().map(|host| {
            let out = self.run(&host, args);
            let norm = |text: String| also(&in_order(&normalise(&text), order));
            (out.status.code(), norm(stdout(&out)), norm(stderr(&out)))
        })
    }

    /// `args` answered alike by both; berth's answer.
    fn same(&self, args: &[&str], order: Order) -> Answer {
        self.same_by(args, order, |s| s.to_string())
    }

    fn same_by(&self, args: &[&str], order: Order, also: fn(&str) -> String) -> Answer {
        let [ours, theirs] = self.for_both_tools(args, order, also);
        assert_eq!(
            ours, theirs,
            "docker-compose {args:?}: berth (left), dockerd (right)"
        );
        ours
    }
}

/// ANSI escapes and carriage returns out; container IDs, image IDs and the one-off
/// container's suffix (runs of 12 or 64 hex digits) made `<id>`.
fn normalise(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => plain.push(c),
        }
    }
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hex = word
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if hex && (word.len() == 12 || word.len() == 64) {
            out.push_str("<id>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in plain.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn in_order(text: &str, order: Order) -> String {
    match order {
        Order::Kept => text.to_string(),
        Order::Any => {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            lines.iter().map(|l| format!("{l}\n")).collect()
        }
    }
}

/// `top`'s tables without what differs run to run (PIDs, start and cpu times): each
/// process as its user and command.
fn top_commands(text: &str) -> String {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.len() {
                n if n >= 8 => format!("{} {}\n", f[0], f[7..].join(" ")),
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

/// docker-compose 1.29 (Debian's) run the same commands on one project against berth and
/// against a private dockerd (its bridge, pool and iptables rules in a network namespace
/// of its own): every answer (exit code, stdout, stderr; normalised) the same, or the
/// difference named and justified here.
#[test]
fn docker_compose_on_berth_shows_what_it_shows_on_dockerd() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir.path().join("berth"));
    let dockerd = Dockerd::start_networked(
        &dir.path().join("dockerd"),
        "10.234.0.1/24",
        "base=10.235.0.0/20,size=24",
    );
    let image = busybox_image("compose", 1);
    dockerd.docker_stdin(&["load"], &docker_archive(&image, &["busybox:latest"]));
    let project = dir.path().join("cmp");
    for (path, text) in [
        ("docker-compose.yml", COMPARED),
        ("www/index.html", "hello from web\n"),
        ("bad.yml", "services:\n  web:\n    image: [busybox\n"),
        (
            "unknown-key.yml",
            "services:\n  web:\n    image: busybox\n    colour: red\n",
        ),
    ] {
        let p = project.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let both = OnBoth {
        hosts: [d.host.clone(), dockerd.host.clone()],
        dir: project,
    };
    use Order::{Any, Kept};

    // Read from the files only; v1 lists the volumes of profile-inactive services too.
    both.same(&["config"], Kept);
    both.same(&["config", "--services"], Kept);
    let volumes = both.same(&["config", "--volumes"], Kept);
    assert_eq!(volumes.1, "data\nextra\n");

    let up = both.same(&["up", "-d"], Kept);
    assert_eq!(up.0, Some(0), "{up:?}");
    both.same(&["up", "-d"], Any);
    both.same(&["ps"], Kept);
    let ids = both.same(&["ps", "-q"], Any);
    assert_eq!(ids.1.lines().count(), 2, "{ids:?}");
    both.same(&["ps", "--services"], Any);
    both.same(&["ps", "--services", "--filter", "status=running"], Any);
    both.same(
        &["exec", "-T", "worker", "sh", "-c", "echo $A; busybox id -u"],
        Kept,
    );
    both.same(
        &["exec", "-T", "web", "busybox", "cat", "/www/index.html"],
        Kept,
    );
    both.same(&["exec", "-T", "worker", "sh", "-c", "exit 3"], Kept);
    both.same(
        &["run", "--rm", "-T", "worker", "sh", "-c", "echo one-off"],
        Kept,
    );
    // A command that is not there: the same exit and error, but for the runtime's own words
    // (runc's "runc create failed: unable to start container process: " prefix); nothing of
    // the runtime's on the container's stderr.
    let [ours, theirs] = both.for_both_tools(
        &["run", "--rm", "-T", "worker", "nosuchcommand"],
        Kept,
        |s| {
            s.lines()
                .map(|l| {
                    l.replace(
                        "runc create failed: unable to start container process: ",
                        "",
                    ) + "\n"
                })
                .collect()
        },
    );
    assert_eq!(
        ours, theirs,
        "run of a missing command: berth (left), dockerd (right)"
    );
    both.same(
        &[
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "-e",
            "A=two",
            "worker",
            "sh",
            "-c",
            "echo $A",
        ],
        Kept,
    );
    both.same(&["port", "web", "80"], Kept);
    both.same(&["port", "worker", "80"], Kept);
    both.same_by(&["top", "worker"], Kept, top_commands);
    both.same(&["logs", "--no-color"], Any);
    both.same(&["logs", "--no-color", "--tail", "1", "web"], Kept);
    both.same(&["images"], Kept);
    both.same(&["stop", "worker"], Kept);
    both.same(&["ps"], Kept);
    both.same(&["start", "worker"], Kept);
    both.same(&["restart", "web"], Kept);
    both.same(&["kill", "worker"], Kept);
    both.same(&["ps"], Kept);
    both.same(&["rm", "-f", "worker"], Kept);
    both.same(&["ps"], Kept);
    both.same(&["up", "-d", "--no-deps", "worker"], Kept);
    both.same(&["stop"], Any);
    both.same(&["ps", "-a"], Kept);

    // Bad input: one clear error, the same.
    both.same(&["exec", "-T", "nosuch", "true"], Kept);
    both.same(&["logs", "nosuch"], Kept);
    both.same(&["up", "-d", "nosuch"], Kept);
    both.same(&["-f", "bad.yml", "config"], Kept);
    both.same(&["-f", "unknown-key.yml", "up", "-d"], Kept);
    both.same(&["-f", "missing.yml", "ps"], Kept);

    both.same(&["down", "-v"], Any);
    both.same(&["ps"], Kept);
    assert_eq!(
        stdout(&berth(&d.host, &["volume", "ls", "-q"])),
        "",
        "down -v left volumes"
    );
}
