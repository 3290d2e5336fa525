//! Keeping the runtime's mountpoints out of RUN layers: a step's container gets `/proc`,
//! `/sys`, `/dev` and the files bind-mounted over `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf` made in its writable layer when its image lacks them. Docker keeps
//! these in an init layer that commits never see; here, once the step's container has
//! stopped, the empty stubs it added (and, on overlayfs, directories copied up only to hold
//! them, unchanged otherwise) leave its snapshot before it becomes a layer.
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::containers::fs::MOUNTPOINTS;
use crate::images::layer::at;
use crate::images::snapshot::{Backend, Error, Snapshotter};

fn io(path: &Path) -> impl Fn(nix::errno::Errno) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// `rel`'s stat inside the tree `root`, its parent resolved inside it, never following
/// `rel` itself.
fn lstat_in(root: BorrowedFd<'_>, rel: &Path) -> Option<libc::stat> {
    let dir = at::open_dir_in(root, rel.parent()?).ok()?;
    at::lstat_at(dir.as_fd(), rel.file_name()?).ok().flatten()
}

fn same_owner_and_mode(a: &libc::stat, b: &libc::stat) -> bool {
    (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid)
}

/// Removes from the active snapshot `key` the runtime's mountpoints it added, and the
/// step's own mount targets (`RUN --mount`, absolute) when they were made for it.
pub fn drop_added(snapshots: &Snapshotter, key: &str, targets: &[String]) -> Result<(), Error> {
    let record = snapshots.stat(key)?;
    let fs = snapshots.fs_dir(&record);
    let root = std::fs::File::open(&fs).map_err(|source| Error::Io {
        path: fs.clone(),
        source,
    })?;
    let mut lowers = Vec::new();
    let mut parent = record.parent.clone();
    while let Some(p) = parent {
        let r = snapshots.stat(&p)?;
        let dir = snapshots.fs_dir(&r);
        lowers.push(std::fs::File::open(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?);
        parent = r.parent;
    }
    let in_lower = |rel: &Path| lowers.iter().find_map(|l| lstat_in(l.as_fd(), rel));
    let mut paths: Vec<PathBuf> = MOUNTPOINTS
        .iter()
        .copied()
        .chain(targets.iter().map(String::as_str))
        .map(|m| PathBuf::from(m.trim_start_matches('/')))
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let remove = |rel: &Path, dir_flag: UnlinkatFlags| -> Result<(), Error> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(());
        };
        let dir = at::open_dir_in(root.as_fd(), parent).map_err(io(rel))?;
        unlinkat(&dir, name, dir_flag).map_err(io(rel))
    };
    let is_empty_dir = |rel: &Path| {
        at::open_dir_in(root.as_fd(), rel)
            .ok()
            .and_then(|d| at::list_dir(d.as_fd()).ok())
            .is_some_and(|names| names.is_empty())
    };
    for rel in &paths {
        let Some(st) = lstat_in(root.as_fd(), rel) else {
            continue;
        };
        if in_lower(rel).is_some() {
            continue;
        }
        if at::is_type(&st, libc::S_IFREG) && st.st_size == 0 {
            remove(rel, UnlinkatFlags::NoRemoveDir)?;
        } else if at::is_type(&st, libc::S_IFDIR) && is_empty_dir(rel) {
            remove(rel, UnlinkatFlags::RemoveDir)?;
        }
    }
    if snapshots.backend() != Backend::Overlay {
        return Ok(());
    }
    let mut holders: Vec<&Path> = MOUNTPOINTS
        .iter()
        .filter_map(|m| Path::new(m.trim_start_matches('/')).parent())
        .collect();
    holders.retain(|h| !h.as_os_str().is_empty());
    holders.sort();
    holders.dedup();
    holders.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for rel in holders {
        let (Some(st), Some(lower)) = (lstat_in(root.as_fd(), rel), in_lower(rel)) else {
            continue;
        };
        let opaque = at::get_xattr(&fs.join(rel), "trusted.overlay.opaque")
            .ok()
            .flatten()
            .is_some();
        if at::is_type(&st, libc::S_IFDIR)
            && at::is_type(&lower, libc::S_IFDIR)
            && same_owner_and_mode(&st, &lower)
            && !opaque
            && is_empty_dir(rel)
        {
            remove(rel, UnlinkatFlags::RemoveDir)?;
        }
    }
    Ok(())
}
