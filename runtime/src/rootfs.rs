//! The container's root filesystem: mounts in order, devices, pivot_root, masked and
//! read-only paths.
use crate::mounts::{self, current_flags, open_in_root, proc_fd, Kind, Options};
use crate::{fdmount, procfs, Error, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Devices every container gets (runc's list).
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const DEV_LINKS: [(&str, &str); 4] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
];

fn mnt(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(src, target, fstype, flags, data).map_err(|e| {
        Error::sys(
            "mount",
            format!("{:?} on {target}", src.or(fstype).unwrap_or("")),
            e,
        )
    })
}

/// Make the new mount namespace's propagation right and the rootfs a mount point.
pub fn prepare(spec: &Spec, rootfs: &Path) -> Result<()> {
    // `/` and everything below it get the requested propagation (rslave by default), except
    // unbindable, which would refuse the bind of the rootfs below: slave until pivot_root.
    let before = match root_propagation(spec)? {
        Some(f) if !f.contains(MsFlags::MS_UNBINDABLE) => f | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mnt(None, "/", None, before, None)?;
    // pivot_root refuses a new root whose parent mount is shared: the mount holding the
    // rootfs (the rootfs itself when it is a mount point, like containerd's overlay) is made
    // private when it is shared, as runc does.
    let (holder, shared) = mount_holding(rootfs);
    if shared {
        mnt(None, &holder, None, MsFlags::MS_PRIVATE, None)?;
    }
    let root = rootfs
        .to_str()
        .ok_or_else(|| Error::Spec("root.path: not UTF-8".into()))?;
    mnt(
        Some(root),
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
}

/// After pivot_root (or the move with --no-pivot): the requested propagation on the
/// container's own `/` (shared and unbindable can only be set there).
pub fn set_root_propagation(spec: &Spec) -> Result<()> {
    match root_propagation(spec)? {
        Some(f) => mnt(None, "/", None, f, None),
        None => Ok(()),
    }
}

/// `linux.rootfsPropagation` as mount flags.
fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .map(|p| {
            mounts::propagation(p)
                .ok_or_else(|| Error::Spec(format!("linux.rootfsPropagation: unknown {p:?}")))
        })
        .transpose()
}

/// The mount point of the mount `path` lives on (the top mount at the longest mount point
/// in /proc/self/mountinfo that is a prefix of it), and whether that mount is shared.
fn mount_holding(path: &Path) -> (String, bool) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(&str, bool)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4).copied() else {
            continue;
        };
        if !path.starts_with(mp) || best.is_some_and(|(b, _)| b.len() > mp.len()) {
            continue;
        }
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .unwrap_or(fields.len());
        let shared = fields
            .get(6..sep)
            .is_some_and(|tags| tags.iter().any(|t| t.starts_with("shared:")));
        best = Some((mp, shared));
    }
    let (mp, shared) = best.unwrap_or(("/", false));
    (mp.to_string(), shared)
}

/// Open the rootfs (after `prepare`, so mounts made on it are seen through the fd).
pub fn open_root(rootfs: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open", rootfs.display(), e))
}

/// The source of a bind mount entry (relative ones are in the bundle), else None.
fn bind_source(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    let opts = Options::parse(m.options().as_deref().unwrap_or(&[]));
    let fstype = m.typ().as_deref().unwrap_or("");
    let is_bind = opts.is_bind() || fstype == "bind";
    if !is_bind || fstype == "cgroup" || fstype == "cgroup2" {
        return None;
    }
    m.source().as_ref().map(|s| {
        if s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    })
}

/// (index in `mounts`, source) of every bind mount.
pub fn bind_sources(spec: &Spec, bundle: &Path) -> Vec<(usize, PathBuf)> {
    let mounts = spec.mounts().iter().flatten().enumerate();
    mounts
        .filter_map(|(i, m)| bind_source(m, bundle).map(|s| (i, s)))
        .collect()
}

/// `source` opened (O_PATH) with the caller's credentials but in the mounts of process
/// `pid` (through /proc/<pid>/root, before it pivots): how host root hands an init in a user
/// namespace what that namespace's root may not reach — the fd is on the init's own copy of
/// the mount, so it can bind it.
pub fn open_source_of(pid: i32, source: &Path) -> Result<OwnedFd> {
    let through = Path::new("/proc")
        .join(pid.to_string())
        .join("root")
        .join(source.strip_prefix("/").unwrap_or(source));
    nix::fcntl::open(&through, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("open bind mount source", source.display(), e))
}

