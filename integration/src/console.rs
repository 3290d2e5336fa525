//! A `--console-socket` receiver: a unix socket listener that takes the pty master fd the
//! runtime sends with SCM_RIGHTS and reads everything the container writes to its terminal.
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A listening console socket in its own temp dir.
pub struct ConsoleSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    reader: JoinHandle<io::Result<String>>,
}

impl ConsoleSocket {
    /// Listen; the first connection's fd is read until the pty closes (EIO) or EOF.
    pub fn listen() -> io::Result<ConsoleSocket> {
        let dir = tempfile::Builder::new().prefix("berth-console").tempdir()?;
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path)?;
        let reader = std::thread::spawn(move || {
            let (stream, _) = listener.accept()?;
            let master = receive_fd(&stream)?;
            read_until_hangup(master)
        });
        Ok(ConsoleSocket {
            _dir: dir,
            path,
            reader,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// Everything read from the pty master (blocks until the container's terminal closes).
    pub fn output(self) -> io::Result<String> {
        self.reader
            .join()
            .map_err(|_| io::Error::other("console reader panicked"))?
    }
}

/// Receive one fd sent with SCM_RIGHTS on `stream`.
pub fn receive_fd(stream: &UnixStream) -> io::Result<File> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: zeroed msghdr is a valid empty header; fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR/CMSG_DATA stay inside `control`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other(
                "console socket: no SCM_RIGHTS fd received",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
        Ok(File::from_raw_fd(fd))
    }
}

/// Read a pty master until the slave side is closed by everyone (EIO) or EOF.
fn read_until_hangup(mut master: File) -> io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
