//! Container logs in docker's json-file format (`{"log":"…\n","stream":"stdout","time":"…"}`
//! per line), written by a logging binary that the shim runs (`berth log-driver json-file
//! --path FILE`, the process's stdout on fd 3, stderr on fd 4, ready on fd 5): the shim and
//! this writer, not the daemon, hold the container's output, so it keeps flowing while the
//! daemon is down. The writer holds an exclusive `flock` on the log's directory while it runs
//! (the directory, not the file, since rotations replace the file): a reader knows that
//! everything is written once it can take a shared one.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

/// Docker splits lines longer than this into several entries.
const MAX_LINE: usize = 16 * 1024;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The stream byte of docker's 8-byte frame header.
    pub fn code(self) -> u8 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

/// One json-file entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

/// The `binary://` URI the shim gets for a container's stdout and stderr.
pub fn log_uri(berth: &Path, log_path: &Path, rotation: Rotation) -> String {
    let mut uri = format!(
        "binary://{}?log-driver=json-file&--path={}",
        escape(&berth.to_string_lossy()),
        escape(&log_path.to_string_lossy())
    );
    if rotation.max_size > 0 {
        uri.push_str(&format!(
            "&--max-size={}&--max-file={}",
            rotation.max_size, rotation.max_file
        ));
    }
    uri
}

/// json-file's `--log-opt max-size=… max-file=…`: the file is rotated (to `FILE.1`, `FILE.2`,
/// …) once it reached `max_size` bytes, keeping `max_file` files in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// 0: never rotated.
    pub max_size: u64,
    pub max_file: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: 0,
            max_file: 1,
        }
    }
}

/// The options json-file knows (docker's list; only the sizes act here).
const JSON_FILE_OPTS: [&str; 9] = [
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
    "mode",
];

/// The options the local driver knows (`compress` is accepted; files are kept uncompressed).
const LOCAL_OPTS: [&str; 3] = ["max-size", "max-file", "compress"];

/// `--log-driver`: what `logs` can read back and how the file is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// docker's json-file: one file, rotated only when asked to.
    JsonFile,
    /// docker's `local`: rotated by default (20 MB, 5 files). Its entries are written in
    /// json-file's format, not docker's protobuf frames: `logs` reads them the same way.
    Local,
    /// Nothing kept for `logs` (docker refuses to read it); a small file (1 MB, not rotated
    /// beyond itself) still carries the output to `attach`.
    None,
}

impl Driver {
    /// From `HostConfig.LogConfig.Type` (empty is docker's default, json-file).
    pub fn of(host_config: &serde_json::Value) -> Result<Driver, String> {
        match host_config["LogConfig"]["Type"].as_str().unwrap_or("") {
            "" | "json-file" => Ok(Driver::JsonFile),
            "local" => Ok(Driver::Local),
            "none" => Ok(Driver::None),
            other => Err(format!(
                "logger: no log driver named '{other}' is registered"
            )),
        }
    }

    /// Whether `logs` can read what it kept.
    pub fn readable(self) -> bool {
        self != Driver::None
    }
}

/// Docker's text when `logs` meets a driver it cannot read.
pub const NOT_READABLE: &str = "configured logging driver does not support reading";

