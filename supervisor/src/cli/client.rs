//! A small HTTP/1.1 client over the daemon's unix socket: one request per connection,
//! bodies sent whole or chunked, responses read by length, chunked, or to EOF. If nothing
//! answers, a daemon is started in the background (own session, log in the socket's dir).
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

/// API version prefix of every request.
pub const PREFIX: &str = "/v1.41";

/// Errors of a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Cannot connect to the berth daemon at {host}: {message}")]
    Connect { host: String, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed response from daemon: {0}")]
    Protocol(String),
    /// The daemon answered with an error status.
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
}

/// What a request carries.
pub enum Body<'a> {
    None,
    Json(Vec<u8>),
    /// Sent with chunked transfer encoding.
    Stream(&'a mut dyn Read),
}

/// The daemon's answer; `body` yields the decoded body bytes.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn BufRead + Send>,
}

impl Response {
    /// The header's value, case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole body as a string.
    pub fn text(mut self) -> Result<String, Error> {
        let mut s = String::new();
        self.body.read_to_string(&mut s)?;
        Ok(s)
    }

    /// The whole body as JSON.
    pub fn json(self) -> Result<serde_json::Value, Error> {
        let text = self.text()?;
        serde_json::from_str(&text).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Ok for a 2xx status, else the daemon's `{"message"}` as [`Error::Daemon`].
    pub fn ok(self) -> Result<Response, Error> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let status = self.status;
        let text = self.text()?;
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        Err(Error::Daemon { status, message })
    }
}

/// A client of one daemon socket.
#[derive(Debug, Clone)]
pub struct Client {
    pub host: String,
}

impl Client {
    pub fn new(host: &str) -> Self {
        Client {
            host: host.to_string(),
        }
    }

    fn connect(&self) -> Result<UnixStream, Error> {
        let socket = crate::daemon::socket_path(&self.host).map_err(|e| Error::Connect {
            host: self.host.clone(),
            message: e.to_string(),
        })?;
        if let Ok(stream) = UnixStream::connect(&socket) {
            return Ok(stream);
        }
        autostart(&self.host, &socket).map_err(|message| Error::Connect {
            host: self.host.clone(),
            message,
        })?;
        UnixStream::connect(&socket).map_err(|e| Error::Connect {
            host: self.host.clone(),
            message: e.to_string(),
        })
    }

    /// Sends a request (`path` without the version prefix) and reads the response head.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response, Error> {
        let mut stream = self.connect()?;
        let mut head = format!("{method} {PREFIX}{path} HTTP/1.1\r\nHost: berth\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match &body {
            Body::None => head.push_str("Content-Length: 0\r\n"),
            Body::Json(bytes) => head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                bytes.len()
            )),
            Body::Stream(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("Connection: close\r\n\r\n");
        stream.write_all(head.as_bytes())?;
        let sent = match body {
            Body::None => Ok(()),
            Body::Json(bytes) => stream.write_all(&bytes).map_err(Error::from),
            Body::Stream(reader) => write_chunked(&mut stream, reader),
        };
        match sent {
            Ok(()) => read_response(stream),
            // The daemon may have refused the body early and answered: show its answer.
            Err(e) => match read_response(stream) {
                Ok(response) if response.status >= 400 => Ok(response),
                _ => Err(e),
            },
        }
    }

    /// A hijacked request (attach, exec start): after `101 UPGRADED` the connection carries
    /// the raw stream both ways. Returns a reader (with what was read past the head) and a
    /// writer on the same socket; an error status is answered as [`Error::Daemon`].
    pub fn upgrade(
        &self,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<(BufReader<UnixStream>, UnixStream), Error> {
        let mut stream = self.connect()?;
        let body = json.unwrap_or_default();
        let head = format!(
            "POST {PREFIX}{path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body)?;
        let writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader)?;
        if status != 101 && !(200..300).contains(&status) {
            let body = body_reader(reader, &headers);
            let response = Response {
                status,
                headers,
                body,
            };
            return Err(response
                .ok()
                .err()
                .unwrap_or(Error::Protocol(format!("status {status}"))));
        }
        Ok((reader, writer))
    }

    pub fn get(&self, path: &str) -> Result<Response, Error> {
        self.request("GET", path, &[], Body::None)?.ok()
    }

    pub fn post(&self, path: &str) -> Result<Response, Error> {
        self.request("POST", path, &[], Body::None)?.ok()
    }
}

