//! A process's stdio. Without a terminal the fifos containerd created are handed to the
//! runtime directly (no copying, nothing to truncate at exit); the shim keeps a reader on each
//! output fifo (so a client that goes away never causes SIGPIPE) and a writer on the stdin fifo
//! until CloseIO. With a terminal the runtime sends the pty master over a console socket and
//! two small threads copy between it and the fifos.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::logger::{self, Logger, LoggerError};
use crate::runtime::ProcessIo;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Logger(#[from] LoggerError),
}

const COPY_STACK: usize = 32 * 1024;
const COPY_BUF: usize = 8 * 1024;

/// The stdio paths of a Create or Exec request.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What the shim holds for a process's stdio while it lives.
#[derive(Default)]
pub struct Io {
    /// Writer into the process's stdin (pipe or pty master), shared with the stdin copy
    /// thread; CloseIO drops it so the process reads EOF.
    stdin_writer: Option<Arc<Mutex<Option<File>>>>,
    /// An `O_PATH` handle on the stdin fifo, to wake the copy thread if the client never
    /// opened it (also after the client removed the fifo).
    stdin_fifo: Option<OwnedFd>,
    /// Readers on the output fifos.
    _out_keepalive: Vec<File>,
    /// Writers on the output fifos, held until the process exited: a client whose reader opens
    /// late still sees every byte and then EOF.
    out_writers: Vec<File>,
    /// The pty master (terminal only), for ResizePty.
    pub console: Option<File>,
    /// Signals when the pty output copy finished (terminal only).
    output_done: Option<Receiver<()>>,
    /// The console socket, kept until the master arrives.
    console_socket: Option<ConsoleSocket>,
    /// The logging binary of a `binary://` stdout, while the process may write.
    logger: Option<Logger>,
    /// Where a terminal's output is copied to, until the pty master arrives.
    tty_out: Option<File>,
}

/// Whose stdio it is, for logging binaries.
pub struct Owner<'a> {
    pub container_id: &'a str,
    pub namespace: &'a str,
}

impl Io {
    /// Opens the request's stdio and returns the fds to give the runtime.
    pub fn open(paths: &StdioPaths, owner: &Owner) -> Result<(Io, ProcessIo), StdioError> {
        let mut io = Io::default();
        let stdin = if paths.stdin.is_empty() || paths.terminal {
            Stdio::null()
        } else {
            let (read, write) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
            io.stdin_writer = Some(spawn_stdin_copy(&paths.stdin, File::from(write))?);
            io.stdin_fifo = Some(fifo_handle(&paths.stdin)?);
            Stdio::from(read)
        };
        let (stdout, stderr) = if paths.terminal {
            // The runtime gives the process the pty; the shim copies it to the stdout target.
            io.tty_out = io.terminal_output(&paths.stdout, owner)?;
            io.console_socket = Some(ConsoleSocket::new()?);
            (Stdio::null(), Stdio::null())
        } else if paths.stdout.starts_with(logger::SCHEME) {
            io.binary_log(&paths.stdout, owner)?
        } else {
            (io.output(&paths.stdout)?, io.output(&paths.stderr)?)
        };
        Ok((
            io,
            ProcessIo {
                stdin,
                stdout,
                stderr,
            },
        ))
    }

    /// stdout and stderr into a logging binary, which starts now.
    fn binary_log(&mut self, uri: &str, owner: &Owner) -> Result<(Stdio, Stdio), StdioError> {
        let (logger, inputs) = Logger::start(uri, owner.container_id, owner.namespace)?;
        self.logger = Some(logger);
        let stdout = inputs.stdout.try_clone()?;
        let stderr = inputs.stderr.try_clone()?;
        // Held until the process exited, like the fifo writers: then the binary reads EOF.
        self.out_writers.extend([inputs.stdout, inputs.stderr]);
        Ok((Stdio::from(stdout), Stdio::from(stderr)))
    }

    /// Where a terminal's output goes: a fifo, a `file://`, or a logging binary's stdout.
    fn terminal_output(&mut self, path: &str, owner: &Owner) -> Result<Option<File>, StdioError> {
        if path.is_empty() {
            return Ok(None);
        }
        if path.starts_with(logger::SCHEME) {
            // A terminal has one stream: the binary's stderr pipe closes at once.
            let (logger, inputs) = Logger::start(path, owner.container_id, owner.namespace)?;
            self.logger = Some(logger);
            return Ok(Some(inputs.stdout));
        }
        if let Some(file) = path.strip_prefix("file://") {
            return Ok(Some(
                OpenOptions::new().create(true).append(true).open(file)?,
            ));
        }
        // The shim's own reader first: a writer cannot open a fifo that has no reader yet
        // (ENXIO), and the client may open its end later.
        self._out_keepalive.push(open_fifo(path, false)?);
        Ok(Some(open_fifo(path, true)?))
    }

    fn output(&mut self, path: &str) -> io::Result<Stdio> {
        if path.is_empty() {
            return Ok(Stdio::null());
        }
        if let Some(file) = path.strip_prefix("file://") {
            let f = OpenOptions::new().create(true).append(true).open(file)?;
            return Ok(Stdio::from(f));
        }
        self._out_keepalive.push(open_fifo(path, false)?);
        let writer = open_fifo(path, true)?;
        self.out_writers.push(writer.try_clone()?);
        Ok(Stdio::from(writer))
    }