/// Bind sources, by index in `mounts`, that the parent opened for the init.
pub type Sources = std::collections::HashMap<usize, OwnedFd>;

/// Mount every entry of `mounts`, in order, inside the rootfs; a bind whose source is in
/// `sources` binds that fd.
pub fn mount_all(
    spec: &Spec,
    root: &OwnedFd,
    bundle: &Path,
    sources: &Sources,
    in_userns: bool,
    cgroupns: bool,
) -> Result<()> {
    let label = spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty());
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let source = sources.get(&i);
        match label {
            Some(label) if matches!(m.typ().as_deref(), Some("tmpfs" | "devpts")) => {
                let mut labelled = m.clone();
                let mut options = m.options().clone().unwrap_or_default();
                options.push(crate::lsm::mount_context(label));
                labelled.set_options(Some(options));
                mount_one(&labelled, root, bundle, source, in_userns, cgroupns)?;
            }
            _ => mount_one(m, root, bundle, source, in_userns, cgroupns)?,
        }
    }
    Ok(())
}

fn mount_one(
    m: &Mount,
    root: &OwnedFd,
    bundle: &Path,
    source_fd: Option<&OwnedFd>,
    in_userns: bool,
    cgroupns: bool,
) -> Result<()> {
    mount_entry(m, root, bundle, source_fd, in_userns, cgroupns).map_err(|e| match e {
        Error::Sys { op, target, errno } => Error::Sys {
            op,
            target: format!(
                "{} (mounts: destination {})",
                target,
                m.destination().display()
            ),
            errno,
        },
        other => other,
    })
}