impl Rotation {
    /// From `HostConfig.LogConfig`, with docker's words for what it refuses.
    pub fn of(host_config: &serde_json::Value) -> Result<Rotation, String> {
        let config = &host_config["LogConfig"];
        let (name, known, mut r): (&str, &[&str], Rotation) = match Driver::of(host_config)? {
            Driver::JsonFile => ("json-file", &JSON_FILE_OPTS, Rotation::default()),
            Driver::Local => (
                "local",
                &LOCAL_OPTS,
                Rotation {
                    max_size: 20 * 1024 * 1024,
                    max_file: 5,
                },
            ),
            // docker checks no options of `none`.
            Driver::None => {
                return Ok(Rotation {
                    max_size: 1024 * 1024,
                    max_file: 1,
                })
            }
        };
        for (key, value) in config["Config"].as_object().into_iter().flatten() {
            if !known.contains(&key.as_str()) {
                return Err(format!("unknown log opt '{key}' for {name} log driver"));
            }
            let value = value.as_str().unwrap_or("");
            match key.as_str() {
                "max-size" => {
                    r.max_size = from_human_size(value)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| "max-size must be a positive number".to_string())?;
                }
                "max-file" => {
                    r.max_file = value
                        .parse::<i64>()
                        .map_err(|_| format!("invalid value for max-file: {value:?}"))?
                        .try_into()
                        .ok()
                        .filter(|n: &u32| *n >= 1)
                        .ok_or_else(|| "max-file cannot be less than 1".to_string())?;
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

/// docker's `units.FromHumanSize`: decimal units, `10m`, `1.5k`, `2GB`, `100`.
fn from_human_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let number: f64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim_start().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let factor = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return None,
    };
    Some((number * factor) as u64)
}

/// Percent-escapes what would end a URI's path or query value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'%' | b'?' | b'&' | b'=' | b'+' | b'#' | b' ' => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

/// Docker's 8-byte frame: stream, three zero bytes, big-endian length, then the payload.
pub fn frame(stream: Stream, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream.code(), 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

// ---- the writer (runs as the logging binary under the shim) ----

/// Splits one stream into entries.
struct LineBuffer {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(data);
        while let Some(end) = self.line_end() {
            let line: Vec<u8> = self.pending.drain(..end).collect();
            encode(self.stream, &line, out);
        }
    }

    fn line_end(&self) -> Option<usize> {
        match self.pending.iter().position(|&b| b == b'\n') {
            Some(i) => Some(i + 1),
            None if self.pending.len() >= MAX_LINE => Some(MAX_LINE),
            None => None,
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            encode(self.stream, &line, out);
        }
    }
}

fn encode(stream: Stream, line: &[u8], out: &mut Vec<u8>) {
    let entry = Entry {
        log: String::from_utf8_lossy(line).into_owned(),
        stream,
        time: super::record::now(),
    };
    if let Ok(json) = serde_json::to_vec(&entry) {
        out.extend_from_slice(&json);
        out.push(b'\n');
    }
}

/// The log file being written.
struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
}

/// The directory of the log at `path`, the thing a writer locks: it stays while the files
/// in it are renamed, removed and made again.
fn log_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Held by the writer of `path` for its whole life (see `writer_done`).
fn hold_writer_lock(path: &Path) -> io::Result<nix::fcntl::Flock<File>> {
    let dir = log_dir(path);
    let file =
        File::open(dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))
}

impl LogFile {
    fn open(path: &Path) -> io::Result<LogFile> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
        })
    }

    /// Writes whole entries, rotating first whenever the file reached the size limit.
    fn write_entries(&mut self, out: &[u8], rotation: Rotation) -> io::Result<()> {
        for entry in out.split_inclusive(|&b| b == b'\n') {
            if rotation.max_size > 0 && self.size >= rotation.max_size {
                self.rotate(rotation.max_file)?;
            }
            self.file.write_all(entry)?;
            self.size += entry.len() as u64;
        }
        Ok(())
    }

    /// `FILE.n-1` → `FILE.n` … `FILE` → `FILE.1` (or away with max-file 1), then a new `FILE`.
    fn rotate(&mut self, max_file: u32) -> io::Result<()> {
        let numbered = |n: u32| rotated(&self.path, n);
        if max_file > 1 {
            for n in (1..max_file - 1).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        *self = LogFile::open(&self.path)?;
        Ok(())
    }
}

