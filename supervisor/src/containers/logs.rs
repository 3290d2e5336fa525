//! Container logs in docker's json-file format (`{"log":"…\n","stream":"stdout","time":"…"}`
//! per line), written by a logging binary that the shim runs (`berth log-driver json-file
//! --path FILE`, the process's stdout on fd 3, stderr on fd 4, ready on fd 5): the shim and
//! this writer, not the daemon, hold the container's output, so it keeps flowing while the
//! daemon is down. The writer holds an exclusive `flock` on the file while it runs: a reader
//! knows that everything is written once it can take a shared one.
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
pub fn log_uri(berth: &Path, log_path: &Path) -> String {
    format!(
        "binary://{}?log-driver=json-file&--path={}",
        escape(&berth.to_string_lossy()),
        escape(&log_path.to_string_lossy())
    )
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

/// The logging binary's main loop: fds 3 and 4 into `path` until both end.
pub fn run_writer(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    nix::fcntl::Flock::lock(file.try_clone()?, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))
        .map(std::mem::forget)?;
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
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::new();
    while !inputs.is_empty() {
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
            file.write_all(&out)?;
            out.clear();
        }
    }
    Ok(())
}

// ---- the reader (the daemon) ----

/// Whether the writer of `path` has finished (or never ran).
pub fn writer_done(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return true;
    };
    // SAFETY: flock on an fd we own; released when the file closes.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) == 0 }
}

/// Reads the log from an offset: complete entries only.
pub struct Reader {
    pub path: PathBuf,
    pub offset: u64,
    partial: Vec<u8>,
}

impl Reader {
    pub fn at(path: PathBuf, offset: u64) -> Reader {
        Reader {
            path,
            offset,
            partial: Vec::new(),
        }
    }

    /// A reader at the current end of the file.
    pub fn at_end(path: PathBuf) -> Reader {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Reader::at(path, size)
    }

    /// The entries written since the last call.
    pub fn read_new(&mut self) -> io::Result<Vec<Entry>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
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
        );
        assert_eq!(
            uri,
            "binary:///usr/bin/berth?log-driver=json-file&--path=/var/lib/a%20b%26c/x.log"
        );
    }
}
