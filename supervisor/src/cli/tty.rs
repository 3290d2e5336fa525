//! The local terminal for `-it`: raw mode while attached, and the window size sent to the
//! daemon at start and on every SIGWINCH.
use std::os::fd::AsFd;

use nix::sys::termios::{self, SetArg, Termios};

use super::client::Client;

/// Raw mode on stdin until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> anyhow::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The terminal's size (columns, rows), if stdout is one.
fn size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Sends the size to `path` (`…/resize`) now and on each window change.
pub fn follow_size(client: Client, path: String) {
    let send = move |client: &Client| {
        if let Some((w, h)) = size() {
            let _ = client.post(&format!("{path}?h={h}&w={w}"));
        }
    };
    send(&client);
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGWINCH);
    // Blocked here so that the waiting thread receives it.
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        while set.wait().is_ok() {
            send(&client);
        }
    });
}
