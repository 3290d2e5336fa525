//! The shim scenario: containerd-shim-berth-v2 against containerd-shim-runc-v2 under one
//! private containerd — `ctr run --rm` of `/bin/true` through each, and the resident memory
//! of each shim holding one idle running container. Both shims run the same runtime binary.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "berth.bench/busybox:latest";
const NS: &str = "berth-bench";
pub const SHIMS: [(&str, &str); 2] = [
    ("berth", "io.containerd.berth.v2"),
    ("runc-v2", "io.containerd.runc.v2"),
];

/// A private containerd (CRI off) whose PATH finds our shim first.
pub struct Containerd {
    dir: PathBuf,
    child: Child,
    runtime: PathBuf,
}

impl Containerd {
    pub fn start(
        work: &Path,
        shim_dir: &Path,
        runtime: &Path,
        rootfs: &Path,
    ) -> Result<Containerd, String> {
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2"] {
            which(tool).ok_or_else(|| format!("{tool} not found (apt-get install containerd)"))?;
        }
        let dir = work.join("containerd");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let d = dir.display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{d}/sock\"\n"
        );
        fs::write(dir.join("config.toml"), config).map_err(|e| e.to_string())?;
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("containerd: {e}"))?;
        let ctd = Containerd {
            dir,
            child,
            runtime: runtime.to_path_buf(),
        };
        let until = Instant::now() + Duration::from_secs(15);
        while !ctd.ctr(&["version"]).is_ok_and(|o| o.status.success()) {
            if Instant::now() > until {
                return Err("containerd did not come up".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        ctd.import(rootfs)?;
        Ok(ctd)
    }

    fn ctr(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new("ctr")
            .arg("-a")
            .arg(self.dir.join("sock"))
            .args(["-n", NS])
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    fn ok(&self, args: &[&str]) -> Result<(), String> {
        let out = self.ctr(args).map_err(|e| format!("ctr: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "ctr {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }

    /// The busybox rootfs as a one-layer docker-archive image.
    fn import(&self, rootfs: &Path) -> Result<(), String> {
        let img = self.dir.join("image");
        fs::create_dir_all(&img).map_err(|e| e.to_string())?;
        let layer = img.join("layer.tar");
        let tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg(".")
            .status();
        if !tar.is_ok_and(|s| s.success()) {
            return Err("tar of the rootfs failed".into());
        }
        let sum = Command::new("sha256sum")
            .arg(&layer)
            .output()
            .map_err(|e| e.to_string())?;
        let digest = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let config = serde_json::json!({"architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]}});
        fs::write(img.join("config.json"), config.to_string()).map_err(|e| e.to_string())?;
        let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [IMAGE], "Layers": ["layer.tar"]}]);
        fs::write(img.join("manifest.json"), manifest.to_string()).map_err(|e| e.to_string())?;
        let archive = self.dir.join("image.tar");
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&img)
            .arg("-cf")
            .arg(&archive)
            .args(["manifest.json", "config.json", "layer.tar"])
            .status();
        if !tar.is_ok_and(|s| s.success()) {
            return Err("tar of the image failed".into());
        }
        self.ok(&["images", "import", archive.to_str().unwrap_or_default()])
    }

    /// `ctr run` flags selecting `shim` with berth-runtime: the berth shim finds it on its
    /// PATH (containerd's, which starts with the build dir); runc-v2 is told its binary.
    fn runtime_args(&self, shim: &str) -> Vec<String> {
        let mut args = vec!["--runtime".to_string(), shim.to_string()];
        if shim == "io.containerd.runc.v2" {
            args.extend([
                "--runc-binary".to_string(),
                self.runtime.display().to_string(),
            ]);
        }
        args
    }

    fn run(&self, shim: &str, flags: &[&str], id: &str, cmd: &[&str]) -> Result<(), String> {
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(flags.iter().map(|f| f.to_string()));
        args.extend(self.runtime_args(shim));
        args.extend([IMAGE.to_string(), id.to_string()]);
        args.extend(cmd.iter().map(|c| c.to_string()));
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `ctr run --rm` of /bin/true through `shim`; its wall time.
    pub fn run_true(&self, shim: &str, id: &str) -> Result<Duration, String> {
        let start = Instant::now();
        self.run(shim, &["--rm"], id, &["/bin/true"])?;
        Ok(start.elapsed())
    }

    /// VmRSS (KiB) of the shim holding one idle `sleep` container started through `shim`.
    pub fn idle_rss(&self, shim: &str, id: &str) -> Result<u64, String> {
        self.run(shim, &["-d"], id, &["sleep", "1000"])?;
        // Let the shim settle (the berth shim releases its startup pages when idle).
        std::thread::sleep(Duration::from_secs(5));
        let rss = shim_pid(id)
            .and_then(vm_rss)
            .ok_or_else(|| format!("no shim process for {id}"));
        let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.ctr(&["tasks", "delete", "-f", id]);
        let _ = self.ctr(&["containers", "delete", id]);
        rss
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.ctr(&["images", "rm", IMAGE]);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let state = self.dir.join("state");
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&state)
            .stderr(Stdio::null())
            .status();
        remove_namespace_cgroups();
    }
}

/// containerd leaves the namespace's parent cgroup (`/berth-bench`) in every hierarchy; a left
/// cgroup would also keep the bench's v1 hugetlb hierarchy (see `HugetlbV1`) alive.
fn remove_namespace_cgroups() {
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let dir = h.path().join(NS);
        if dir.is_dir() {
            if let Err(e) = fs::remove_dir(&dir) {
                eprintln!("berth-bench: remove {}: {e}", dir.display());
            }
        }
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

/// The long-lived shim serving container `id`: a containerd-shim process naming it.
fn shim_pid(id: &str) -> Option<i32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_shim = args.first().is_some_and(|a| a.contains("containerd-shim"));
        (is_shim && args.windows(2).any(|w| w[0] == "-id" && w[1] == id)).then_some(pid)
    })
}

fn vm_rss(pid: i32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
