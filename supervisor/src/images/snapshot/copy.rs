//! The copying snapshotter's tree work: a parent's tree copied whole (see [`crate::tree`]),
//! and the bytes a tree holds.
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Error;
use crate::tree::{self, Xattrs};

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies the tree `src` to `dst` (which must not exist), everything kept.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), Error> {
    tree::copy_tree(src, dst, Xattrs::Required).map_err(|e| Error::Io {
        path: e.path,
        source: e.source,
    })
}

/// Bytes of regular file content in a tree, each inode counted once.
pub fn usage(root: &Path) -> Result<u64, Error> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let meta = entry.metadata().map_err(io_at(&entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.size();
            }
        }
    }
    Ok(total)
}
