//! The shim is a child subreaper: it reaps every child (runtime invocations, container
//! processes re-parented to it, their orphans) in one thread, and hands each exit status to
//! whoever waits for that pid. Nothing else in the shim calls `waitpid`, so statuses never race.
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Exits of pids nobody claimed yet, kept so a container process that exits before its pid
/// file is read is not lost. Bounded: orphans of the container are never claimed.
const UNCLAIMED_MAX: usize = 1024;

#[derive(Default)]
struct Table {
    /// Runtime invocations spawned through [`spawn`], waiting for their status.
    commands: HashMap<i32, Sender<i32>>,
    /// Container processes (init and execs) whose exits go to the exit channel.
    watched: HashSet<i32>,
    unclaimed: VecDeque<(i32, i32)>,
}

struct Reaper {
    table: Mutex<Table>,
    exits: Mutex<Sender<(i32, i32)>>,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

fn reaper() -> &'static Reaper {
    REAPER.get().expect("reaper::init not called")
}

/// Becomes a subreaper, blocks SIGCHLD in the calling (main) thread so every later thread
/// inherits the mask, and starts the reaping thread. Container exits arrive on the returned
/// channel as `(pid, exit status)` where a signal death is `128 + signal`.
pub fn init() -> io::Result<Receiver<(i32, i32)>> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(io::Error::from)?;
    let (tx, rx) = channel();
    let _ = REAPER.set(Reaper {
        table: Mutex::new(Table::default()),
        exits: Mutex::new(tx),
    });
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let _ = mask.wait();
            reap_all();
        })?;
    Ok(rx)
}

fn reap_all() {
    loop {
        let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        dispatch(pid, code);
    }
}

fn dispatch(pid: i32, code: i32) {
    let r = reaper();
    let mut table = r.table.lock().unwrap();
    if let Some(tx) = table.commands.remove(&pid) {
        let _ = tx.send(code);
    } else if table.watched.remove(&pid) {
        let _ = r.exits.lock().unwrap().send((pid, code));
    } else {
        if table.unclaimed.len() >= UNCLAIMED_MAX {
            table.unclaimed.pop_front();
        }
        table.unclaimed.push_back((pid, code));
    }
}

/// Spawns `cmd`; its exit status arrives on the returned receiver (never use `Child::wait`).
pub fn spawn(cmd: &mut Command) -> io::Result<(Child, Receiver<i32>)> {
    let mut table = reaper().table.lock().unwrap();
    let child = cmd.spawn()?;
    let (tx, rx) = channel();
    table.commands.insert(child.id() as i32, tx);
    Ok((child, rx))
}

/// Routes the exit of container process `pid` to the exit channel, at once if it already
/// exited before being watched.
pub fn watch(pid: i32) {
    let r = reaper();
    let mut table = r.table.lock().unwrap();
    if let Some(i) = table.unclaimed.iter().position(|(p, _)| *p == pid) {
        if let Some(exit) = table.unclaimed.remove(i) {
            let _ = r.exits.lock().unwrap().send(exit);
        }
        return;
    }
    table.watched.insert(pid);
}
