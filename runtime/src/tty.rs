//! Terminals: a pty made inside the container, its master sent over `--console-socket`.
use crate::{Error, Result};
use nix::fcntl::OFlag;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Connect to the console socket (in the runtime's namespaces, before the container exists).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::io("connect console socket", path, e))
}

/// Make a pty from the container's /dev/ptmx, send its master over `socket`, and make the
/// slave the calling process's controlling terminal and stdio, owned by `uid` (the process's
/// user, so that it can reopen its terminal; the group stays what devpts gave).
pub fn setup(socket: &OwnedFd, size: Option<(u16, u16)>, uid: u32) -> Result<()> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", "/dev/ptmx", e))?;
    let m = master.as_raw_fd();
    if unsafe { libc::grantpt(m) } != 0 || unsafe { libc::unlockpt(m) } != 0 {
        return Err(Error::sys(
            "unlockpt",
            "/dev/ptmx",
            nix::errno::Errno::last(),
        ));
    }
    let mut name = [0 as libc::c_char; 128];
    if unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) } != 0 {
        return Err(Error::sys(
            "ptsname",
            "/dev/ptmx",
            nix::errno::Errno::last(),
        ));
    }
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open", &name, e))?;
    give_to(&slave, uid, &name)?;
    if let Some((height, width)) = size {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let fds = [m];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::sys("send pty master over", "console socket", e))?;
    drop(master);
    nix::unistd::setsid().map_err(|e| Error::sys("setsid", "init", e))?;
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::sys(
            "ioctl TIOCSCTTY",
            &name,
            nix::errno::Errno::last(),
        ));
    }
    for fd in 0..3 {
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(Error::sys("dup2", &name, nix::errno::Errno::last()));
        }
    }
    Ok(())
}

/// fchown the pty slave to `uid` unless it has it already.
fn give_to(slave: &OwnedFd, uid: u32, name: &str) -> Result<()> {
    let st = nix::sys::stat::fstat(slave).map_err(|e| Error::sys("fstat", name, e))?;
    if st.st_uid == uid {
        return Ok(());
    }
    nix::unistd::fchown(slave, Some(uid.into()), None).map_err(|e| Error::sys("fchown", name, e))
}