    /// The `--console-socket` to pass to the runtime, if this process has a terminal.
    pub fn console_socket_path(&self) -> Option<&Path> {
        self.console_socket.as_ref().map(|s| s.path.as_path())
    }

    /// After the runtime's create/exec returned: receives the pty master and starts copying.
    pub fn connect_console(&mut self, paths: &StdioPaths) -> io::Result<()> {
        let Some(socket) = self.console_socket.take() else {
            return Ok(());
        };
        let master = socket.receive()?;
        let (done_tx, done_rx) = channel();
        let out = self.tty_out.take();
        let reader = master.try_clone()?;
        spawn_copy("pty-out", reader, out, Some(done_tx))?;
        if !paths.stdin.is_empty() {
            self.stdin_writer = Some(spawn_stdin_copy(&paths.stdin, master.try_clone()?)?);
            self.stdin_fifo = Some(fifo_handle(&paths.stdin)?);
        }
        self.console = Some(master);
        self.output_done = Some(done_rx);
        Ok(())
    }

    /// CloseIO: the process reads EOF once the client closed its end too.
    pub fn close_stdin(&mut self) {
        if let Some(w) = self.stdin_writer.take() {
            w.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        // A copy thread still blocked opening the fifo wakes on a writer and then reads EOF.
        if let Some(fifo) = self.stdin_fifo.take() {
            let _ = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(format!("/proc/self/fd/{}", fifo.as_raw_fd()));
        }
    }

    /// At exit: what signals that all terminal output reached the fifo (to wait on, bounded,
    /// without holding the shim's state).
    pub fn take_output_done(&mut self) -> Option<Receiver<()>> {
        self.output_done.take()
    }

    /// At exit, after the drain: lets the client's readers (or the logging binary) see EOF.
    pub fn close_output(&mut self) {
        self.out_writers.clear();
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        self.close_stdin();
    }
}

/// Copies the stdin fifo into `to` from a thread: the fifo is opened blocking there, so the
/// process never reads a premature EOF before the client opened its end. Ends at the client's
/// EOF or when CloseIO drops the writer.
fn spawn_stdin_copy(fifo: &str, to: File) -> io::Result<Arc<Mutex<Option<File>>>> {
    let writer = Arc::new(Mutex::new(Some(to)));
    let shared = writer.clone();
    let fifo = fifo.to_owned();
    thread::Builder::new()
        .name("stdin".into())
        .stack_size(COPY_STACK)
        .spawn(move || {
            let Ok(mut from) = File::open(&fifo) else {
                return;
            };
            let mut buf = vec![0u8; COPY_BUF];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
                let written = guard.as_mut().map(|w| w.write_all(&buf[..n]).is_ok());
                if written != Some(true) {
                    break;
                }
            }
            shared.lock().unwrap_or_else(|e| e.into_inner()).take();
        })?;
    Ok(writer)
}

/// Copies `from` to `to` (or discards) until EOF/EIO, then signals `done`.
fn spawn_copy(
    name: &str,
    mut from: File,
    mut to: Option<File>,
    done: Option<std::sync::mpsc::Sender<()>>,
) -> io::Result<()> {
    thread::Builder::new()
        .name(name.into())
        .stack_size(COPY_STACK)
        .spawn(move || {
            let mut buf = vec![0u8; COPY_BUF];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if let Some(w) = to.as_mut() {
                    if w.write_all(&buf[..n]).is_err() {
                        to = None;
                    }
                }
            }
            drop(to);
            if let Some(done) = done {
                let _ = done.send(());
            }
        })?;
    Ok(())
}

/// A handle that reaches the fifo's inode even after its path is gone (reopened through
/// `/proc/self/fd`); it neither reads nor writes, so it counts as no end of the fifo.
fn fifo_handle(path: &str) -> io::Result<OwnedFd> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| io::Error::new(e.kind(), format!("open fifo {path}: {e}")))
}

/// Opens a fifo without blocking: a reader always succeeds, a writer needs a reader (which the
/// shim itself holds by then, or the client does).
fn open_fifo(path: &str, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open fifo {path}: {e}")))
        .and_then(|f| {
            if write {
                clear_nonblock(&f)?;
            }
            Ok(f)
        })
}

fn clear_nonblock(f: &File) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A listening unix socket the runtime connects to and sends the pty master over.
struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new() -> io::Result<ConsoleSocket> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("berth-shim-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket { path, listener })
    }

    /// Takes the master from the runtime's (already queued) connection.
    fn receive(self) -> io::Result<File> {
        self.listener.set_nonblocking(true)?;
        let (stream, _) = self.listener.accept().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "console socket {}: runtime sent no pty: {e}",
                    self.path.display()
                ),
            )
        })?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        receive_fd(stream.as_raw_fd())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn receive_fd(sock: i32) -> io::Result<File> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "console socket: message carried no fd",
    ))
}

/// Sets the pty window size.
pub fn resize(console: &File, width: u32, height: u32) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer.
    if unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
