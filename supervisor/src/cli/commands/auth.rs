//! `login`, `logout`: credentials checked by the daemon (`POST /auth`), stored 0600.
use std::io::{BufRead, IsTerminal, Read, Write};

use clap::Args;

use super::Context;
use crate::cli::client::Body;
use crate::cli::config;
use crate::images::registry::Credentials;

/// `berth login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}

fn prompt(label: &str) -> anyhow::Result<String> {
    print!("{label}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a line from the terminal with echo off.
fn prompt_hidden(label: &str) -> anyhow::Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is stdin; saved is a valid termios.
    let is_tty = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if is_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: quiet is a copy of a valid termios.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let answer = prompt(label);
    if is_tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        println!();
    }
    answer
}

fn read_credentials(args: &LoginArgs) -> anyhow::Result<(String, String)> {
    if args.password.is_some() && args.password_stdin {
        anyhow::bail!("--password and --password-stdin are mutually exclusive");
    }
    if args.password_stdin && args.username.is_none() {
        anyhow::bail!("Must provide --username with --password-stdin");
    }
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None => prompt("Username: ")?,
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p)?;
            p.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => prompt_hidden("Password: ")?,
        (None, false) => prompt("Password: ")?,
    };
    if username.is_empty() {
        anyhow::bail!("Error: Non-null Username Required");
    }
    if password.is_empty() {
        anyhow::bail!("Error: Password Required");
    }
    Ok((username, password))
}

pub fn login(ctx: &Context, args: &LoginArgs) -> anyhow::Result<()> {
    let key = config::server_key(args.server.as_deref().unwrap_or(""));
    let (username, password) = read_credentials(args)?;
    let credentials = Credentials {
        username,
        password,
        server_address: key.clone(),
        identity_token: String::new(),
    };
    let body = serde_json::to_vec(&credentials)?;
    ctx.client
        .request("POST", "/auth", &[], Body::Json(body))?
        .ok()?;
    config::save(&key, &credentials)?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        config::path().display()
    );
    println!("Login Succeeded");
    Ok(())
}

/// `berth logout [SERVER]`.
pub fn logout(server: Option<&str>) -> anyhow::Result<()> {
    let key = config::server_key(server.unwrap_or(""));
    if config::remove(&key)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(())
}
