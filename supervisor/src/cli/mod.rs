//! The `berth` command line: `daemon` runs the server; other commands are API clients that
//! look and behave like docker's (same flags, tables, exit codes, error wording).
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod build_view;
pub mod client;
pub mod commands;
pub mod config;
pub mod format;
pub mod progress;
pub mod tty;

use commands::{
    auth, container_fs, containers, events, images, stats, system, transfer, Context, Exit,
};

pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// berth: containers and images, docker-compatible.
#[derive(Debug, Parser)]
#[command(name = "berth", version)]
pub struct Cli {
    /// Daemon socket to connect to (or serve on).
    #[arg(short = 'H', long, env = "BERTH_HOST", default_value = DEFAULT_HOST, global = true)]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Daemon {
        #[arg(long, env = "BERTH_DATA_ROOT", default_value = "/var/lib/berth")]
        data_root: PathBuf,
        #[arg(long, default_value = "/run/berth")]
        exec_root: PathBuf,
        /// Registries reachable over plain http.
        #[arg(long)]
        insecure_registry: Vec<String>,
        #[arg(short = 'D', long)]
        debug: bool,
        /// Largest uncompressed size of a layer or a loaded archive, in bytes (default: 64x
        /// its compressed size, at least 1 GiB).
        #[arg(long)]
        max_layer_size: Option<u64>,
        /// Seconds a registry may take to answer, or to send 1 KiB of a body, before the
        /// pull gives the request up as stalled.
        #[arg(long, default_value_t = 30)]
        registry_stall_timeout: u64,
        /// Seconds an API connection may stay idle, or take to send a request's headers,
        /// before the daemon closes it.
        #[arg(long, default_value_t = 60)]
        api_idle_timeout: u64,
        /// Set by a CLI that starts the daemon because none answered.
        #[arg(long, hide = true)]
        autostarted: bool,
        #[command(flatten)]
        network: commands::networks::DaemonFlags,
    },
    /// Show the berth version information
    Version,
    /// Display system-wide information
    Info,
    /// Download an image from a registry
    Pull(transfer::PullArgs),
    /// Upload an image to a registry
    Push(transfer::PushArgs),
    /// List images
    Images(images::ListArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Remove one or more images
    Rmi(images::RemoveArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(transfer::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(transfer::LoadArgs),
    /// Build an image from a Dockerfile
    Build(commands::build::BuildArgs),
    /// Log in to a registry
    Login(auth::LoginArgs),
    /// Log out from a registry
    Logout { server: Option<String> },
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    #[command(flatten)]
    Containers(ContainerCommand),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerGroup),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::networks::NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(commands::volumes::VolumeCommand),
    /// Manage berth
    #[command(subcommand)]
    System(commands::disk::SystemCommand),
    /// Manage builds
    #[command(subcommand)]
    Builder(commands::disk::BuilderCommand),
    /// Define and run multi-container applications (compose v2's commands)
    Compose(commands::compose::ComposeArgs),
    /// The json-file logging binary the shim runs for a container (internal).
    #[command(hide = true)]
    LogDriver {
        driver: String,
        #[arg(long)]
        path: PathBuf,
        /// Rotate the file once it holds this many bytes (0: never).
        #[arg(long, default_value_t = 0)]
        max_size: u64,
        /// Files kept in all, the current one included.
        #[arg(long, default_value_t = 1)]
        max_file: u32,
    },
}

/// The container commands, under both of docker's spellings (`berth rm`, `berth container rm`).
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(containers::RunArgs),
    /// Create a new container
    Create(containers::CreateArgs),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// List containers
    Ps(containers::PsArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// List port mappings or a specific mapping for the container
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]
        port: Option<String>,
    },
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::NamesArgs),
    /// Return low-level information on containers
    Inspect(containers::InspectArgs),
    /// Execute a command in a running container
    Exec(containers::ExecArgs),
    /// Pause all processes within one or more containers
    Pause(containers::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::NamesArgs),
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Display the running processes of a container
    Top(stats::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(container_fs::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(container_fs::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(container_fs::DiffArgs),
    /// Create a new image from a container's changes
    Commit(container_fs::CommitArgs),
}

/// `berth container …`: the container commands, and what only that spelling has.
#[derive(Debug, Subcommand)]
// Parsed once per process, as `Command` (whose container variants are the same size).
#[allow(clippy::large_enum_variant)]
pub enum ContainerGroup {
    /// List containers
    #[command(alias = "list")]
    Ls(containers::PsArgs),
    /// Remove all stopped containers
    Prune(events::PruneArgs),
    #[command(flatten)]
    Containers(ContainerCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(images::ListArgs),
    /// Display detailed information on one or more images
    Inspect(images::InspectArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Remove one or more images
    Rm(images::RemoveArgs),
    /// Remove unused images
    Prune(images::PruneArgs),
    /// Download an image from a registry
    Pull(transfer::PullArgs),
    /// Upload an image to a registry
    Push(transfer::PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Save one or more images to a tar archive
    Save(transfer::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(transfer::LoadArgs),
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        Command::Daemon {
            data_root,
            exec_root,
            insecure_registry,
            debug,
            max_layer_size,
            registry_stall_timeout,
            api_idle_timeout,
            autostarted,
            network,
        } => run_daemon(crate::daemon::Config {
            network: network.into(),
            max_layer_size,
            registry_stall: std::time::Duration::from_secs(registry_stall_timeout.max(1)),
            api_idle_timeout: std::time::Duration::from_secs(api_idle_timeout.max(1)),
            host: cli.host,
            data_root,
            exec_root,
            insecure_registries: insecure_registry,
            debug,
            autostarted,
        }),
        Command::LogDriver {
            driver,
            path,
            max_size,
            max_file,
        } => log_driver(
            &driver,
            &path,
            crate::containers::logs::Rotation { max_size, max_file },
        ),
        command => {
            let ctx = Context {
                client: client::Client::new(&cli.host),
            };
            report(run(&ctx, command))
        }
    }
}

/// Docker's exit codes for bad usage: 1 for a wrong argument count, 125 for bad flags.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::MissingSubcommand => 1,
        _ => 125,
    }
}

/// Runs as the shim's logging binary (`binary://…berth?log-driver=json-file&--path=…`).
fn log_driver(
    driver: &str,
    path: &std::path::Path,
    rotation: crate::containers::logs::Rotation,
) -> i32 {
    if driver != "json-file" {
        eprintln!("berth log-driver: unknown driver {driver:?} (json-file)");
        return 2;
    }
    match crate::containers::logs::run_writer(path, rotation) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth log-driver: {e}");
            1
        }
    }
}

fn run_daemon(config: crate::daemon::Config) -> i32 {
    init_tracing(config.debug);
    match crate::daemon::run(config) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            1
        }
    }
}

fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return *code;
            }
            eprintln!("{e:#}");
            1
        }
    }
}

fn run(ctx: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Daemon { .. } => unreachable!("handled by main"),
        Command::Version => system::version(ctx),
        Command::Info => system::info(ctx),
        Command::Pull(a) => transfer::pull(ctx, &a),
        Command::Push(a) => transfer::push(ctx, &a),
        Command::Images(a) => images::list(ctx, &a),
        Command::Tag { source, target } => images::tag(ctx, &source, &target),
        Command::Rmi(a) => images::remove(ctx, &a),
        Command::History(a) => images::history(ctx, &a),
        Command::Save(a) => transfer::save(ctx, &a),
        Command::Load(a) => transfer::load(ctx, &a),
        Command::Build(a) => commands::build::build(ctx, &a),
        Command::Login(a) => auth::login(ctx, &a),
        Command::Logout { server } => auth::logout(server.as_deref()),
        Command::Image(sub) => run_image(ctx, sub),
        Command::Containers(sub) => run_container(ctx, sub),
        Command::Events(a) => events::events(ctx, &a),
        Command::Container(ContainerGroup::Ls(a)) => containers::ps(ctx, &a),
        Command::Container(ContainerGroup::Prune(a)) => events::prune(ctx, &a),
        Command::Container(ContainerGroup::Containers(sub)) => run_container(ctx, sub),
        Command::Network(sub) => commands::networks::run(ctx, sub),
        Command::Volume(sub) => commands::volumes::run(ctx, sub),
        Command::System(sub) => commands::disk::system(ctx, sub),
        Command::Builder(sub) => commands::disk::builder(ctx, sub),
        Command::Compose(a) => commands::compose::run(ctx, a),
        Command::LogDriver { .. } => unreachable!("handled by main"),
    }
}

fn run_container(ctx: &Context, command: ContainerCommand) -> anyhow::Result<()> {
    match command {
        ContainerCommand::Run(a) => containers::run(ctx, &a),
        ContainerCommand::Create(a) => containers::create(ctx, &a),
        ContainerCommand::Start(a) => containers::start(ctx, &a),
        ContainerCommand::Stop(a) => containers::stop(ctx, &a, "stop"),
        ContainerCommand::Restart(a) => containers::stop(ctx, &a, "restart"),
        ContainerCommand::Kill(a) => containers::kill(ctx, &a),
        ContainerCommand::Rm(a) => containers::rm(ctx, &a),
        ContainerCommand::Ps(a) => containers::ps(ctx, &a),
        ContainerCommand::Logs(a) => containers::logs(ctx, &a),
        ContainerCommand::Port { container, port } => {
            commands::ports::port(ctx, &container, port.as_deref())
        }
        ContainerCommand::Wait(a) => containers::wait(ctx, &a),
        ContainerCommand::Inspect(a) => containers::inspect(ctx, &a),
        ContainerCommand::Exec(a) => containers::exec(ctx, &a),
        ContainerCommand::Pause(a) => containers::simple(ctx, &a, "pause"),
        ContainerCommand::Unpause(a) => containers::simple(ctx, &a, "unpause"),
        ContainerCommand::Rename {
            container,
            new_name,
        } => containers::rename(ctx, &container, &new_name),
        ContainerCommand::Top(a) => stats::top(ctx, &a),
        ContainerCommand::Stats(a) => stats::stats(ctx, &a),
        ContainerCommand::Cp(a) => container_fs::cp(ctx, &a),
        ContainerCommand::Export(a) => container_fs::export(ctx, &a),
        ContainerCommand::Diff(a) => container_fs::diff(ctx, &a),
        ContainerCommand::Commit(a) => container_fs::commit(ctx, &a),
    }
}

fn run_image(ctx: &Context, command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Ls(a) => images::list(ctx, &a),
        ImageCommand::Inspect(a) => images::inspect(ctx, &a),
        ImageCommand::History(a) => images::history(ctx, &a),
        ImageCommand::Rm(a) => images::remove(ctx, &a),
        ImageCommand::Prune(a) => images::prune(ctx, &a),
        ImageCommand::Pull(a) => transfer::pull(ctx, &a),
        ImageCommand::Push(a) => transfer::push(ctx, &a),
        ImageCommand::Tag { source, target } => images::tag(ctx, &source, &target),
        ImageCommand::Save(a) => transfer::save(ctx, &a),
        ImageCommand::Load(a) => transfer::load(ctx, &a),
    }
}

fn init_tracing(debug: bool) {
    let level = if debug { "debug" } else { "info" };
    // hickory-server logs every query at info: the DNS responder's lines only when debugging.
    let filter = format!("{level},hickory_server=warn");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