fn mount_entry(
    m: &Mount,
    root: &OwnedFd,
    bundle: &Path,
    source_fd: Option<&OwnedFd>,
    in_userns: bool,
    cgroupns: bool,
) -> Result<()> {
    let opts = Options::parse(m.options().as_deref().unwrap_or(&[]));
    let fstype = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    let is_bind = opts.is_bind() || fstype == "bind";
    // A source the parent opened is reached through its fd, never by its path again.
    let source = match source_fd {
        Some(fd) if is_bind => Some(PathBuf::from(proc_fd(fd))),
        _ => bind_source(m, bundle).or_else(|| m.source().clone()),
    };
    let request = procfs::MountRequest {
        dest,
        fstype,
        bind_source: source.as_deref().filter(|_| is_bind),
    };
    request.check_path(root)?;
    if is_bind {
        // A bind makes no filesystem: its key=value data has nowhere to go (the kernel drops
        // it, and tools share one option list between tmpfs and bind mounts), but a word no
        // table knows is a misspelt flag, never silently dropped.
        if let Some(unknown) = opts.data.iter().find(|o| !o.contains('=')) {
            return Err(Error::Spec(format!(
                "mounts: destination {}: unknown option {unknown:?} for a bind mount",
                dest.display()
            )));
        }
        if !opts.data.is_empty() {
            tracing::debug!(
                "mounts: destination {}: filesystem data {:?} ignored for a bind mount",
                dest.display(),
                opts.data
            );
        }
    }
    if fstype == "cgroup" || fstype == "cgroup2" {
        mount_cgroup(dest, root, &opts, cgroupns)?;
        return set_recursive_attrs(root, dest, Kind::Dir, &opts);
    }
    let kind = match &source {
        Some(src) if is_bind && !src.is_dir() => Kind::File,
        _ => Kind::Dir,
    };
    if is_bind {
        if let Some(src) = &source {
            std::fs::metadata(src).map_err(|e| Error::io("bind mount source", src, e))?;
        }
    }
    let target = open_in_root(root, dest, kind)?;
    request.check_target(root, &target)?;
    let target_path = proc_fd(&target);
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    let src = source.as_ref().and_then(|s| s.to_str());
    if is_bind {
        let rec = opts.flags & MsFlags::MS_REC;
        mnt(src, &target_path, None, MsFlags::MS_BIND | rec, None)?;
        let extra = opts.flags - MsFlags::MS_BIND - MsFlags::MS_REC;
        if !extra.is_empty() {
            // Reopen: the old fd still points under the new mount.
            let target = open_in_root(root, dest, kind)?;
            let target_path = proc_fd(&target);
            let keep = current_flags(&target_path);
            let flags = (keep | extra) - opts.cleared;
            mnt(
                None,
                &target_path,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                None,
            )?;
        }
    } else {
        let mut flags = opts.flags - MsFlags::MS_REMOUNT;
        if fstype == "tmpfs" {
            // Mount points, device nodes and hook files go into it first: read-only comes
            // at the end (`readonly_tmpfs_last`).
            flags -= MsFlags::MS_RDONLY;
        }
        let res = mount(
            src.or(Some(fstype)),
            target_path.as_str(),
            Some(fstype),
            flags,
            data,
        );
        match res {
            Ok(()) => {}
            // sysfs needs a network namespace owned by our user namespace: fall back to a bind.
            Err(nix::errno::Errno::EPERM) if fstype == "sysfs" && in_userns => {
                mnt(
                    Some("/sys"),
                    &target_path,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                let target = open_in_root(root, dest, kind)?;
                let target_path = proc_fd(&target);
                let keep = current_flags(&target_path);
                mnt(
                    None,
                    &target_path,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | keep | flags,
                    None,
                )?;
            }
            Err(e) => {
                return Err(Error::sys(
                    "mount",
                    format!("{fstype:?} on {}", dest.display()),
                    e,
                ))
            }
        }
    }
    if fstype == "proc" {
        // What was mounted must be a procfs root, whatever raced with the mount.
        let target = open_in_root(root, dest, kind)?;
        procfs::is_procfs_root(&target, &dest.display().to_string())?;
    }
    set_recursive_attrs(root, dest, kind, &opts)?;
    if !opts.propagation.is_empty() {
        let target = open_in_root(root, dest, kind)?;
        mnt(None, &proc_fd(&target), None, opts.propagation, None)?;
    }
    Ok(())
}

/// The recursive options (`rro`, `rnosuid`, …) on the mount at `dest` and every mount below it.
fn set_recursive_attrs(root: &OwnedFd, dest: &Path, kind: Kind, opts: &Options) -> Result<()> {
    if !opts.has_recursive() {
        return Ok(());
    }
    let target = open_in_root(root, dest, kind)?;
    fdmount::set_attrs(
        target.as_fd(),
        opts.recursive_set,
        opts.recursive_clear,
        true,
        &dest.display().to_string(),
    )
}

/// A cgroup mount shows the container's own cgroup, never the host's hierarchy: with a cgroup
/// namespace a fresh cgroup filesystem (rooted at the container's cgroup), without one a bind of
/// the container's cgroup directory. On a v1 or hybrid host, a tmpfs holds one per hierarchy.
fn mount_cgroup(dest: &Path, root: &OwnedFd, opts: &Options, cgroupns: bool) -> Result<()> {
    let target = open_in_root(root, dest, Kind::Dir)?;
    let path = proc_fd(&target);
    let flags = (opts.flags - MsFlags::MS_BIND - MsFlags::MS_REC)
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    let own = own_cgroups();
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let sub = own
            .iter()
            .find(|(c, _)| c.is_empty())
            .map(|(_, p)| p.as_str())
            .unwrap_or("/");
        drop(target);
        return mount_hierarchy(
            root,
            dest,
            "cgroup2",
            None,
            &format!("/sys/fs/cgroup{sub}"),
            flags,
            cgroupns,
        );
    }
    mnt(
        Some("tmpfs"),
        &path,
        Some("tmpfs"),
        flags - MsFlags::MS_RDONLY,
        Some("mode=755"),
    )?;
    let target = open_in_root(root, dest, Kind::Dir)?;
    let path = proc_fd(&target);
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .map_err(|e| Error::io("read dir", "/sys/fs/cgroup", e))?
    {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            let link = std::fs::read_link(entry.path()).unwrap_or_default();
            let _ = std::os::unix::fs::symlink(link, PathBuf::from(&path).join(&name));
            continue;
        }
        // Like runc: a v1 cgroup mount shows the v1 hierarchies only.
        let (key, data) = match name.as_str() {
            "unified" => continue,
            "systemd" => ("name=systemd".to_string(), "none,name=systemd".to_string()),
            n => (n.to_string(), n.to_string()),
        };
        let Some(sub) = own
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == key) || (key.is_empty() && c.is_empty()))
            .map(|(_, p)| p.clone())
        else {
            continue;
        };
        let host = format!("/sys/fs/cgroup/{name}{sub}");
        mount_hierarchy(
            root,
            &dest.join(&name),
            "cgroup",
            Some(&data),
            &host,
            flags,
            cgroupns,
        )?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mnt(
            None,
            &path,
            None,
            MsFlags::MS_REMOUNT | flags,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

/// Mount one hierarchy at `dest` (inside the rootfs): fresh in a cgroup namespace, else a
/// bind of the container's own cgroup directory on the host, remounted with `flags`.
fn mount_hierarchy(
    root: &OwnedFd,
    dest: &Path,
    fstype: &str,
    data: Option<&str>,
    host: &str,
    flags: MsFlags,
    cgroupns: bool,
) -> Result<()> {
    let target = open_in_root(root, dest, Kind::Dir)?;
    let path = proc_fd(&target);
    if cgroupns && mount(Some(fstype), path.as_str(), Some(fstype), flags, data).is_ok() {
        return Ok(());
    }
    mnt(
        Some(host),
        &path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    // Reopen: the old fd still points under the new mount.
    let target = open_in_root(root, dest, Kind::Dir)?;
    let path = proc_fd(&target);
    mnt(
        None,
        &path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | current_flags(host) | flags,
        None,
    )
}

/// (controllers, path) of each hierarchy the calling process is in, from /proc/self/cgroup.
fn own_cgroups() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// Default devices and `linux.devices`: mknod, or bind mounts from the host in a user namespace.
pub fn create_devices(spec: &Spec, root: &OwnedFd, in_userns: bool) -> Result<()> {
    let custom = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for (path, major, minor) in DEFAULT_DEVICES {
        if custom.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        let mut dev = LinuxDevice::default();
        dev.set_path(PathBuf::from(path));
        dev.set_typ(LinuxDeviceType::C);
        dev.set_major(major as i64);
        dev.set_minor(minor as i64);
        dev.set_file_mode(Some(0o666));
        dev.set_uid(Some(0));
        dev.set_gid(Some(0));
        create_device(&dev, root, in_userns)?;
    }
    for dev in &custom {
        create_device(dev, root, in_userns)?;
    }
    Ok(())
}

fn create_device(dev: &LinuxDevice, root: &OwnedFd, in_userns: bool) -> Result<()> {
    let path = dev.path();
    if !path.starts_with("/dev") {
        // The spec allows other places; they resolve inside the rootfs just the same.
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = open_in_root(root, parent, Kind::Dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::Spec(format!("linux.devices: bad path {path:?}")))?;
    let dir_path = PathBuf::from(proc_fd(&dir));
    let node = dir_path.join(name);
    if in_userns {
        let target = open_in_root(root, path, Kind::File)?;
        let host = path.to_str().unwrap_or("");
        return mnt(Some(host), &proc_fd(&target), None, MsFlags::MS_BIND, None);
    }
    let kind = match dev.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Spec(format!(
                "linux.devices: {path:?}: type \"a\" is only for cgroup rules"
            )))
        }
    };
    let mode = Mode::from_bits_truncate(dev.file_mode().unwrap_or(0o666));
    let _ = std::fs::remove_file(&node);
    let rdev = makedev(dev.major() as u64, dev.minor() as u64);
    let old = nix::sys::stat::umask(Mode::empty());
    let res = mknod(&node, kind, mode, rdev);
    nix::sys::stat::umask(old);
    res.map_err(|e| Error::sys("mknod", path.display(), e))?;
    let uid = dev.uid().map(nix::unistd::Uid::from_raw);
    let gid = dev.gid().map(nix::unistd::Gid::from_raw);
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &node,
        uid,
        gid,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::sys("chown", path.display(), e))
}