/// `FILE.n`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The logging binary's main loop: fds 3 and 4 into `path` until both end.
pub fn run_writer(path: &Path, rotation: Rotation) -> io::Result<()> {
    let _held = hold_writer_lock(path)?;
    let mut file = LogFile::open(path)?;
    // SAFETY: fds 3, 4, 5 are ours by the logging binary protocol; each is taken once.
    let (stdout, stderr, ready) = unsafe {
        (
            OwnedFd::from_raw_fd(3),
            OwnedFd::from_raw_fd(4),
            OwnedFd::from_raw_fd(5),
        )
    };
    drop(ready);
    let mut inputs = vec![
        (
            File::from(stdout),
            LineBuffer {
                stream: Stream::Stdout,
                pending: Vec::new(),
            },
        ),
        (
            File::from(stderr),
            LineBuffer {
                stream: Stream::Stderr,
                pending: Vec::new(),
            },
        ),
    ];
    // Made at the first output: zeroing it would dirty 32 KiB in the logger of every
    // container that prints nothing.
    let mut buf = Vec::new();
    let mut out = Vec::new();
    on_sigterm_drain()?;
    while !inputs.is_empty() {
        if TERMINATED.load(std::sync::atomic::Ordering::SeqCst) {
            return drain(inputs, &mut file, rotation);
        }
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = inputs
                .iter()
                .map(|(f, _)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut ended = Vec::new();
        for (i, (input, lines)) in inputs.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            if buf.is_empty() {
                buf = vec![0u8; 32 * 1024];
            }
            match input.read(&mut buf) {
                Ok(0) | Err(_) => {
                    lines.finish(&mut out);
                    ended.push(i);
                }
                Ok(n) => lines.push(&buf[..n], &mut out),
            }
        }
        for i in ended.into_iter().rev() {
            inputs.remove(i);
        }
        if !out.is_empty() {
            file.write_entries(&out, rotation)?;
            out.clear();
        }
    }
    Ok(())
}

/// Set by SIGTERM: the shim deletes the task and stops its logging binary right after the
/// container's exit, often before everything it wrote has been read from the pipes.
static TERMINATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn terminated(_: libc::c_int) {
    TERMINATED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGTERM interrupts the wait (no SA_RESTART) and asks for a drain instead of death.
fn on_sigterm_drain() -> io::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(terminated),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGTERM, &action) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Writes what the pipes still hold, without waiting for more, then ends.
fn drain(
    inputs: Vec<(File, LineBuffer)>,
    file: &mut LogFile,
    rotation: Rotation,
) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::new();
    for (mut input, mut lines) in inputs {
        let flags = nix::fcntl::fcntl(&input, nix::fcntl::FcntlArg::F_GETFL)?;
        let nonblocking =
            nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&input, nix::fcntl::FcntlArg::F_SETFL(nonblocking))?;
        loop {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => lines.push(&buf[..n], &mut out),
            }
        }
        lines.finish(&mut out);
    }
    file.write_entries(&out, rotation)
}

// ---- the reader (the daemon) ----

/// Whether the writer of `path` has finished (or never ran): its directory is not locked.
pub fn writer_done(path: &Path) -> bool {
    match File::open(log_dir(path)) {
        Err(_) => true,
        // SAFETY: flock on an fd we own; released when the file closes.
        Ok(dir) => unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) == 0 },
    }
}

