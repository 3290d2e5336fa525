//! The `berth` command line: `daemon` runs the server; other commands are API clients.
//!
//! The client speaks HTTP/1.1 over the unix socket with `Connection: close`. If nothing answers,
//! it starts a daemon in the background (own session, log in <exec-root>/berth-daemon.log).
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    },
    /// Show the berth version information.
    Version,
    /// Display system-wide information.
    Info,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Daemon {
            data_root,
            exec_root,
            insecure_registry,
            debug,
        } => {
            init_tracing(debug);
            let config = crate::daemon::Config {
                host: cli.host,
                data_root,
                exec_root,
                insecure_registries: insecure_registry,
                debug,
            };
            match crate::daemon::run(config) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth daemon: {e}");
                    1
                }
            }
        }
        Command::Version => print_json(&cli.host, "/v1.41/version"),
        Command::Info => print_json(&cli.host, "/v1.41/info"),
    }
}

fn init_tracing(debug: bool) {
    let level = if debug { "debug" } else { "info" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .try_init();
}

fn print_json(host: &str, path: &str) -> i32 {
    match request(host, "GET", path) {
        Ok((200, body)) => {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or(body));
            0
        }
        Ok((_, body)) => {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let message = value["message"].as_str().unwrap_or(&body).to_string();
            eprintln!("Error response from daemon: {message}");
            1
        }
        Err(e) => {
            eprintln!("berth: {e}");
            1
        }
    }
}

/// Sends one request, starting the daemon if none answers. Returns (status, body).
pub fn request(host: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    let socket = crate::daemon::socket_path(host).map_err(|e| e.to_string())?;
    let mut stream = match UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(_) => {
            start_daemon(host)?;
            UnixStream::connect(&socket).map_err(|e| format!("{}: {e}", socket.display()))?
        }
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Starts `berth daemon` detached in its own session and waits for its socket.
fn start_daemon(host: &str) -> Result<(), String> {
    let socket = crate::daemon::socket_path(host).map_err(|e| e.to_string())?;
    let exec_root = socket
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| "/run/berth".into());
    std::fs::create_dir_all(&exec_root).map_err(|e| format!("{}: {e}", exec_root.display()))?;
    let log_path = exec_root.join("berth-daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["daemon", "--host", host, "--exec-root"])
        .arg(&exec_root);
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("starting daemon: {e}"))?;
    eprintln!("berth: started daemon (pid {}) on {host}", child.id());
    for _ in 0..100 {
        if UnixStream::connect(&socket).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "daemon did not come up on {host}; see {}",
        log_path.display()
    ))
}
