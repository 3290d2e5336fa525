//! A real image registry for tests: Debian's `docker-registry` (distribution 2.x) on
//! 127.0.0.1 with a free port and a private storage directory, killed on drop.
//!
//! ```no_run
//! let registry = berth_integration::registry::Registry::start();
//! let host = registry.host(); // "127.0.0.1:PORT"
//! // with htpasswd basic auth:
//! let private = berth_integration::registry::Registry::start_with_auth("alice", "secret");
//! ```
//! `log()` is what the registry printed (its access log included), `blob_gets(digest)` counts
//! the blob downloads it served, and `blob_file(digest)` is where it keeps a blob's bytes (to
//! corrupt one on purpose).
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the registry.
pub const BINARY: &str = "/usr/bin/docker-registry";

/// A running registry.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry that anyone may pull from and push to.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts a registry that wants basic auth with this one user (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("registry temp dir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("registry storage dir");
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash(password, 5).expect("bcrypt");
            fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n"))
                .expect("write htpasswd");
        }
        // The port was free a moment ago; another test may take it first, so try again then.
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn(dir.path(), port, auth.is_some());
            if wait_ready(&mut child, port, dir.path()) {
                return Registry { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not come up:\n{}",
            fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// The HTTP status of a plain GET, or None when nothing answers.
    pub fn get_status(&self, path: &str) -> Option<u16> {
        http_status(self.port, path)
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its private storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where it keeps the bytes of a blob (`sha256:…`).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Everything it logged so far (access log included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The log once it has stopped growing for 200 ms (access log lines are written after
    /// the response has gone out, so a client may be done before its line is there).
    pub fn settled_log(&self) -> String {
        let mut log = self.log();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.log();
            if now.len() == log.len() {
                break;
            }
            log = now;
        }
        log
    }

    /// How many times it served `GET …/blobs/<digest>` so far.
    pub fn blob_gets(&self, digest: &str) -> usize {
        let needle = format!("/blobs/{digest} ");
        self.settled_log()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains(&needle))
            .count()
    }

    /// How many blob downloads of any digest it served so far.
    pub fn all_blob_gets(&self) -> usize {
        self.settled_log()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains("/blobs/sha256:"))
            .count()
    }

    /// The directory holding the config, htpasswd, storage and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes the config for `port` and starts the registry, its output going to `registry.log`.
fn spawn(dir: &Path, port: u16, basic_auth: bool) -> Child {
    let mut config = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n",
        dir.join("storage").display()
    );
    if basic_auth {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    let config_path = dir.join("config.yml");
    fs::write(&config_path, config).expect("write registry config");
    let log = fs::File::create(dir.join("registry.log")).expect("registry log");
    Command::new(BINARY)
        .arg("serve")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BINARY}: {e} (apt-get install docker-registry)"))
}

/// True once the registry started as `child` (not another process on its port) serves
/// `/v2/`; false when it exited (its port was taken).
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        let log = fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
        if log.contains("listening on") && matches!(http_status(port, "/v2/"), Some(200 | 401)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The HTTP status of a plain GET to 127.0.0.1:`port`, or None when nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

/// What a [`FakeRegistry`] route answers with.
#[derive(Debug, Clone)]
pub enum Body {
    /// These bytes, with their Content-Length.
    Bytes(Vec<u8>),
    /// Zeros without Content-Length until the client hangs up (at most 1 GiB).
    Endless,
    /// The first half of these bytes with the Content-Length of all, then a hang-up.
    Truncated(Vec<u8>),
}

/// One scripted answer: `GET`/`HEAD` of `path` (query ignored) gets status 200, the headers
/// and the body.
#[derive(Debug, Clone)]
pub struct Route {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// A scripted registry on 127.0.0.1 for what a real one never does (a manifest that is not
/// what its digest says, an endless blob) and for the token flow that Debian's registry cannot
/// do alone. `/v2/` answers 200, unknown paths 404. Stops on drop.
pub struct FakeRegistry {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeRegistry {
    /// Serves `routes` to anyone.
    pub fn start(routes: Vec<Route>) -> Self {
        Self::serve(routes, None)
    }

    /// Serves `routes` only with `Authorization: Bearer TOKEN`; anything else gets 401 and
    /// `WWW-Authenticate: Bearer realm="http://HOST/token",service="berth-fake"`. `/token`
    /// hands out [`TOKEN`] for basic auth as `user`/`password`, 401 otherwise.
    pub fn start_with_token(routes: Vec<Route>, user: &str, password: &str) -> Self {
        Self::serve(routes, Some(format!("{user}:{password}")))
    }

    fn serve(routes: Vec<Route>, account: Option<String>) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake registry");
        let port = listener.local_addr().expect("fake registry address").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let routes = std::sync::Arc::new(routes);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let routes = routes.clone();
                        let account = account.clone();
                        std::thread::spawn(move || {
                            serve_one(stream, port, &routes, account.as_deref())
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeRegistry { port, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Status line, headers and body of a fake registry's answer.
type Answer = (&'static str, Vec<(String, String)>, Body);

/// The bearer token a [`FakeRegistry::start_with_token`] hands out.
pub const TOKEN: &str = "berth-fake-token";

/// Status, headers and body for a request to a token-protected fake registry when the
/// request is not let through; None when it is.
fn token_gate(head: &str, path: &str, port: u16, account: &str) -> Option<Answer> {
    use base64::Engine as _;
    let authorization = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    if path == "/token" {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(account)
        );
        return Some(if authorization == basic {
            let body = format!("{{\"token\":\"{TOKEN}\"}}");
            ("200 OK", Vec::new(), Body::Bytes(body.into_bytes()))
        } else {
            ("401 Unauthorized", Vec::new(), Body::Bytes(b"{}".to_vec()))
        });
    }
    if authorization == format!("Bearer {TOKEN}") {
        return None;
    }
    let challenge =
        format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"berth-fake\"");
    Some((
        "401 Unauthorized",
        vec![("WWW-Authenticate".to_string(), challenge)],
        Body::Bytes(b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}".to_vec()),
    ))
}

fn serve_one(mut stream: TcpStream, port: u16, routes: &[Route], account: Option<&str>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or_default();
    let path = words.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let route = routes.iter().find(|r| r.path == path);
    let gate = account.and_then(|account| token_gate(&head, path, port, account));
    let (status, headers, body) = match (path, route, gate) {
        (_, _, Some(answer)) => answer,
        (_, Some(route), None) => ("200 OK", route.headers.clone(), route.body.clone()),
        ("/v2/", None, None) => ("200 OK", Vec::new(), Body::Bytes(b"{}".to_vec())),
        _ => (
            "404 Not Found",
            Vec::new(),
            Body::Bytes(b"{\"errors\":[]}".to_vec()),
        ),
    };
    let mut response = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in &headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Body::Bytes(bytes) | Body::Truncated(bytes) = &body {
        response.push_str(&format!("Content-Length: {}\r\n", bytes.len()));
    }
    response.push_str("\r\n");
    if stream.write_all(response.as_bytes()).is_err() || method == "HEAD" {
        return;
    }
    match body {
        Body::Bytes(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Body::Truncated(bytes) => {
            let _ = stream.write_all(&bytes[..bytes.len() / 2]);
        }
        Body::Endless => {
            let zeros = vec![0u8; 64 << 10];
            for _ in 0..(1 << 14) {
                if stream.write_all(&zeros).is_err() {
                    break;
                }
            }
        }
    }
}