/// `/dev/fd`, `/dev/stdin`…, and `/dev/ptmx` pointing into the container's devpts.
pub fn create_dev_links(root: &OwnedFd) -> Result<()> {
    let dev = open_in_root(root, Path::new("/dev"), Kind::Dir)?;
    let dev_path = PathBuf::from(proc_fd(&dev));
    let mut links: Vec<(&str, &str)> = DEV_LINKS.to_vec();
    if nix::fcntl::openat2(
        root,
        "dev/pts/ptmx",
        nix::fcntl::OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT),
    )
    .is_ok()
    {
        let _ = std::fs::remove_file(dev_path.join("ptmx"));
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    for (src, link) in links {
        let name = Path::new(link).file_name().unwrap_or_default();
        match std::os::unix::fs::symlink(src, dev_path.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("symlink", link, e)),
        }
    }
    Ok(())
}

/// Switch to the rootfs: pivot_root stacking the old root on the new one, then detach it.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let old = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("open", "/", e))?;
    nix::unistd::chdir(rootfs).map_err(|e| Error::sys("chdir", rootfs.display(), e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| Error::sys("pivot_root", rootfs.display(), e))?;
    nix::unistd::fchdir(&old).map_err(|e| Error::sys("fchdir", "old root", e))?;
    mnt(None, ".", None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::sys("umount", "old root", e))?;
    nix::unistd::chdir("/").map_err(|e| Error::sys("chdir", "/", e))
}

