//! `berth-runtime`: runc's command line over the `berth_runtime` library.
// No std start-up: see `main` (the unit-test build keeps the test harness's).
#![cfg_attr(not(test), no_main)]
use berth_runtime::container::{self, CreateOptions};
use berth_runtime::logging::{self, Format};
use berth_runtime::state::Container;
use berth_runtime::{
    checkpoint, exec, features, foreground, manage, signal, spec_default, Error, Result,
};
use clap::{Args, Parser, Subcommand};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    about = "berth's OCI runtime, a drop-in for runc",
    disable_version_flag = true
)]
struct Cli {
    /// Where container state lives.
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    root: PathBuf,
    /// Write logs (and errors) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: Format,
    #[arg(long, global = true)]
    debug: bool,
    /// Place containers with systemd-style cgroup paths (slice:prefix:name).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility: true, false or auto.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Accepted for runc compatibility (criu path).
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// The bundle directory (config.json and rootfs).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// A unix socket that receives the pty master when process.terminal is true.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Move the rootfs and chroot instead of pivot_root.
    #[arg(long)]
    no_pivot: bool,
    /// Keep the session keyring of the caller.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass N more file descriptors (3, 4, …) to the process.
    #[arg(long, default_value_t = 0)]
    preserve_fds: i32,
    id: String,
}

#[derive(Args, Clone)]
struct ExecArgs {
    /// A JSON file (or - for stdin) with the process to run (runtime-spec Process).
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a pseudo-TTY (needs --console-socket).
    #[arg(short, long)]
    tty: bool,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    #[arg(long)]
    process_label: Option<String>,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long)]
    no_new_privs: bool,
    /// Add a capability, repeatable.
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long, default_value_t = 0)]
    preserve_fds: i32,
    /// Join a sub-cgroup: `path` (every hierarchy) or `controller[,controller]:path`.
    #[arg(long)]
    cgroup: Vec<String>,
    #[arg(long)]
    ignore_paused: bool,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Args, Clone)]
struct UpdateArgs {
    /// linux.resources JSON from a file, or - for stdin.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    #[arg(long)]
    blkio_weight: Option<u16>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_share: Option<u64>,
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    #[arg(long, hide = true)]
    kernel_memory: Option<String>,
    #[arg(long, hide = true)]
    kernel_memory_tcp: Option<String>,
    #[arg(long, hide = true)]
    l3_cache_schema: Option<String>,
    #[arg(long, hide = true)]
    mem_bw_schema: Option<String>,
    id: String,
}

#[derive(Args, Clone)]
struct CriuArgs {
    #[arg(long, default_value = "checkpoint")]
    image_path: PathBuf,
    #[arg(long)]
    work_path: Option<PathBuf>,
    #[arg(long)]
    leave_running: bool,
    #[arg(long)]
    tcp_established: bool,
    #[arg(long)]
    ext_unix_sk: bool,
    #[arg(long)]
    shell_job: bool,
    #[arg(long)]
    file_locks: bool,
}

impl CriuArgs {
    fn options(&self) -> checkpoint::CheckpointOptions {
        checkpoint::CheckpointOptions {
            image_path: self.image_path.clone(),
            work_path: self.work_path.clone(),
            leave_running: self.leave_running,
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a container (it waits for `start`).
    Create(CreateArgs),
    /// Run the user process of a created container.
    Start { id: String },
    /// Create and start a container, and wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        no_subreaper: bool,
    },
    /// Run another process in a running container.
    Exec(ExecArgs),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List a container's processes (`ps` output, or pids as JSON).
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print resource usage (`--stats`) or stream stats and OOM events.
    Events {
        #[arg(long)]
        stats: bool,
        /// Time between stats, a Go duration: 5s, 100ms, 1m30s.
        #[arg(long, default_value = "5s", allow_hyphen_values = true)]
        interval: String,
        id: String,
    },
    /// Change a running container's resource limits.
    Update(UpdateArgs),
    /// Dump a running container to an image directory with CRIU.
    Checkpoint {
        #[command(flatten)]
        criu: CriuArgs,
        id: String,
    },
    /// Restore a container from a CRIU image directory.
    Restore {
        #[command(flatten)]
        criu: CriuArgs,
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        id: String,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init, or to all its processes.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and what it holds.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for a rootless container (user namespace mapped to the caller).
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec Features JSON).
    Features,
    /// Print the version.
    Version,
}

/// The C entry point, without std's start-up, which each of the two execs of a `run` would
/// pay: it reads /proc/self/maps to find the main thread's stack guard and maps a signal
/// stack for a stack-overflow message (some 20 syscalls and 200k instructions). std still
/// gets the arguments from glibc; the rest of its start-up is done here, as std does it:
/// a closed fd 0, 1 or 2 is opened on /dev/null (so that no file the runtime opens becomes
/// its stdout) and SIGPIPE is ignored (a write to a closed pipe is an EPIPE error).
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let mut std_fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on a local array of 3 pollfds; open and signal take no pointers of ours
    // but a static C string; single-threaded.
    unsafe {
        if libc::poll(std_fds.as_mut_ptr(), 3, 0) > 0 {
            for p in std_fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
                if libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != p.fd {
                    libc::abort();
                }
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    berth_main()
}

#[cfg_attr(test, allow(dead_code))]
fn berth_main() -> ! {
    // Decided on the raw words, before clap: the process that only re-execs itself then does
    // not parse its arguments (half a million instructions) for nothing. A word that is
    // `create`, `run` or `exec` anywhere (a container's id, say) re-execs too, which is only
    // slower; no such command can be spelled without one.
    if std::env::args_os()
        .skip(1)
        .any(|a| a == "create" || a == "run" || a == "exec")
    {
        if let Err(e) = berth_runtime::self_exe::ensure_protected() {
            eprintln!("berth-runtime: {e}");
            std::process::exit(1);
        }
    }
    let cli = Cli::parse();
    // As crun's: with a log file, the error goes there only. Under a shim the runtime's stderr
    // is the container's, and its error would show among the container's output.
    let errors_logged = logging::init(cli.log.as_deref(), cli.log_format, cli.debug);
    // Like runc, a failing `exec` exits 255 so that callers tell it from the process's code.
    let failed = match cli.command {
        Some(Command::Exec(_)) => 255,
        _ => 1,
    };
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            if !errors_logged {
                eprintln!("berth-runtime: {e}");
            }
            failed
        }
    };
    std::process::exit(code);
}