/// Waits (at most `bound`) until the writer of `path` has finished.
pub fn wait_for_writer(path: &Path, bound: std::time::Duration) {
    let until = std::time::Instant::now() + bound;
    while !writer_done(path) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Reads the log from an offset: complete entries only. Rotations between two reads (one or
/// several) are noticed by the file's inode: the rest of the old file (now `FILE.n`) is read
/// first, then the newer rotated files.
pub struct Reader {
    pub path: PathBuf,
    pub offset: u64,
    partial: Vec<u8>,
    inode: Option<u64>,
    /// Rotated files still to read, oldest first.
    backlog: Vec<PathBuf>,
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

impl Reader {
    pub fn at(path: PathBuf, offset: u64) -> Reader {
        Reader {
            inode: inode(&path),
            path,
            offset,
            partial: Vec::new(),
            backlog: Vec::new(),
        }
    }

    /// A reader of everything kept: the rotated files, oldest first, then the current one.
    pub fn from_start(path: PathBuf) -> Reader {
        let mut backlog: Vec<PathBuf> = (1..)
            .map(|n| rotated(&path, n))
            .take_while(|p| p.exists())
            .collect();
        backlog.reverse();
        let mut r = Reader::at(path, 0);
        r.backlog = backlog;
        r
    }

    /// A reader at the current end of the file.
    pub fn at_end(path: PathBuf) -> Reader {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Reader::at(path, size)
    }

    /// Appends `file` from the offset to its end.
    fn read_file(&mut self, file: &mut File) -> io::Result<()> {
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        Ok(())
    }

    /// Rotated (once or more) since the last read: the rest of the file being read (now
    /// `FILE.n`, if still kept), then the whole of each newer rotated file, `FILE.n-1` down
    /// to `FILE.1`, but not `current` (opened already, read next). Files are opened first
    /// and told apart by inode, so a rotation meanwhile changes nothing.
    fn catch_up(&mut self, current: Option<u64>) -> io::Result<()> {
        let mut kept: Vec<(u64, File)> = Vec::new();
        let mut missing = 0;
        for n in 1.. {
            // A rotation renames FILE.n to FILE.n+1 from the highest down, so while it runs
            // one name is missing, moving down to FILE.1: only two missing in a row end the
            // files (stopping at the first lost every file above it).
            let Ok(file) = File::open(rotated(&self.path, n)) else {
                missing += 1;
                if missing == 2 {
                    break;
                }
                continue;
            };
            missing = 0;
            let ino = {
                use std::os::unix::fs::MetadataExt;
                file.metadata()?.ino()
            };
            // A rotation during this scan shifts the names up: the same file again is skipped.
            if Some(ino) != current && kept.iter().all(|(seen, _)| *seen != ino) {
                kept.push((ino, file));
            }
        }
        // Without the old file among them, all the rotated files are newer than it.
        let newer = match kept.iter().position(|(ino, _)| Some(*ino) == self.inode) {
            Some(i) => {
                let mut old = kept.remove(i).1;
                self.read_file(&mut old)?;
                i
            }
            None => kept.len(),
        };
        for (_, file) in kept[..newer].iter_mut().rev() {
            self.offset = 0;
            self.read_file(file)?;
        }
        self.offset = 0;
        Ok(())
    }

    /// The entries written since the last call.
    pub fn read_new(&mut self) -> io::Result<Vec<Entry>> {
        for old in std::mem::take(&mut self.backlog) {
            self.partial
                .extend_from_slice(&std::fs::read(&old).unwrap_or_default());
        }
        let mut current = match File::open(&self.path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let now = match &current {
            Some(f) => {
                use std::os::unix::fs::MetadataExt;
                Some(f.metadata()?.ino())
            }
            None => None,
        };
        if self.inode.is_some() && now != self.inode {
            self.catch_up(now)?;
        }
        self.inode = now;
        if let Some(file) = &mut current {
            self.read_file(file)?;
        }
        let complete = match self.partial.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => return Ok(Vec::new()),
        };
        let lines: Vec<u8> = self.partial.drain(..complete).collect();
        Ok(lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_newlines_and_at_16k() {
        let mut lines = LineBuffer {
            stream: Stream::Stderr,
            pending: Vec::new(),
        };
        let mut out = Vec::new();
        lines.push(b"one\ntw", &mut out);
        lines.push(b"o\n", &mut out);
        lines.push(&vec![b'x'; MAX_LINE + 3], &mut out);
        lines.finish(&mut out);
        let entries: Vec<Entry> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let logs: Vec<usize> = entries.iter().map(|e| e.log.len()).collect();
        assert_eq!(entries[0].log, "one\n");
        assert_eq!(entries[1].log, "two\n");
        assert_eq!(logs[2..], [MAX_LINE, 3]);
        assert!(entries.iter().all(|e| e.stream == Stream::Stderr));
    }

    #[test]
    fn rotation_options_as_docker_checks_them() {
        let of = |c: serde_json::Value| Rotation::of(&serde_json::json!({ "LogConfig": c }));
        assert_eq!(of(serde_json::json!(null)).unwrap(), Rotation::default());
        assert_eq!(
            of(serde_json::json!({"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}}))
                .unwrap(),
            Rotation { max_size: 10_000, max_file: 3 }
        );
        assert_eq!(from_human_size("1.5m"), Some(1_500_000));
        assert_eq!(from_human_size("2GB"), Some(2_000_000_000));
        assert_eq!(from_human_size("100"), Some(100));
        assert_eq!(from_human_size("ten"), None);
        let err = |c| of(c).unwrap_err();
        assert_eq!(
            err(serde_json::json!({"Config": {"max-sise": "1m"}})),
            "unknown log opt 'max-sise' for json-file log driver"
        );
        assert_eq!(
            err(serde_json::json!({"Config": {"max-file": "0"}})),
            "max-file cannot be less than 1"
        );
        assert_eq!(
            err(serde_json::json!({"Config": {"max-size": "0"}})),
            "max-size must be a positive number"
        );
        assert_eq!(
            of(serde_json::json!({"Type": "local"})).unwrap(),
            Rotation {
                max_size: 20 * 1024 * 1024,
                max_file: 5
            }
        );
        assert_eq!(
            of(serde_json::json!({"Type": "local", "Config": {"max-file": "2", "compress": "false"}}))
                .unwrap(),
            Rotation { max_size: 20 * 1024 * 1024, max_file: 2 }
        );
        assert_eq!(
            err(serde_json::json!({"Type": "local", "Config": {"tag": "x"}})),
            "unknown log opt 'tag' for local log driver"
        );
        assert_eq!(
            of(serde_json::json!({"Type": "none", "Config": {"anything": "x"}})).unwrap(),
            Rotation {
                max_size: 1024 * 1024,
                max_file: 1
            }
        );
        assert_eq!(
            err(serde_json::json!({"Type": "syslog"})),
            "logger: no log driver named 'syslog' is registered"
        );
    }

    #[test]
    fn rotated_files_are_read_oldest_first_and_a_follower_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rotation = Rotation {
            max_size: 100,
            max_file: 3,
        };
        let mut file = LogFile::open(&path).unwrap();
        let mut follower = Reader::at(path.clone(), 0);
        let mut followed = Vec::new();
        for i in 0..20 {
            let mut out = Vec::new();
            encode(Stream::Stdout, format!("line {i}\n").as_bytes(), &mut out);
            file.write_entries(&out, rotation).unwrap();
            // The reader follows one rotation between two reads (the rest of `FILE.1`).
            followed.extend(follower.read_new().unwrap());
        }
        followed.extend(follower.read_new().unwrap());
        let logs = |v: &[Entry]| v.iter().map(|e| e.log.clone()).collect::<Vec<_>>();
        let all: Vec<String> = (0..20).map(|i| format!("line {i}\n")).collect();
        assert_eq!(logs(&followed), all, "the follower saw every line once");
        assert!(rotated(&path, 2).exists());
        assert!(
            !rotated(&path, 3).exists(),
            "max-file 3: the file and two rotated"
        );
        for n in [1, 2] {
            let size = std::fs::metadata(rotated(&path, n)).unwrap().len();
            assert!((100..200).contains(&size), "{n}: {size}");
        }
        let kept = logs(&Reader::from_start(path.clone()).read_new().unwrap());
        assert_eq!(
            kept[..],
            all[all.len() - kept.len()..],
            "the newest lines, in order"
        );
        assert!(kept.len() < all.len());
    }

    #[test]
    fn a_writer_is_not_done_in_the_middle_of_its_rotations() {
        for max_file in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c-json.log");
            assert!(writer_done(&path), "no writer yet");
            let held = hold_writer_lock(&path).unwrap();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let writer = {
                let (path, stop) = (path.clone(), stop.clone());
                std::thread::spawn(move || {
                    let rotation = Rotation {
                        max_size: 1,
                        max_file,
                    };
                    let mut file = LogFile::open(&path).unwrap();
                    let mut rotations = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        file.write_entries(b"{}\n", rotation).unwrap();
                        rotations += 1;
                    }
                    rotations
                })
            };
            let seen_done = (0..20_000).filter(|_| writer_done(&path)).count();
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let rotations = writer.join().unwrap();
            assert!(
                rotations > 100,
                "max-file {max_file}: {rotations} rotations"
            );
            assert_eq!(seen_done, 0, "max-file {max_file}: done while writing");
            drop(held);
            assert!(writer_done(&path), "max-file {max_file}: done once let go");
        }
    }

    #[test]
    fn a_follower_reading_in_the_middle_of_a_rotation_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let line = |i: usize| {
            let mut out = Vec::new();
            encode(Stream::Stdout, format!("line {i}\n").as_bytes(), &mut out);
            out
        };
        std::fs::write(&path, line(0)).unwrap();
        let mut follower = Reader::at(path.clone(), 0);
        assert_eq!(follower.read_new().unwrap().len(), 1);
        // More lines, then a rotation caught half-way: FILE.1 was renamed to FILE.2 and
        // FILE is not yet FILE.1 — the old file is at FILE.2, behind a missing FILE.1.
        let mut rest = line(1);
        rest.extend(line(2));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&rest)
            .unwrap();
        std::fs::rename(&path, rotated(&path, 2)).unwrap();
        std::fs::write(&path, line(3)).unwrap();
        let logs: Vec<String> = follower
            .read_new()
            .unwrap()
            .iter()
            .map(|e| e.log.clone())
            .collect();
        assert_eq!(logs, ["line 1\n", "line 2\n", "line 3\n"]);
    }

    #[test]
    fn a_follower_catches_up_across_several_rotations_between_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rotation = Rotation {
            max_size: 100,
            max_file: 5,
        };
        let mut file = LogFile::open(&path).unwrap();
        let mut follower = Reader::at(path.clone(), 0);
        let mut followed = Vec::new();
        let mut written = 0;
        for _ in 0..4 {
            // Enough between two reads for two to three rotations.
            for _ in 0..8 {
                let mut out = Vec::new();
                encode(
                    Stream::Stdout,
                    format!("line {written}\n").as_bytes(),
                    &mut out,
                );
                file.write_entries(&out, rotation).unwrap();
                written += 1;
            }
            followed.extend(follower.read_new().unwrap());
        }
        assert!(
            rotated(&path, 4).exists(),
            "rotated more than once per read"
        );
        let logs: Vec<String> = followed.iter().map(|e| e.log.clone()).collect();
        let all: Vec<String> = (0..written).map(|i| format!("line {i}\n")).collect();
        assert_eq!(logs, all, "the follower saw every line once, in order");
    }

    #[test]
    fn frames_carry_stream_and_length() {
        assert_eq!(
            frame(Stream::Stderr, b"hi"),
            [2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']
        );
    }

    #[test]
    fn uri_escapes_query_characters() {
        let uri = log_uri(
            Path::new("/usr/bin/berth"),
            Path::new("/var/lib/a b&c/x.log"),
            Rotation::default(),
        );
        assert_eq!(
            uri,
            "binary:///usr/bin/berth?log-driver=json-file&--path=/var/lib/a%20b%26c/x.log"
        );
        let rotated = log_uri(
            Path::new("/b"),
            Path::new("/x.log"),
            Rotation {
                max_size: 1000,
                max_file: 2,
            },
        );
        assert_eq!(
            rotated,
            "binary:///b?log-driver=json-file&--path=/x.log&--max-size=1000&--max-file=2"
        );
    }
}
