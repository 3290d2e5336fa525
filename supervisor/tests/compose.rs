//! `berth compose` and Debian's docker-compose 1.29 against a berth daemon in a network
//! namespace of the test's own: a multi-service busybox app (a one-shot init gating the web
//! server with service_completed_successfully, httpd, a client built from a Dockerfile, a
//! named volume, an anonymous volume, a published port; the client reaching web by its
//! service name), idempotent up, recreate on change,
//! scale, exec, logs, run, down -v leaving nothing; one project driven by both tools; and
//! every bad-input case failing with one clear error and nothing made.
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
  client:
    build: ./client
    depends_on: [web]
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

    // Idempotent: a second up keeps every container.
    let ids = |app: &App| ok(app.compose(Tool::Berth, &["ps", "-q"]));
    let before = ids(&app);
    let again = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(again.status.success(), "{}", err_text(&again));
    assert!(
        stderr(&again).contains("Container demo-web-1  Running"),
        "{}",
        err_text(&again)
    );
    assert_eq!(ids(&app), before);

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

/// `service_healthy`: the dependent starts only once the dependency's healthcheck passes;
/// an unhealthy dependency fails `up` with one error and leaves the dependent uncreated.
#[test]
fn health_gates_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let text = r#"
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
    let app = App::new(
        &d.host,
        dir.path(),
        "health",
        &[("compose.yaml", text), ("www/index.html", "ok\n")],
    );
    let up = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(up.status.success(), "{}", err_text(&up));
    assert!(
        stderr(&up).contains("Container health-web-1  Healthy"),
        "{}",
        err_text(&up)
    );
    assert_eq!(
        app.inspect("health-web-1")["State"]["Health"]["Status"],
        "healthy"
    );
    assert_eq!(app.inspect("health-client-1")["State"]["Running"], true);
    ok(app.compose(Tool::Berth, &["down", "-t", "0"]));

    let sick = text
        .replace("http://127.0.0.1/", "http://127.0.0.1:81/")
        .replace("retries: 50", "retries: 2");
    std::fs::write(app.dir.join("compose.yaml"), sick).unwrap();
    let up = app.compose(Tool::Berth, &["up", "-d"]);
    assert!(!up.status.success(), "{}", err_text(&up));
    let last = stderr(&up);
    assert!(
        last.lines()
            .last()
            .unwrap_or("")
            .contains("container health-web-1 is unhealthy"),
        "{}",
        err_text(&up)
    );
    assert!(!berth(&app.host, &["inspect", "health-client-1"])
        .status
        .success());
}