/// `--no-pivot`: move the rootfs over `/` and chroot into it.
pub fn move_root(rootfs: &Path) -> Result<()> {
    hide_host_kernel_fs(rootfs)?;
    nix::unistd::chdir(rootfs).map_err(|e| Error::sys("chdir", rootfs.display(), e))?;
    mnt(Some("."), "/", None, MsFlags::MS_MOVE, None)?;
    nix::unistd::chroot(".").map_err(|e| Error::sys("chroot", rootfs.display(), e))?;
    nix::unistd::chdir("/").map_err(|e| Error::sys("chdir", "/", e))
}

/// Without pivot_root the old root stays in the mount namespace: detach the host's procfs
/// and sysfs mounts (outside the rootfs) first, or cover those that cannot be detached with a
/// read-only tmpfs, so that no fully visible procfs is left for a user namespace inside the
/// container to mount another from (as runc does).
fn hide_host_kernel_fs(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    let mut targets: Vec<PathBuf> = info
        .lines()
        .filter_map(kernel_fs_mount_point)
        .filter(|m| !m.starts_with(rootfs) && !rootfs.starts_with(m))
        .collect();
    targets.sort_by_key(|m| m.as_os_str().len());
    let mut done: Vec<PathBuf> = Vec::new();
    for target in targets {
        if done.iter().any(|d| target.starts_with(d)) {
            continue;
        }
        let t = target.to_string_lossy();
        match umount2(&target, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => mnt(
                Some("tmpfs"),
                &t,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )?,
            Err(e) => return Err(Error::sys("umount", t, e)),
        }
        done.push(target);
    }
    Ok(())
}

/// The mount point of a mountinfo line when its filesystem is procfs or sysfs.
fn kernel_fs_mount_point(line: &str) -> Option<PathBuf> {
    let (left, right) = line.split_once(" - ")?;
    let fstype = right.split(' ').next()?;
    if fstype != "proc" && fstype != "sysfs" {
        return None;
    }
    left.split(' ')
        .nth(4)
        .map(|m| PathBuf::from(mounts::unescape_mountinfo(m)))
}

/// No mount namespace: only change root.
pub fn chroot(rootfs: &Path) -> Result<()> {
    nix::unistd::chroot(rootfs).map_err(|e| Error::sys("chroot", rootfs.display(), e))?;
    nix::unistd::chdir("/").map_err(|e| Error::sys("chdir", "/", e))
}

/// After every mount, device and hook (and the pivot): make read-only the tmpfs mounts that
/// asked for it (`/dev` with `ro` among them), each on its own, not what is mounted below it.
pub fn readonly_tmpfs_last(spec: &Spec) -> Result<()> {
    let mut root = None;
    for m in spec.mounts().iter().flatten() {
        let opts = Options::parse(m.options().as_deref().unwrap_or(&[]));
        if m.typ().as_deref() != Some("tmpfs")
            || opts.is_bind()
            || !opts.flags.contains(MsFlags::MS_RDONLY)
        {
            continue;
        }
        if root.is_none() {
            root = Some(open_root(Path::new("/"))?);
        }
        let dest = m.destination();
        let target = open_in_root(root.as_ref().expect("opened"), dest, Kind::Dir)?;
        let what = format!("{} read-only", dest.display());
        fdmount::set_attrs(target.as_fd(), libc::MOUNT_ATTR_RDONLY, 0, false, &what)?;
    }
    Ok(())
}

/// Remount the mount at `path` read-only, keeping its other flags.
pub fn remount_readonly(path: &str) -> Result<()> {
    let flags = current_flags(path) | MsFlags::MS_RDONLY;
    mnt(
        None,
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_fs_mount_points_from_mountinfo() {
        let proc = "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw";
        let sys = "23 1 0:22 / /a\\040b rw - sysfs sysfs rw";
        let tmp = "24 1 0:23 / /tmp rw - tmpfs tmpfs rw";
        assert_eq!(kernel_fs_mount_point(proc), Some(PathBuf::from("/proc")));
        assert_eq!(kernel_fs_mount_point(sys), Some(PathBuf::from("/a b")));
        assert_eq!(kernel_fs_mount_point(tmp), None);
    }
}
