//! A runc-compatible runtime binary run with a private `--root`: every command's stdout,
//! stderr and exit code, and `delete --force` of whatever is left when dropped.
use crate::bundle::Bundle;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A container id unique in this machine at this time (`prefix-pid-n`).
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The outcome of one runtime command.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(out: Output) -> Outcome {
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A runtime binary with its own `--root` temp dir.
pub struct Runtime {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
}

impl Runtime {
    pub fn new(bin: impl Into<PathBuf>) -> Runtime {
        let root = tempfile::Builder::new()
            .prefix("berth-test-root")
            .tempdir()
            .expect("temp dir for --root");
        Runtime {
            bin: bin.into(),
            root,
        }
    }

    pub fn root_path(&self) -> &Path {
        self.root.path()
    }

    /// `<bin> --root <root>` ready for more args.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Run a command with stdin from /dev/null. Output goes to unlinked temp files, not pipes:
    /// a container started by `create` or `run --detach` inherits them and would hold a pipe
    /// open long after the command exits.
    pub fn exec(&self, args: &[&str]) -> Outcome {
        let mut stdout = tempfile::tempfile().expect("temp file for stdout");
        let mut stderr = tempfile::tempfile().expect("temp file for stderr");
        let status = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().expect("dup stdout file"))
            .stderr(stderr.try_clone().expect("dup stderr file"))
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", self.bin.display()));
        Outcome {
            code: status.code().unwrap_or(-1),
            stdout: read_back(&mut stdout),
            stderr: read_back(&mut stderr),
        }
    }

    /// Run and expect success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert_eq!(out.code, 0, "{args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Run and expect failure; stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert_ne!(
            out.code, 0,
            "{args:?} succeeded but should fail: {}",
            out.stdout
        );
        out.stderr
    }

    /// `run` a bundle in the foreground under `id`.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Outcome {
        bundle.write();
        self.exec(&["run", "--bundle", bundle.path_str(), id])
    }

    /// `run` expecting exit 0; the container's stdout.
    pub fn run_ok(&self, bundle: &Bundle) -> String {
        let out = self.run(bundle, &unique_id("run"));
        assert_eq!(out.code, 0, "container failed: {out:?}");
        out.stdout
    }

    /// `create` expecting success.
    pub fn create(&self, bundle: &Bundle, id: &str) {
        bundle.write();
        self.ok(&["create", "--bundle", bundle.path_str(), id]);
    }

    /// `create` then `start`, expecting success.
    pub fn start(&self, bundle: &Bundle, id: &str) {
        self.create(bundle, id);
        self.ok(&["start", id]);
    }

    pub fn state(&self, id: &str) -> Value {
        let text = self.ok(&["state", id]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("state {id}: {e}: {text}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn pid(&self, id: &str) -> i64 {
        self.state(id)["pid"].as_i64().expect("pid in state")
    }

    /// Poll `state` until the status is `want` (up to 5 s).
    pub fn wait_status(&self, id: &str, want: &str) {
        for _ in 0..500 {
            if self.status(id) == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("container {id} never became {want}: {}", self.status(id));
    }

    /// Nothing of the container is left under `--root`.
    pub fn assert_no_state(&self, id: &str) {
        assert!(
            !self.root.path().join(id).exists(),
            "state of {id} left behind under {}",
            self.root.path().display()
        );
    }

    /// The ids `list -q` reports.
    pub fn ids(&self) -> Vec<String> {
        self.exec(&["list", "-q"])
            .stdout
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Everything written to `file` so far.
fn read_back(file: &mut std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.rewind().expect("rewind output file");
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).expect("read output file");
    text.push_str(&String::from_utf8_lossy(&bytes));
    text
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = self.exec(&["delete", "--force", &id]);
        }
    }
}
