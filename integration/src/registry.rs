//! A real image registry for tests: Debian's `docker-registry` (distribution 2.x) on
//! 127.0.0.1 with a free port and a private storage directory, killed on drop.
//!
//! ```no_run
//! let registry = berth_integration::registry::Registry::start();
//! let host = registry.host(); // "127.0.0.1:PORT"
//! // with htpasswd basic auth:
//! let private = berth_integration::registry::Registry::start_with_auth("alice", "secret");
//! // with the Bearer token flow, tokens from a token server of the test's own:
//! use berth_integration::registry::Anonymous;
//! let tokened = berth_integration::registry::Registry::start_with_token("bob", "pw", Anonymous::Pull);
//! ```
//! `log()` is what the registry printed (its access log included), `blob_gets(digest)` counts
//! the blob downloads it served, and `blob_file(digest)` is where it keeps a blob's bytes (to
//! corrupt one on purpose).
use std::collections::HashMap;
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
    token_server: Option<TokenServer>,
}

/// What a [`Registry::start_with_token`] token server grants to a client without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    /// No access at all: every token it gets carries an empty `access` list.
    Denied,
    /// `pull` of any repository, never `push`.
    Pull,
}

/// The `service` (the tokens' audience) a token-auth registry says it is.
pub const TOKEN_SERVICE: &str = "berth-test-registry";
/// The `iss` of the tokens, which the registry checks.
pub const TOKEN_ISSUER: &str = "berth-test-token-server";

impl Registry {
    /// Starts a registry that anyone may pull from and push to.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts a registry that wants basic auth with this one user (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::launch(Some((user, password)))
    }

    /// Starts a registry with `auth: token`: it answers 401 with
    /// `WWW-Authenticate: Bearer realm="http://127.0.0.1:TPORT/token",service="`[`TOKEN_SERVICE`]`"`
    /// and lets through only RS256 JWTs signed by a key of its own (an RSA key and a
    /// self-signed certificate made with the `openssl` CLI, the certificate being the
    /// registry's `rootcertbundle` and each token's `x5c`).
    ///
    /// The token server is a thread of this process on another port of 127.0.0.1. For
    /// `GET /token?service=…&scope=repository:NAME:pull,push` it checks HTTP basic
    /// credentials: `user`/`password` get what they ask for of `pull` and `push`, a wrong
    /// password gets 401, and a request without credentials gets what `anonymous` allows.
    /// It answers `{"token": …, "access_token": …, "expires_in": 300}`; [`Registry::tokens`]
    /// lists what it granted.
    pub fn start_with_token(user: &str, password: &str, anonymous: Anonymous) -> Self {
        let dir = tempfile::tempdir().expect("registry temp dir");
        let server = TokenServer::start(dir.path(), user, password, anonymous);
        Self::launch_in(dir, None, Some(server))
    }

    fn launch(auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("registry temp dir");
        Self::launch_in(dir, auth, None)
    }

    fn launch_in(
        dir: tempfile::TempDir,
        auth: Option<(&str, &str)>,
        token_server: Option<TokenServer>,
    ) -> Self {
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
            let mode = match (&token_server, auth) {
                (Some(server), _) => Auth::Token(server.port),
                (None, Some(_)) => Auth::Basic,
                (None, None) => Auth::None,
            };
            let mut child = spawn(dir.path(), port, mode);
            if wait_ready(&mut child, port, dir.path()) {
                return Registry {
                    child,
                    port,
                    dir,
                    token_server,
                };
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

    /// The directory holding the config, htpasswd or token key and certificate, storage
    /// and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the token server of a [`Registry::start_with_token`] did so far, one line a
    /// request: `USER scope=SCOPE granted=ACCESS` (`USER` is `-` without credentials),
    /// or `USER refused` for a wrong password. Empty for the other registries.
    pub fn tokens(&self) -> Vec<String> {
        self.token_server
            .as_ref()
            .map(|s| s.log.lock().expect("token log").clone())
            .unwrap_or_default()
    }
}

/// How a registry wants clients to authenticate.
#[derive(Clone, Copy)]
enum Auth {
    None,
    Basic,
    /// `auth: token` with the realm on this port.
    Token(u16),
}

/// Writes the config for `port` and starts the registry, its output going to `registry.log`.
fn spawn(dir: &Path, port: u16, auth: Auth) -> Child {
    let mut config = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n",
        dir.join("storage").display()
    );
    match auth {
        Auth::None => {}
        Auth::Basic => config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            dir.join("htpasswd").display()
        )),
        Auth::Token(token_port) => config.push_str(&format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    \
             service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            dir.join("token-cert.pem").display()
        )),
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

