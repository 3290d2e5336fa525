//! The channel between `create` and the container's init: a SOCK_SEQPACKET socketpair,
//! one message per packet, file descriptors passed with SCM_RIGHTS.
use crate::{Error, Result};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What the two sides tell each other, in the order they say it.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → init: id maps written, cgroup joined; go on.
    Proceed,
    /// init → parent: namespaces and mounts ready; run prestart and createRuntime hooks.
    RunCreateHooks,
    /// init → parent: here is the seccomp notify listener (fd attached).
    SeccompListener,
    /// init → parent: open the bind mount sources for me (a user namespace cannot reach
    /// what only host root can); answered by `MountSource`s, then `Proceed`.
    MountSources,
    /// parent → init: the source of `mounts[i]` (fd attached, opened in the init's mounts).
    MountSource(usize),
    /// init → parent: waiting for `start` on the exec fifo.
    Ready,
    /// init → parent: setup failed.
    Failed(String),
    /// exec's first child → parent: the pid (in the caller's namespace) of the process it
    /// forked into the container's pid namespace.
    Child(i32),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Proceed => b"P".to_vec(),
            Msg::RunCreateHooks => b"H".to_vec(),
            Msg::SeccompListener => b"S".to_vec(),
            Msg::MountSources => b"M".to_vec(),
            Msg::MountSource(i) => format!("m{i}").into_bytes(),
            Msg::Ready => b"R".to_vec(),
            Msg::Failed(e) => [b"F", e.as_bytes()].concat(),
            Msg::Child(pid) => format!("C{pid}").into_bytes(),
        }
    }

    fn decode(buf: &[u8]) -> Result<Self> {
        match buf.split_first() {
            Some((b'P', _)) => Ok(Msg::Proceed),
            Some((b'H', _)) => Ok(Msg::RunCreateHooks),
            Some((b'S', _)) => Ok(Msg::SeccompListener),
            Some((b'R', _)) => Ok(Msg::Ready),
            Some((b'M', _)) => Ok(Msg::MountSources),
            Some((b'm', i)) => std::str::from_utf8(i)
                .ok()
                .and_then(|i| i.parse().ok())
                .map(Msg::MountSource)
                .ok_or_else(|| Error::Other("sync: bad mount index".into())),
            Some((b'F', e)) => Ok(Msg::Failed(String::from_utf8_lossy(e).into_owned())),
            Some((b'C', pid)) => std::str::from_utf8(pid)
                .ok()
                .and_then(|p| p.parse().ok())
                .map(Msg::Child)
                .ok_or_else(|| Error::Other("sync: bad child pid".into())),
            None => Err(Error::InitExited),
            Some(_) => Err(Error::Other("sync: unexpected message".into())),
        }
    }
}

pub struct Channel(OwnedFd);

/// A connected pair: (parent end, init end). Both are close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair", "sync", e))?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> Result<()> {
        let data = msg.encode();
        let iov = [IoSlice::new(&data)];
        let fds;
        let cmsgs: Vec<ControlMessage> = match fd {
            Some(fd) => {
                fds = [fd];
                vec![ControlMessage::ScmRights(&fds)]
            }
            None => Vec::new(),
        };
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| Error::sys("sync send", format!("{msg:?}"), e))?;
        Ok(())
    }

    pub fn recv(&self) -> Result<Msg> {
        self.recv_with_fd().map(|(m, _)| m)
    }

    pub fn recv_with_fd(&self) -> Result<(Msg, Option<OwnedFd>)> {
        let mut buf = vec![0u8; 4096];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let fd = r.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                            _ => None,
                        })
                    });
                    break (r.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("sync receive", "init", e)),
            }
        };
        let fd = fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
        Ok((Msg::decode(&buf[..len])?, fd))
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
