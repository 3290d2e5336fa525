//! `--user name|uid[:group|gid]` and `--group-add`, resolved with the image's /etc/passwd and
//! /etc/group as docker does. The files are opened inside the rootfs with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the image cannot point the daemon at a host file.
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use super::SpecError;

/// Largest id accepted (`2^31 - 1`, as docker).
const MAX_ID: u64 = i32::MAX as u64;
/// Largest passwd/group file read.
const MAX_FILE: u64 = 16 << 20;

/// The process's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then the user's groups (when no group was given), then
    /// `--group-add` (deduplicated), as docker lists them.
    pub additional_gids: Vec<u32>,
    /// The user's home directory from /etc/passwd (`/` when none).
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u64,
    gid: u64,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u64,
    members: Vec<String>,
}

/// Resolves `user` (docker's `Config.User`) and `group_add` against the files of `rootfs`.
pub fn resolve(rootfs: &Path, user: &str, group_add: &[String]) -> Result<Identity, SpecError> {
    let root = open_root(rootfs)?;
    let (user_arg, group_arg) = user.split_once(':').unwrap_or((user, ""));
    let needs_group_file = !group_arg.is_empty() || !user_arg.is_empty() || !group_add.is_empty();
    let passwd = parse_passwd(&read_in_root(&root, rootfs, "etc/passwd")?);
    let groups = if needs_group_file {
        parse_group(&read_in_root(&root, rootfs, "etc/group")?)
    } else {
        Vec::new()
    };

    let (uid, mut gid, name, home) = find_user(&passwd, user_arg)?;
    let mut supplementary = Vec::new();
    if !group_arg.is_empty() {
        gid = find_group(&groups, group_arg, "User")?;
    } else if let Some(name) = &name {
        supplementary = groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
            .map(|g| g.gid as u32)
            .collect();
    }
    let mut additional_gids = vec![gid];
    additional_gids.extend(supplementary);
    let mut added = Vec::new();
    for g in group_add {
        let gid = find_group(&groups, g, "GroupAdd")?;
        if !added.contains(&gid) {
            added.push(gid);
        }
    }
    additional_gids.extend(added);
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// `(uid, gid, matched name, home)`; a numeric user without an entry is taken as is (gid 0).
fn find_user(
    passwd: &[PasswdEntry],
    arg: &str,
) -> Result<(u32, u32, Option<String>, String), SpecError> {
    let numeric = arg.parse::<u64>().ok();
    let found = passwd.iter().find(|u| match (arg, numeric) {
        ("", _) => u.uid == 0,
        (_, Some(n)) => u.uid == n,
        (name, None) => u.name == name,
    });
    match (found, numeric) {
        (Some(u), _) => Ok((
            id("User", arg, u.uid)?,
            id("User", arg, u.gid)?,
            Some(u.name.clone()),
            u.home.clone(),
        )),
        (None, _) if arg.is_empty() => Ok((0, 0, None, "/".into())),
        (None, Some(n)) => Ok((id("User", arg, n)?, 0, None, "/".into())),
        (None, None) => Err(SpecError::UnknownUser(arg.to_string())),
    }
}

fn find_group(groups: &[GroupEntry], arg: &str, field: &'static str) -> Result<u32, SpecError> {
    let numeric = arg.parse::<u64>().ok();
    let found = groups.iter().find(|g| match numeric {
        Some(n) => g.gid == n,
        None => g.name == arg,
    });
    match (found, numeric) {
        (Some(g), _) => id(field, arg, g.gid),
        (None, Some(n)) => id(field, arg, n),
        (None, None) => Err(SpecError::UnknownGroup(arg.to_string())),
    }
}

fn id(field: &'static str, arg: &str, n: u64) -> Result<u32, SpecError> {
    if n > MAX_ID {
        return Err(SpecError::invalid(
            field,
            arg,
            "id out of range (0-2147483647)",
        ));
    }
    Ok(n as u32)
}

fn open_root(rootfs: &Path) -> Result<OwnedFd, SpecError> {
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SpecError::io("open rootfs", rootfs, e.into()))
}

/// The contents of `rel` resolved inside `root` (symlinks stay in it); `""` when it does not
/// exist. Only a regular file is read.
fn read_in_root(root: &OwnedFd, rootfs: &Path, rel: &str) -> Result<String, SpecError> {
    let path = rootfs.join(rel);
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(root, rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(SpecError::io("open", path, e.into())),
    };
    let st = fstat(&fd).map_err(|e| SpecError::io("stat", &path, e.into()))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(SpecError::invalid(
            "User",
            path.display().to_string(),
            "not a regular file",
        ));
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| SpecError::io("read", &path, e))?;
    Ok(text)
}

fn fields(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    fields(text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).copied().unwrap_or("/").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    fields(text)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
