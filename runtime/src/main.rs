//! `berth-runtime`: runc's command line over the `berth_runtime` library.
use berth_runtime::container::{self, CreateOptions};
use berth_runtime::logging::{self, Format};
use berth_runtime::state::Container;
use berth_runtime::{features, signal, spec_default, Error, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "berth-runtime", about = "berth's OCI runtime, a drop-in for runc", disable_version_flag = true)]
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

fn main() {
    let cli = Cli::parse();
    logging::init(cli.log.as_deref(), cli.log_format, cli.debug);
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("berth-runtime: {e}");
            1
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
        return Err(Error::Other("no command given: see berth-runtime --help".into()));
    };
    match command {
        Command::Create(a) => {
            container::create(root, &create_options(a, cli))?;
        }
        Command::Start { id } => container::start(root, id)?,
        Command::Run { create, detach, keep, no_subreaper } => {
            return run_container(root, &create_options(create, cli), *detach, *keep, *no_subreaper);
        }
        Command::State { id } => {
            let c = Container::load(root, id)?;
            println!("{}", pretty(&c.runc_state_json(root)));
        }
        Command::Kill { all, id, signal } => container::kill(root, id, signal::parse(signal)?, *all)?,
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
        systemd_cgroup: cli.systemd_cgroup,
    }
}

fn run_container(root: &Path, opts: &CreateOptions, detach: bool, keep: bool, no_subreaper: bool) -> Result<i32> {
    if !detach && !no_subreaper {
        nix::sys::prctl::set_child_subreaper(true).map_err(|e| Error::sys("prctl", "PR_SET_CHILD_SUBREAPER", e))?;
    }
    let forward = (!detach).then(container::block_forwarded_signals).transpose()?;
    let c = container::create(root, opts)?;
    if let Err(e) = container::start(root, &c.id) {
        let _ = container::delete(root, &c.id, true);
        return Err(e);
    }
    let Some(mask) = forward else { return Ok(0) };
    let code = container::wait_forwarding(&c, &mask)?;
    if !keep {
        container::delete(root, &c.id, true)?;
    }
    Ok(code)
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
            println!("{}", serde_json::Value::Array(all));
        }
        "table" => {
            let rows: Vec<[String; 6]> = containers
                .iter()
                .map(|c| {
                    let s = c.runc_state_json(root);
                    [c.id.clone(), s["pid"].to_string(), s["status"].as_str().unwrap_or("").into(), c.bundle.display().to_string(), c.created.clone(), c.owner.clone()]
                })
                .collect();
            print_table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], &rows);
        }
        other => return Err(Error::Other(format!("invalid format option {other:?}: use table or json"))),
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
        let text: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", text.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
