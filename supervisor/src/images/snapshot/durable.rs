//! Lazy durability of unpacked layers. Flushing every layer to disk before recording it made a
//! pull also wait for every other process's dirty pages (syncfs is per filesystem). Instead a
//! layer is recorded with the boot it was written in (`unsynced_boot`), and a background
//! thread flushes the filesystem after each pull and clears the mark. Page-cache contents
//! survive anything but a kernel crash or power loss, both of which change the boot ID: at
//! open, layers still marked from an earlier boot (and snapshots on top of them) are
//! forgotten, so they are unpacked again from their verified blobs instead of being trusted.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use super::{io_at, Error};
use crate::images::metadata::{Metadata, SnapshotKind};

/// This boot's ID (empty if the kernel does not tell, so nothing is ever trusted across
/// boots by mistake: an empty mark never equals a real boot ID).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Flushes the filesystem of `root`, then clears the mark of every snapshot recorded before
/// the flush. Returns how many were marked.
pub fn flush(root: &Path, metadata: &Metadata) -> Result<usize, Error> {
    let keys: Vec<(String, u64)> = metadata
        .snapshots()?
        .into_iter()
        .filter(|s| s.unsynced_boot.is_some())
        .map(|s| (s.key, s.id))
        .collect();
    if keys.is_empty() {
        return Ok(0);
    }
    let dir = std::fs::File::open(root).map_err(io_at(root))?;
    nix::unistd::syncfs(&dir).map_err(|e| io_at(root)(e.into()))?;
    metadata.mark_synced(&keys)?;
    Ok(keys.len())
}

/// Removes the records of layers whose files were not flushed before a crash of the machine,
/// and of every layer above them. Their directories then have no record and are removed with
/// the other leftovers. A layer under a container's writable snapshot is kept (with a
/// warning): the container's own files are never thrown away.
pub fn forget_unflushed(metadata: &Metadata) -> Result<Vec<String>, Error> {
    let boot = boot_id();
    let records = metadata.snapshots()?;
    let parent_of = |key: &str| {
        records
            .iter()
            .find(|s| s.key == key)
            .and_then(|s| s.parent.clone())
    };
    let mut under_containers = HashSet::new();
    for active in records.iter().filter(|s| s.kind == SnapshotKind::Active) {
        let mut next = active.parent.clone();
        while let Some(key) = next {
            next = parent_of(&key);
            under_containers.insert(key);
        }
    }
    let mut lost: Vec<String> = records
        .iter()
        .filter(|s| {
            s.unsynced_boot
                .as_deref()
                .is_some_and(|b| b != boot || b.is_empty())
        })
        .map(|s| s.key.clone())
        .collect();
    let mut i = 0;
    while i < lost.len() {
        let parent = lost[i].clone();
        for child in records
            .iter()
            .filter(|s| s.parent.as_deref() == Some(parent.as_str()))
        {
            if !lost.contains(&child.key) {
                lost.push(child.key.clone());
            }
        }
        i += 1;
    }
    let (kept, lost): (Vec<String>, Vec<String>) = lost.into_iter().partition(|key| {
        under_containers.contains(key)
            || records
                .iter()
                .any(|s| s.key == *key && s.kind == SnapshotKind::Active)
    });
    for key in &kept {
        tracing::warn!(%key, "snapshot possibly incomplete after a machine crash, kept: a container uses it");
    }
    for key in &lost {
        tracing::warn!(%key, "layer written before a machine crash and never flushed: forgotten");
        metadata.remove_snapshot(key)?;
    }
    Ok(lost)
}

/// A background thread that runs [`flush`] when asked; requests made while it flushes are
/// coalesced into one more flush. Dropping the `Flusher` ends the thread and waits for it, so
/// the metadata it holds is released.
#[derive(Debug)]
pub struct Flusher {
    requests: Mutex<Option<Sender<()>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    pub fn start(root: PathBuf, metadata: Arc<Metadata>) -> Self {
        let (requests, pending) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("snapshot-flush".into())
            .spawn(move || {
                while pending.recv().is_ok() {
                    while pending.try_recv().is_ok() {}
                    match flush(&root, &metadata) {
                        Ok(n) => tracing::debug!(snapshots = n, "snapshots flushed"),
                        Err(e) => tracing::warn!(error = %e, "flushing snapshots failed"),
                    }
                }
            })
            .expect("spawn the snapshot flush thread");
        Flusher {
            requests: Mutex::new(Some(requests)),
            thread: Some(thread),
        }
    }

    /// Asks for a flush soon; never blocks.
    pub fn request(&self) {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(requests) = requests.as_ref() {
            let _ = requests.send(());
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
