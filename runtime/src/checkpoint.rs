//! `checkpoint` and `restore` through CRIU (Debian's `criu`): the container's process tree is
//! dumped to an image directory and restored from it into a new container.
use crate::state::Container;
use crate::{Error, Result};
use oci_spec::runtime::ContainerState;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
}

/// The flags both `criu dump` and `criu restore` take from the options.
fn common_args(opts: &CheckpointOptions) -> Vec<String> {
    let mut args = vec![
        "--images-dir".to_string(),
        opts.image_path.display().to_string(),
    ];
    if let Some(w) = &opts.work_path {
        args.extend(["--work-dir".to_string(), w.display().to_string()]);
    }
    for (on, flag) in [
        (opts.tcp_established, "--tcp-established"),
        (opts.ext_unix_sk, "--ext-unix-sk"),
        (opts.shell_job, "--shell-job"),
        (opts.file_locks, "--file-locks"),
    ] {
        if on {
            args.push(flag.into());
        }
    }
    args.extend([
        "--manage-cgroups".into(),
        "--log-file".into(),
        "criu.log".into(),
    ]);
    args
}

/// Run criu; on failure the error carries the last error line of its log.
fn criu(args: &[String], log_dir: &Path) -> Result<()> {
    let out = Command::new("criu")
        .args(args)
        .output()
        .map_err(|e| Error::io("run", "criu (install Debian's criu)", e))?;
    if out.status.success() {
        return Ok(());
    }
    let log = std::fs::read_to_string(log_dir.join("criu.log")).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = log
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains("Error") && !l.contains("exited, status"))
        .map(|l| l.split_once("): ").map_or(l, |(_, m)| m).trim())
        .collect();
    let reason = if errors.is_empty() {
        format!("exit status {}", out.status)
    } else {
        errors.join("; ")
    };
    Err(Error::Other(format!("criu {}: {reason}", args[0])))
}

pub fn checkpoint(root: &Path, id: &str, opts: &CheckpointOptions) -> Result<()> {
    let c = Container::load(root, id)?;
    if c.status(root) != ContainerState::Running {
        return Err(Error::State(format!("container {id} is not running")));
    }
    std::fs::create_dir_all(&opts.image_path)
        .map_err(|e| Error::io("mkdir", &opts.image_path, e))?;
    let mut args = vec![
        "dump".to_string(),
        "--tree".into(),
        c.pid.to_string(),
        "--root".into(),
        c.rootfs.display().to_string(),
    ];
    args.extend(common_args(opts));
    if opts.leave_running {
        args.push("--leave-running".into());
    }
    criu(&args, opts.work_path.as_deref().unwrap_or(&opts.image_path))
}

pub fn restore(
    root: &Path,
    id: &str,
    bundle: &Path,
    pid_file: Option<&Path>,
    opts: &CheckpointOptions,
) -> Result<i32> {
    crate::state::check_id(id)?;
    let b = crate::spec::Bundle::load(bundle)?;
    let pid_path = opts.image_path.join("restored.pid");
    let mut args = vec![
        "restore".to_string(),
        "--root".into(),
        b.rootfs.display().to_string(),
        "--restore-detached".into(),
        "--pidfile".into(),
        pid_path.display().to_string(),
    ];
    args.extend(common_args(opts));
    // As for create: a cgroup that already holds processes is not the container's to own.
    let linux = b.spec.linux().as_ref().expect("checked by Bundle::load");
    let cgroup = crate::cgroups::Cgroup::new_exclusive(linux.cgroups_path().as_deref(), id, false)?;
    criu(&args, opts.work_path.as_deref().unwrap_or(&opts.image_path))?;
    let pid: i32 = std::fs::read_to_string(&pid_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Other(format!("criu restore: no pid in {}", pid_path.display())))?;
    let container = Container {
        id: id.to_string(),
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        pid,
        pid_start: crate::state::process_start_time(pid).unwrap_or(0),
        created: crate::state::now_rfc3339(),
        annotations: b.spec.annotations().clone().unwrap_or_default(),
        cgroup,
        owner: String::new(),
        systemd_cgroup: false,
        hooks: b.spec.hooks().clone(),
        oci_version: b.spec.version().clone(),
    };
    let dir = crate::state::dir(root, id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
    container.save(root)?;
    if let Some(p) = pid_file {
        crate::container::write_pid_file(p, pid)?;
    }
    Ok(pid)
}