fn run(cli: &Cli) -> Result<i32> {
    let root = cli.root.as_path();
    let Some(command) = &cli.command else {
        if cli.version {
            print_version();
            return Ok(0);
        }
        return Err(Error::Other(
            "no command given: see berth-runtime --help".into(),
        ));
    };
    match command {
        Command::Create(a) => {
            container::create(root, &create_options(a, cli))?;
        }
        Command::Start { id } => container::start(root, id)?,
        Command::Run {
            create,
            detach,
            keep,
            no_subreaper,
        } => {
            return run_container(
                root,
                &create_options(create, cli),
                *detach,
                *keep,
                *no_subreaper,
            );
        }
        Command::Exec(a) => return exec(root, a),
        Command::Pause { id } => manage::pause(root, id)?,
        Command::Resume { id } => manage::resume(root, id)?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => match format.as_str() {
            "json" => println!("{}", serde_json::json!(manage::pids(root, id)?)),
            "table" => print!("{}", manage::ps_table(root, id, ps_args)?),
            other => {
                return Err(Error::Other(format!(
                    "invalid format option {other:?}: use table or json"
                )))
            }
        },
        Command::Events {
            stats,
            interval,
            id,
        } => events(root, id, *stats, interval)?,
        Command::Update(a) => manage::update(root, &a.id, &update_resources(a)?)?,
        Command::Checkpoint { criu, id } => checkpoint::checkpoint(root, id, &criu.options())?,
        Command::Restore {
            criu,
            bundle,
            pid_file,
            detach: _,
            id,
        } => {
            checkpoint::restore(root, id, bundle, pid_file.as_deref(), &criu.options())?;
        }
        Command::State { id } => {
            let c = Container::load(root, id)?;
            println!("{}", pretty(&c.runc_state_json(root)));
        }
        Command::Kill { all, id, signal } => {
            container::kill(root, id, signal::parse(signal)?, *all)?
        }
        Command::Delete { force, id } => container::delete(root, id, *force)?,
        Command::List { format, quiet } => list(root, format, *quiet)?,
        Command::Spec { bundle, rootless } => spec_default::write(bundle, *rootless)?,
        Command::Features => println!("{}", pretty(&features::document())),
        Command::Version => print_version(),
    }
    Ok(0)
}

fn print_version() {
    println!("berth-runtime version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {}", oci_spec::runtime::VERSION);
}

fn create_options(a: &CreateArgs, cli: &Cli) -> CreateOptions {
    CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        listen_fds: container::listen_fds_from_env(),
        systemd_cgroup: cli.systemd_cgroup,
    }
}

fn run_container(
    root: &Path,
    opts: &CreateOptions,
    detach: bool,
    keep: bool,
    no_subreaper: bool,
) -> Result<i32> {
    if !detach && !no_subreaper {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys("prctl", "PR_SET_CHILD_SUBREAPER", e))?;
    }
    let forward = (!detach).then(foreground::block_signals).transpose()?;
    // In the foreground with a terminal and no console socket, relay the pty ourselves.
    let own_console = (!detach && opts.console_socket.is_none())
        .then(foreground::console_pair)
        .transpose()?;
    let (ours, theirs) = match own_console {
        Some((ours, theirs)) => (Some(ours), Some(theirs)),
        None => (None, None),
    };
    let (c, terminal) = container::create_with_console(root, opts, theirs)?;
    let master = match (&ours, terminal) {
        (Some(sock), true) => Some(foreground::receive_master(sock)?),
        _ => None,
    };
    drop(ours);
    if let Err(e) = container::start(root, &c.id) {
        let _ = container::delete(root, &c.id, true);
        return Err(e);
    }
    let Some(mask) = forward else { return Ok(0) };
    let code = foreground::wait(c.pid, &mask, master)?;
    if !keep {
        container::delete(root, &c.id, true)?;
    }
    Ok(code)
}

