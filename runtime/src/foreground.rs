//! `run` and `exec` in the foreground: wait for the process, reap every child, forward
//! signals, and — when the runtime made the terminal itself — relay it to our stdio.
use crate::{Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Signals passed on to the process instead of ending the runtime.
const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

/// Block the forwarded signals (and SIGCHLD) before the process exists, so none is lost.
pub fn block_signals() -> Result<SigSet> {
    let mut set = SigSet::empty();
    FORWARDED.iter().for_each(|s| set.add(*s));
    set.thread_block()
        .map_err(|e| Error::sys("sigprocmask", "block", e))?;
    Ok(set)
}

/// A console socket pair for `run`/`exec` with a terminal and no `--console-socket`: the
/// container end goes to the init, ours receives the pty master.
pub fn console_pair() -> Result<(UnixStream, OwnedFd)> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| Error::io("socketpair", "console", e))?;
    Ok((ours, theirs.into()))
}

/// Receive the pty master sent over the console socket.
pub fn receive_master(sock: &UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("receive pty master", "console socket", e))?;
    for c in msg
        .cmsgs()
        .map_err(|e| Error::sys("receive pty master", "console socket", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Other(
        "console socket: no pty master received".into(),
    ))
}

/// Puts our terminal in raw mode while relaying, and back when dropped.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

fn copy_window_size(to: BorrowedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// Wait for `pid` to exit; returns its exit code (128 + signal when killed), as runc does.
pub fn wait(pid: i32, set: &SigSet, pty: Option<OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::sys("signalfd", "run", e))?;
    let _raw = pty.as_ref().map(|_| RawMode::enter());
    if let Some(p) = &pty {
        copy_window_size(p.as_fd());
    }
    let mut pty = pty;
    let mut stdin_open = pty.is_some();
    loop {
        if let Some(code) = reap(pid) {
            if let Some(p) = &pty {
                drain(p);
            }
            return Ok(code);
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(p) = &pty {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll", "run", e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGWINCH) => {
                        if let Some(p) = &pty {
                            copy_window_size(p.as_fd())
                        }
                    }
                    Ok(sig) => {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
                    }
                    Err(_) => {}
                }
            }
        }
        if ready.get(1) == Some(&true) && pty.as_ref().is_some_and(|p| !relay(p.as_fd(), 1)) {
            pty = None;
        }
        if ready.get(2) == Some(&true) {
            if let Some(p) = &pty {
                stdin_open = relay(stdin.as_fd(), p.as_raw_fd());
            }
        }
    }
}

/// Collect exited children; the exit code of `pid` if it is among them.
fn reap(pid: i32) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Copy what is readable on `from` to `to`; false on EOF or error.
fn relay(from: BorrowedFd, to: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => write_all(to, &buf[..n]),
    }
}

fn write_all(fd: RawFd, mut data: &[u8]) -> bool {
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Output still buffered in the pty after the process exited.
fn drain(pty: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        pty,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while relay(pty.as_fd(), 1) {}
}