/// The token server of a [`Registry::start_with_token`]: a thread answering `/token` on
/// 127.0.0.1, stopped on drop.
struct TokenServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// What the token server needs to answer a request.
struct TokenIssuer {
    /// `Basic base64(user:password)`, the one account.
    basic: String,
    user: String,
    anonymous: Anonymous,
    key: PathBuf,
    /// The certificate (DER, standard base64) that goes into each token's `x5c`.
    cert: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    serial: std::sync::atomic::AtomicU64,
}

impl TokenServer {
    /// Makes the signing key and certificate in `dir` (`token-key.pem`, `token-cert.pem`)
    /// and starts serving.
    fn start(dir: &Path, user: &str, password: &str, anonymous: Anonymous) -> Self {
        use base64::Engine as _;
        use std::sync::atomic::{AtomicBool, Ordering};
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth test token issuer",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
        ]);
        let der = openssl(&["x509", "-in", path_str(&cert), "-outform", "DER"]);
        let engine = &base64::engine::general_purpose::STANDARD;
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let issuer = std::sync::Arc::new(TokenIssuer {
            basic: format!("Basic {}", engine.encode(format!("{user}:{password}"))),
            user: user.to_string(),
            anonymous,
            key,
            cert: engine.encode(der),
            log: log.clone(),
            serial: Default::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("token server address").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let issuer = issuer.clone();
                        std::thread::spawn(move || issuer.serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer { port, stop, log }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl TokenIssuer {
    /// Answers one request on `stream` and hangs up.
    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(head) = read_head(&mut stream) else {
            return;
        };
        let target = head.split_whitespace().nth(1).unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let (status, body) = if path != "/token" {
            ("404 Not Found", "{}".to_string())
        } else {
            self.answer(&head, query)
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }

    /// Status and body for `GET /token?QUERY`.
    fn answer(&self, head: &str, query: &str) -> (&'static str, String) {
        let authorization = header_value(head, "authorization");
        let user = match authorization {
            None => None,
            Some(value) if value == self.basic => Some(self.user.as_str()),
            Some(_) => {
                let who = authorization_user(authorization.unwrap_or_default());
                self.log(format!("{who} refused"));
                return (
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}"#
                        .to_string(),
                );
            }
        };
        let mut service = String::new();
        let mut access = Vec::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match name {
                "service" => service = value,
                "scope" => {
                    for scope in value.split(' ') {
                        let granted = self.grant(user.is_some(), scope);
                        self.log(format!(
                            "{} scope={scope} granted={}",
                            user.unwrap_or("-"),
                            granted
                                .as_ref()
                                .map(|(_, a)| a.join(","))
                                .unwrap_or_default()
                        ));
                        if let Some((repository, actions)) = granted {
                            access.push(serde_json::json!({
                                "type": "repository", "name": repository, "actions": actions,
                            }));
                        }
                    }
                }
                _ => {}
            }
        }
        if service != TOKEN_SERVICE {
            return (
                "400 Bad Request",
                format!(
                    r#"{{"errors":[{{"code":"DENIED","message":"unknown service {service:?}"}}]}}"#
                ),
            );
        }
        let token = self.sign(user.unwrap_or(""), access);
        let body = serde_json::json!({
            "token": token, "access_token": token, "expires_in": 300,
        });
        ("200 OK", body.to_string())
    }

    /// The repository and the actions of `scope` (`repository:NAME:ACTIONS`) that are
    /// allowed, or None when none is.
    fn grant(&self, authenticated: bool, scope: &str) -> Option<(String, Vec<String>)> {
        let rest = scope.strip_prefix("repository:")?;
        let (repository, actions) = rest.rsplit_once(':')?;
        let allowed: &[&str] = match (authenticated, self.anonymous) {
            (true, _) => &["pull", "push"],
            (false, Anonymous::Pull) => &["pull"],
            (false, Anonymous::Denied) => &[],
        };
        let granted: Vec<String> = actions
            .split(',')
            .filter(|a| allowed.contains(a))
            .map(str::to_string)
            .collect();
        (!granted.is_empty()).then(|| (repository.to_string(), granted))
    }

    /// An RS256 JWT for `subject` with this `access`, valid for 300 s.
    fn sign(&self, subject: &str, access: Vec<serde_json::Value>) -> String {
        use base64::Engine as _;
        let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("berth-test-{}-{serial}", std::process::id()),
            "access": access,
        });
        let input = format!(
            "{}.{}",
            engine.encode(header.to_string()),
            engine.encode(claims.to_string())
        );
        let signature = openssl_with_input(
            &["dgst", "-sha256", "-sign", path_str(&self.key)],
            input.as_bytes(),
        );
        format!("{input}.{}", engine.encode(signature))
    }

    fn log(&self, line: String) {
        self.log.lock().expect("token log").push(line);
    }
}

