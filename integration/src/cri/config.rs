//! The files a private containerd with its CRI plugin reads: `config.toml` with the three
//! runtime handlers, berth's shim options file, a CNI conflist (bridge + portmap on a private
//! subnet) and `hosts.toml` mirrors.
use std::path::Path;

/// The runtime handlers every CRI test runs against.
pub const HANDLERS: [&str; 3] = ["runc", "berth-runc", "berth"];

/// Where the private containerd keeps everything (all under one directory).
pub struct Layout<'a> {
    pub dir: &'a Path,
    /// The directory holding `containerd-shim-berth-v2` and `berth-runtime`.
    pub bin: &'a Path,
    pub sandbox_image: &'a str,
    /// CNI network name and bridge (unique per containerd).
    pub network: &'a str,
    pub bridge: &'a str,
    /// `a.b.c.0/24`.
    pub subnet: &'a str,
    /// Handlers beside [`HANDLERS`] (a test's own runtime options).
    pub extra: &'a [Handler],
}

/// A runtime handler of a test's own: a runtime type and its runc-style options
/// (`BinaryName`, `Root`, `SystemdCgroup`). containerd hands runc's shim these options
/// itself; for berth's shim (whose type containerd does not know) it hands on only a
/// `ConfigPath`, so they go into a file of their own, as a cluster would configure it.
#[derive(Debug, Clone)]
pub struct Handler {
    pub name: String,
    /// `io.containerd.runc.v2` or `io.containerd.berth.v2`.
    pub runtime_type: String,
    pub binary_name: String,
    pub root: String,
    pub systemd_cgroup: bool,
}

impl Handler {
    /// The runc-style keys, as TOML lines.
    fn keys(&self) -> String {
        format!(
            "BinaryName = \"{}\"\nRoot = \"{}\"\nSystemdCgroup = {}\n",
            self.binary_name, self.root, self.systemd_cgroup
        )
    }

    fn is_berth(&self) -> bool {
        self.runtime_type == BERTH_TYPE
    }
}

/// The runtime type of berth's shim (`containerd-shim-berth-v2`).
pub const BERTH_TYPE: &str = "io.containerd.berth.v2";
/// The runtime type of containerd's runc shim.
pub const RUNC_TYPE: &str = "io.containerd.runc.v2";

impl Layout<'_> {
    pub fn socket(&self) -> std::path::PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's config (version 2): private root, state, sockets, CNI and registry dirs.
    pub fn containerd_toml(&self) -> String {
        let d = self.dir.display();
        let bin = self.bin.display();
        format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "{d}/runc-root"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth-runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth-runc.options]
        BinaryName = "{bin}/berth-runtime"
        Root = "{d}/berth-runc-root"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
      runtime_type = "io.containerd.berth.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
        TypeUrl = "io.containerd.berth.v1.Options"
        ConfigPath = "{d}/berth-shim.toml"
{extra}  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/certs.d"
"#,
            image = self.sandbox_image,
            extra = self.extra_toml(),
        )
    }

    fn extra_toml(&self) -> String {
        let mut toml = String::new();
        for h in self.extra {
            let table = format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{}]",
                h.name
            );
            toml += &format!("    {table}\n      runtime_type = \"{}\"\n", h.runtime_type);
            toml += &format!("      {}\n", table.replace(']', ".options]"));
            let options = if h.is_berth() {
                format!(
                    "TypeUrl = \"io.containerd.berth.v1.Options\"\nConfigPath = \"{}\"\n",
                    self.options_file(&h.name).display()
                )
            } else {
                h.keys()
            };
            for line in options.lines() {
                toml += &format!("        {line}\n");
            }
        }
        toml
    }

    /// The options file of berth handler `name`.
    fn options_file(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(format!("{name}-shim.toml"))
    }

    /// The berth handler's options, runc-style keys (read by the shim from `ConfigPath`).
    pub fn berth_shim_toml(&self) -> String {
        format!(
            "BinaryName = \"{}/berth-runtime\"\nRoot = \"{}/berth-root\"\nSystemdCgroup = false\n",
            self.bin.display(),
            self.dir.display()
        )
    }

    /// bridge (gateway, host-local IPAM in a private data dir) + portmap; containerd adds the
    /// loopback network itself.
    pub fn cni_conflist(&self) -> String {
        let gateway = self.subnet.replace(".0/24", ".1");
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet, "gateway": gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.dir.join("cni/ipam").display().to_string(),
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        })
        .to_string()
    }

    /// Writes every file under `dir`.
    pub fn write(&self) -> std::io::Result<()> {
        let net_d = self.dir.join("cni/net.d");
        std::fs::create_dir_all(&net_d)?;
        std::fs::create_dir_all(self.dir.join("certs.d"))?;
        std::fs::write(self.dir.join("config.toml"), self.containerd_toml())?;
        std::fs::write(self.dir.join("berth-shim.toml"), self.berth_shim_toml())?;
        for h in self.extra.iter().filter(|h| h.is_berth()) {
            std::fs::write(self.options_file(&h.name), h.keys())?;
        }
        std::fs::write(net_d.join("10-berth-cri.conflist"), self.cni_conflist())
    }

    /// A `hosts.toml` sending pulls of `registry` (e.g. `docker.io`) to `mirror` (plain http).
    pub fn mirror(&self, registry: &str, mirror: &str) -> std::io::Result<()> {
        let dir = self.dir.join("certs.d").join(registry);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"http://{mirror}\"\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n"
            ),
        )
    }
}