fn exec(root: &Path, a: &ExecArgs) -> Result<i32> {
    let process = match &a.process {
        Some(file) => exec::process_from_file(file)?,
        None => {
            if a.args.is_empty() {
                return Err(Error::Spec(
                    "exec: no command given (args or --process)".into(),
                ));
            }
            let c = Container::load(root, &a.id)?;
            let bundle = berth_runtime::spec::Bundle::load(&c.bundle)?;
            let base = bundle.spec.process().clone().unwrap_or_default();
            let flags = exec::ExecFlags {
                args: a.args.clone(),
                tty: a.tty,
                cwd: a.cwd.clone(),
                env: a.env.clone(),
                user: a.user.clone(),
                additional_gids: a.additional_gids.clone(),
                caps: a.cap.clone(),
                no_new_privs: a.no_new_privs,
                apparmor: a.apparmor.clone(),
                process_label: a.process_label.clone(),
            };
            exec::process_from_flags(&base, &flags)?
        }
    };
    let opts = exec::ExecOptions {
        id: a.id.clone(),
        process,
        console_socket: a.console_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        lsm_fields: if a.process.is_some() {
            berth_runtime::lsm::CONFIG_FIELDS
        } else {
            berth_runtime::lsm::EXEC_FIELDS
        },
        sub_cgroups: berth_runtime::cgroups::SubCgroups::parse(&a.cgroup)?,
    };
    exec::exec(root, &opts)
}

fn events(root: &Path, id: &str, once: bool, interval: &str) -> Result<()> {
    if once {
        let c = Container::load(root, id)?;
        println!("{}", manage::stats_event(&c)?);
        return Ok(());
    }
    let every = berth_runtime::duration::parse(interval)
        .and_then(|d| {
            (!d.is_zero())
                .then_some(d)
                .ok_or_else(|| "must be greater than 0".to_string())
        })
        .map_err(|e| Error::Spec(format!("--interval {interval:?}: {e}")))?;
    manage::events(root, id, every, |ev| println!("{ev}"))
}

/// `update`'s resources: the JSON document if given, with the flags laid over it.
fn update_resources(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r: LinuxResources = match &a.resources {
        Some(path) => berth_runtime::spec::read_json_arg(path)?,
        None => LinuxResources::default(),
    };
    let size = |v: &Option<String>| v.as_deref().map(manage::parse_size).transpose();
    let mut mem = (*r.memory()).unwrap_or_default();
    if let Some(v) = size(&a.memory)? {
        mem.set_limit(Some(v));
    }
    if let Some(v) = size(&a.memory_reservation)? {
        mem.set_reservation(Some(v));
    }
    if let Some(v) = size(&a.memory_swap)? {
        mem.set_swap(Some(v));
    }
    if let Some(v) = size(&a.kernel_memory)? {
        #[allow(deprecated)]
        mem.set_kernel(Some(v));
    }
    r.set_memory(Some(mem));
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if a.cpu_period.is_some() {
        cpu.set_period(a.cpu_period);
    }
    if a.cpu_quota.is_some() {
        cpu.set_quota(a.cpu_quota);
    }
    if a.cpu_share.is_some() {
        cpu.set_shares(a.cpu_share);
    }
    if a.cpu_rt_period.is_some() {
        cpu.set_realtime_period(a.cpu_rt_period);
    }
    if a.cpu_rt_runtime.is_some() {
        cpu.set_realtime_runtime(a.cpu_rt_runtime);
    }
    if a.cpuset_cpus.is_some() {
        cpu.set_cpus(a.cpuset_cpus.clone());
    }
    if a.cpuset_mems.is_some() {
        cpu.set_mems(a.cpuset_mems.clone());
    }
    r.set_cpu(Some(cpu));
    if let Some(limit) = a.pids_limit {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(limit);
        r.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

fn list(root: &Path, format: &str, quiet: bool) -> Result<()> {
    let containers = container::list(root)?;
    if quiet {
        containers.iter().for_each(|c| println!("{}", c.id));
        return Ok(());
    }
    match format {
        "json" => {
            let all: Vec<_> = containers.iter().map(|c| c.runc_state_json(root)).collect();
            println!("{}", serde_json::to_string(&all).unwrap_or_default());
        }
        "table" => {
            let rows: Vec<[String; 6]> = containers
                .iter()
                .map(|c| {
                    let s = c.runc_state_json(root);
                    [
                        c.id.clone(),
                        s.pid.to_string(),
                        s.status,
                        c.bundle.display().to_string(),
                        c.created.clone(),
                        c.owner.clone(),
                    ]
                })
                .collect();
            print_table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], &rows);
        }
        other => {
            return Err(Error::Other(format!(
                "invalid format option {other:?}: use table or json"
            )))
        }
    }
    Ok(())
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