fn write_chunked(stream: &mut UnixStream, reader: &mut dyn Read) -> Result<(), Error> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        stream.write_all(format!("{n:x}\r\n").as_bytes())?;
        stream.write_all(&buf[..n])?;
        stream.write_all(b"\r\n")?;
    }
    stream.write_all(b"0\r\n\r\n")?;
    Ok(())
}

fn read_response(stream: UnixStream) -> Result<Response, Error> {
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let body = body_reader(reader, &headers);
    Ok(Response {
        status,
        headers,
        body,
    })
}

type Head = (u16, Vec<(String, String)>);

fn read_head(reader: &mut BufReader<UnixStream>) -> Result<Head, Error> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Protocol(format!("status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn body_reader(
    reader: BufReader<UnixStream>,
    headers: &[(String, String)],
) -> Box<dyn BufRead + Send> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Box::new(BufReader::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        }))
    } else if let Some(len) = header("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
        Box::new(reader.take(len))
    } else {
        Box::new(reader)
    }
}

/// Decodes a chunked body.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn next_chunk(&mut self) -> std::io::Result<()> {
        let mut line = String::new();
        self.inner.read_line(&mut line)?;
        if line.trim().is_empty() {
            // The CRLF that ends the previous chunk.
            line.clear();
            self.inner.read_line(&mut line)?;
        }
        let size = line.trim().split(';').next().unwrap_or("");
        self.left = usize::from_str_radix(size, 16).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad chunk size {line:?}"),
            )
        })?;
        if self.left == 0 {
            self.done = true;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            self.next_chunk()?;
            if self.done {
                return Ok(0);
            }
        }
        let want = out.len().min(self.left);
        let n = self.inner.read(&mut out[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        Ok(n)
    }
}

/// Nothing answers on `socket`: starts a daemon only where that replaces no other one.
/// A socket last served by a daemon a CLI had started gets one again with the same settings;
/// one served by a daemon someone else started (a service, an administrator) gets none, since
/// a daemon on another data root would hide its images and keep it from starting again.
fn autostart(host: &str, socket: &std::path::Path) -> Result<(), String> {
    match crate::daemon::served::read(socket) {
        Some(served) if served.autostarted => start_daemon(host, Some(&served)),
        Some(served) => Err(format!(
            "no daemon answers; the daemon configured for this socket (data root {}, exec root {}) \
             is not running, and berth does not start another one in its place: start it again \
             as it was started",
            served.data_root.display(),
            served.exec_root.display()
        )),
        None if !nix::unistd::geteuid().is_root() => Err(
            "no daemon answers, and only root can start one: is the daemon running?".to_string(),
        ),
        None => start_daemon(host, None),
    }
}

/// Starts `berth daemon` detached in its own session and waits for its socket; with `served`,
/// on the data root and with the settings it had.
fn start_daemon(host: &str, served: Option<&crate::daemon::served::Served>) -> Result<(), String> {
    let socket = crate::daemon::socket_path(host).map_err(|e| e.to_string())?;
    let exec_root = match served {
        Some(s) => s.exec_root.clone(),
        None => socket
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| "/run/berth".into()),
    };
    if !exec_root.exists() {
        crate::perms::make_dir(&exec_root, 0o711).map_err(|e| e.to_string())?;
    }
    let log_path = exec_root.join("berth-daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["daemon", "--autostarted", "--host", host, "--exec-root"])
        .arg(&exec_root);
    if let Some(served) = served {
        cmd.arg("--data-root").arg(&served.data_root);
        for registry in &served.insecure_registries {
            cmd.arg("--insecure-registry").arg(registry);
        }
        if let Some(max) = served.max_layer_size {
            cmd.arg("--max-layer-size").arg(max.to_string());
        }
        if let Some(seconds) = served.registry_stall_timeout {
            cmd.arg("--registry-stall-timeout").arg(seconds.to_string());
        }
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("starting daemon: {e}"))?;
    match served {
        Some(s) => eprintln!(
            "berth: started daemon (pid {}) on {host} again, on its data root {}",
            child.id(),
            s.data_root.display()
        ),
        None => eprintln!("berth: started daemon (pid {}) on {host}", child.id()),
    }
    for _ in 0..100 {
        if UnixStream::connect(&socket).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "daemon did not come up on {host}; see {}",
        log_path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chunked_bodies() {
        let raw = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
        let mut c = Chunked {
            inner: &raw[..],
            left: 0,
            done: false,
        };
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
    }
}