/// The user named in a `Basic` authorization value, or `?`.
fn authorization_user(value: &str) -> String {
    use base64::Engine as _;
    value
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, _)| u.to_string()))
        .unwrap_or_else(|| "?".to_string())
}

/// `%XX` and `+` of a query value decoded.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of header `name` (lowercase) in a request head.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A request's head, up to the empty line.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Runs the `openssl` CLI and returns its stdout; panics with its stderr when it fails.
fn openssl(args: &[&str]) -> Vec<u8> {
    openssl_with_input(args, &[])
}

fn openssl_with_input(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn openssl: {e} (apt-get install openssl)"));
    let mut stdin = child.stdin.take().expect("openssl stdin");
    stdin.write_all(input).expect("write to openssl");
    drop(stdin);
    let out = child.wait_with_output().expect("wait for openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
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
    /// These bytes with their Content-Length, `chunk` bytes at a time with a pause of
    /// `every` before each (a slow or stalling registry).
    Drip {
        bytes: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
}

/// What a [`FakeRegistry`] saw, per path.
#[derive(Debug, Default)]
struct Seen {
    /// Requests received.
    requests: HashMap<String, usize>,
    /// Answers the client hung up on before their end.
    hangups: HashMap<String, usize>,
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
/// what its digest says, an endless blob). `/v2/` answers 200, unknown paths 404. Stops on drop.
pub struct FakeRegistry {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
}

impl FakeRegistry {
    /// Serves `routes` to anyone.
    pub fn start(routes: Vec<Route>) -> Self {
        Self::serve(routes)
    }

    fn serve(routes: Vec<Route>) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake registry");
        let port = listener.local_addr().expect("fake registry address").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let routes = std::sync::Arc::new(routes);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let seen_here = seen.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let routes = routes.clone();
                        let seen = seen_here.clone();
                        std::thread::spawn(move || serve_one(stream, &routes, &seen));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeRegistry { port, stop, seen }
    }

    /// How many requests `path` received.
    pub fn requests(&self, path: &str) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.requests.get(path).copied().unwrap_or(0)
    }

    /// How many answers on `path` the client hung up on before their end.
    pub fn hangups(&self, path: &str) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.hangups.get(path).copied().unwrap_or(0)
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

fn serve_one(mut stream: TcpStream, routes: &[Route], seen: &std::sync::Mutex<Seen>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or_default();
    let path = words.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let count = |map: fn(&mut Seen) -> &mut HashMap<String, usize>| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        *map(&mut seen).entry(path.to_string()).or_default() += 1;
    };
    count(|s| &mut s.requests);
    let route = routes.iter().find(|r| r.path == path);
    let (status, headers, body) = match (path, route) {
        (_, Some(route)) => ("200 OK", route.headers.clone(), route.body.clone()),
        ("/v2/", None) => ("200 OK", Vec::new(), Body::Bytes(b"{}".to_vec())),
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
    if let Body::Bytes(bytes) | Body::Truncated(bytes) | Body::Drip { bytes, .. } = &body {
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
        Body::Drip {
            bytes,
            chunk,
            every,
        } => {
            for piece in bytes.chunks(chunk.max(1)) {
                std::thread::sleep(every);
                if stream
                    .write_all(piece)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    count(|s| &mut s.hangups);
                    break;
                }
            }
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
