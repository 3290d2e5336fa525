//! containerd-shim-berth-v2 driven directly over ttrpc, the way containerd drives it: the
//! `start` subcommand (with containerd's flags, in the bundle) prints the address, then a
//! `TaskClient` calls the Task service. This reaches what `ctr` cannot ask for: bad requests
//! and faults, each answered with the gRPC status containerd-shim-runc-v2 gives (or a sharper
//! one, noted where so), while the shim keeps serving its other containers; and several
//! containers grouped in one shim.
//!
//! Every test runs with the shim's runtime set to `berth-runtime` and to Debian's `runc`; each
//! has its own runtime root, namespace, ids and temp dirs, and leaves nothing behind.
use std::ffi::CString;
use std::fmt::Debug;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_integration::bundle::Bundle;
use berth_integration::host::process_alive;
use berth_integration::runtime::unique_id;
use berth_proto::api::*;
use berth_proto::protobuf::well_known_types::any::Any;
use berth_proto::protobuf::well_known_types::empty::Empty;
use berth_proto::protobuf::{Message, MessageField};
use berth_proto::shim::events::ForwardRequest;
use berth_proto::shim::oci::Options as RuncOptions;
use berth_proto::ttrpc::{self, context, Code};
use berth_proto::types::task::Status;
use berth_proto::TaskClient;
use serde_json::json;

const SHIM: &str = "containerd-shim-berth-v2";
/// Per-call limit: a shim that stopped serving fails the test instead of hanging it.
const CALL_TIMEOUT_NS: i64 = 20_000_000_000;

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/..")
        .to_owned();
    assert!(
        dir.join(SHIM).exists() && dir.join("berth-runtime").exists(),
        "{SHIM} or berth-runtime missing in {}: cargo build -p containerd-shim-berth-v2 -p berth-runtime",
        dir.display()
    );
    dir
}

#[derive(Clone, Copy, Debug)]
enum Flavor {
    Berth,
    Runc,
}

fn ctx() -> context::Context {
    context::with_timeout(CALL_TIMEOUT_NS)
}

/// The status code and message of a failed call (panics on success).
fn status_of<T: Debug>(result: ttrpc::Result<T>) -> (Code, String) {
    match result {
        Err(ttrpc::Error::RpcStatus(s)) => (s.code(), s.message().to_owned()),
        other => panic!("want an rpc status, got {other:?}"),
    }
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// A shim started the way containerd starts one, and a client on its socket.
struct Shim {
    dir: tempfile::TempDir,
    ns: String,
    flavor: Flavor,
    address: String,
    pid: i32,
    client: TaskClient,
    /// Containers created through this shim, removed on drop.
    ids: Vec<String>,
}

impl Shim {
    /// Runs `start` for container `id` in `bundle` and connects to the printed address.
    fn start(flavor: Flavor, id: &str, bundle: &Bundle) -> Shim {
        let dir = tempfile::Builder::new()
            .prefix("berth-shim-ttrpc")
            .tempdir()
            .unwrap();
        Shim::start_in(dir, flavor, id, bundle, "")
    }

    /// `start` in `dir`, events going to the ttrpc socket `events` (none if empty).
    fn start_in(
        dir: tempfile::TempDir,
        flavor: Flavor,
        id: &str,
        bundle: &Bundle,
        events: &str,
    ) -> Shim {
        let ns = unique_id("ttrpc");
        let address = start_command(dir.path(), &ns, id, bundle.path(), events);
        let pid = read_shim_pid(bundle.path());
        let client = TaskClient::new(ttrpc::Client::connect(&address).expect("connect to shim"));
        Shim {
            dir,
            ns,
            flavor,
            address,
            pid,
            client,
            ids: Vec::new(),
        }
    }

    /// `start` for one more container of this shim's group: the address it prints.
    fn start_again(&self, id: &str, bundle: &Bundle) -> String {
        start_command(self.dir.path(), &self.ns, id, bundle.path(), "")
    }

    /// containerd's runc options naming this flavor's runtime and a private root.
    fn options(&self) -> Any {
        let mut o = RuncOptions::new();
        o.binary_name = match self.flavor {
            Flavor::Berth => bin_dir().join("berth-runtime").to_string_lossy().into(),
            Flavor::Runc => "runc".into(),
        };
        o.root = self.dir.path().join("root").to_string_lossy().into();
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = o.write_to_bytes().unwrap();
        any
    }

    /// A fifo in the test dir, like the ones containerd creates for a task's stdio.
    fn fifo(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        mkfifo(&path);
        path.to_string_lossy().into_owned()
    }

    fn create(&mut self, id: &str, bundle: &Path, stdout: &str) -> ttrpc::Result<u32> {
        self.create_with(id, bundle, [stdout, ""], false)
    }

    /// Create with `[stdout, stderr]` and a terminal or not.
    fn create_with(
        &mut self,
        id: &str,
        bundle: &Path,
        [stdout, stderr]: [&str; 2],
        terminal: bool,
    ) -> ttrpc::Result<u32> {
        let mut r = CreateTaskRequest::new();
        r.id = id.into();
        r.bundle = bundle.to_string_lossy().into();
        r.stdout = stdout.into();
        r.stderr = stderr.into();
        r.terminal = terminal;
        r.options = MessageField::some(self.options());
        let pid = self.client.create(ctx(), &r)?.pid;
        self.ids.push(id.into());
        Ok(pid)
    }

    /// Creates and starts container `id` from `bundle`, stdout into a fresh fifo.
    fn run(&mut self, id: &str, bundle: &Bundle) -> String {
        let stdout = self.fifo(&format!("{id}.out"));
        let terminal = bundle.config["process"]["terminal"] == true;
        self.create_with(id, bundle.path(), [&stdout, ""], terminal)
            .unwrap_or_else(|e| panic!("create {id}: {e:?}"));
        self.start_process(id, "").unwrap();
        stdout
    }

    /// [`Shim::run`] with this test reading the stdout fifo from before the create, as
    /// containerd does: output of a container that exits at once is not lost with the fifo
    /// (and opening it afterwards, with no writer left, would block for ever).
    fn run_reading(&mut self, id: &str, bundle: &Bundle) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        let stdout = self.fifo(&format!("{id}.out"));
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&stdout)
            .unwrap_or_else(|e| panic!("open {stdout}: {e}"));
        let terminal = bundle.config["process"]["terminal"] == true;
        self.create_with(id, bundle.path(), [&stdout, ""], terminal)
            .unwrap_or_else(|e| panic!("create {id}: {e:?}"));
        self.start_process(id, "").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
        // SAFETY: fcntl on an fd this test owns; back to blocking reads.
        unsafe { libc::fcntl(fd, libc::F_SETFL, 0) };
        reader
    }

    fn start_process(&self, id: &str, exec_id: &str) -> ttrpc::Result<u32> {
        let mut r = StartRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        Ok(self.client.start(ctx(), &r)?.pid)
    }

    fn exec(&self, id: &str, exec_id: &str, args: &[&str]) -> ttrpc::Result<()> {
        self.exec_with_stdio(id, exec_id, args, "", "")
    }

    fn exec_with_stdio(
        &self,
        id: &str,
        exec_id: &str,
        args: &[&str],
        stdin: &str,
        stdout: &str,
    ) -> ttrpc::Result<()> {
        let spec = json!({
            "args": args, "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}, "terminal": false,
        });
        let mut any = Any::new();
        any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".into();
        any.value = spec.to_string().into_bytes();
        let mut r = ExecProcessRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        r.spec = MessageField::some(any);
        r.stdin = stdin.into();
        r.stdout = stdout.into();
        self.client.exec(ctx(), &r).map(drop)
    }

    fn kill(&self, id: &str, exec_id: &str, signal: i32) -> ttrpc::Result<()> {
        let mut r = KillRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        r.signal = signal as u32;
        self.client.kill(ctx(), &r).map(drop)
    }

    fn wait(&self, id: &str, exec_id: &str) -> u32 {
        let mut r = WaitRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        self.client.wait(ctx(), &r).unwrap().exit_status
    }

    fn delete(&mut self, id: &str, exec_id: &str) -> ttrpc::Result<DeleteResponse> {
        let mut r = DeleteRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        let resp = self.client.delete(ctx(), &r)?;
        if exec_id.is_empty() {
            self.ids.retain(|i| i != id);
        }
        Ok(resp)
    }

    fn state(&self, id: &str) -> ttrpc::Result<StateResponse> {
        let mut r = StateRequest::new();
        r.id = id.into();
        self.client.state(ctx(), &r)
    }

    fn shutdown(&self) {
        let mut r = ShutdownRequest::new();
        r.id = self.ids.first().cloned().unwrap_or_default();
        // The shim may close the connection as it goes: only a status is a failure.
        if let Err(ttrpc::Error::RpcStatus(s)) = self.client.shutdown(ctx(), &r) {
            panic!("shutdown: {s:?}");
        }
    }

    /// The shim still answers State and Pids of running container `id`.
    fn assert_serves(&self, id: &str) {
        assert!(process_alive(self.pid), "shim {} died", self.pid);
        let st = self
            .state(id)
            .unwrap_or_else(|e| panic!("state {id}: {e:?}"));
        assert_eq!(
            st.status.enum_value_or_default(),
            Status::RUNNING,
            "{id}: {st:?}"
        );
        let mut r = PidsRequest::new();
        r.id = id.into();
        let pids = self.client.pids(ctx(), &r).unwrap();
        assert!(
            pids.processes.iter().any(|p| p.pid == st.pid),
            "pids of {id} lack its init {}: {pids:?}",
            st.pid
        );
    }

    fn wait_gone(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(self.pid) {
            assert!(Instant::now() < deadline, "shim {} did not exit", self.pid);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            let _ = self.kill(&id, "", libc::SIGKILL);
            let mut w = WaitRequest::new();
            w.id = id.clone();
            let _ = self.client.wait(context::with_timeout(5_000_000_000), &w);
            let _ = self.delete(&id, "");
        }
        if process_alive(self.pid) {
            self.shutdown();
            let deadline = Instant::now() + Duration::from_secs(5);
            while process_alive(self.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: the shim this test started.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(self.address.trim_start_matches("unix://"));
    }
}

/// `containerd-shim-berth-v2 -namespace … -address … -publish-binary … -id … start` in the
/// bundle, as containerd runs it; returns the printed address.
fn start_command(dir: &Path, ns: &str, id: &str, bundle: &Path, events: &str) -> String {
    let containerd = dir.join("containerd.sock");
    let out = Command::new(bin_dir().join(SHIM))
        .args(["-namespace", ns, "-address"])
        .arg(&containerd)
        .args(["-publish-binary", "/bin/true", "-id", id, "start"])
        .current_dir(bundle)
        // containerd's events service (empty: none, the shim drops events).
        .env("TTRPC_ADDRESS", events)
        .output()
        .expect("run shim start");
    assert!(
        out.status.success(),
        "shim start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = String::from_utf8(out.stdout).unwrap();
    assert!(address.starts_with("unix://"), "address {address:?}");
    address
}

fn read_shim_pid(bundle: &Path) -> i32 {
    std::fs::read_to_string(bundle.join("shim.pid"))
        .expect("shim.pid in the bundle")
        .trim()
        .parse()
        .unwrap()
}

fn bundle(args: &[&str]) -> Bundle {
    let b = Bundle::new(args);
    b.write();
    b
}

/// Generates one test per flavor.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn berth_runtime() {
                super::$body(super::Flavor::Berth);
            }
            #[test]
            fn runc() {
                super::$body(super::Flavor::Runc);
            }
        }
    };
}

both!(shim_bad_input_and_faults, bad_input_and_faults);
fn bad_input_and_faults(flavor: Flavor) {
    let keep_bundle = bundle(&["sleep", "1000"]);
    let keep = unique_id("keep");
    let mut shim = Shim::start(flavor, &keep, &keep_bundle);
    shim.run(&keep, &keep_bundle);
    shim.assert_serves(&keep);

    missing_config_json(&mut shim);
    shim.assert_serves(&keep);
    runtime_refuses_create(&mut shim);
    shim.assert_serves(&keep);
    exec_id_in_use(&shim, &keep);
    shim.assert_serves(&keep);
    kill_of_exited_processes(&mut shim, &keep);
    shim.assert_serves(&keep);
    closed_stdout_reader(&mut shim, false);
    shim.assert_serves(&keep);
    closed_stdout_reader(&mut shim, true);
    shim.assert_serves(&keep);
}

/// runc-v2 answers Unknown ("OCI runtime create failed: …config.json…") once runc fails; the
/// berth shim refuses the request itself, before calling the runtime: InvalidArgument.
fn missing_config_json(shim: &mut Shim) {
    let empty = tempfile::tempdir().unwrap();
    let id = unique_id("nocfg");
    let (code, msg) = status_of(shim.create(&id, empty.path(), ""));
    assert_eq!(code, Code::INVALID_ARGUMENT, "{msg}");
    assert!(msg.contains("config.json"), "{msg}");
    let (code, msg) = status_of(shim.state(&id));
    assert_eq!(
        code,
        Code::NOT_FOUND,
        "a failed create left {id} behind: {msg}"
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// The runtime's own last error reaches the caller (Unknown, as from runc-v2: "OCI runtime
/// create failed: …"), and nothing of the container stays.
fn runtime_refuses_create(shim: &mut Shim) {
    let bad = bundle(&["/no/such/binary"]);
    let id = unique_id("nobin");
    let (code, msg) = status_of(shim.create(&id, bad.path(), ""));
    assert_eq!(code, Code::UNKNOWN, "{msg}");
    assert!(msg.starts_with("OCI runtime create failed: "), "{msg}");
    assert!(msg.contains("/no/such/binary"), "{msg}");
    let (code, msg) = status_of(shim.state(&id));
    assert_eq!(
        code,
        Code::NOT_FOUND,
        "a failed create left {id} behind: {msg}"
    );
}

/// runc-v2: AlreadyExists ("id e1: already exists"), also while the first exec has exited but
/// is not deleted yet.
fn exec_id_in_use(shim: &Shim, id: &str) {
    shim.exec(id, "e1", &["sh", "-c", "exit 3"]).unwrap();
    let (code, msg) = status_of(shim.exec(id, "e1", &["true"]));
    assert_eq!(code, Code::ALREADY_EXISTS, "{msg}");
    assert!(msg.contains("already exists"), "{msg}");
    shim.start_process(id, "e1").unwrap();
    assert_eq!(shim.wait(id, "e1"), 3);
    let (code, msg) = status_of(shim.exec(id, "e1", &["true"]));
    assert_eq!(code, Code::ALREADY_EXISTS, "{msg}");
}

/// runc-v2: NotFound ("process already finished") for an exited exec or init, and
/// FailedPrecondition ("process not created") for an exec not started yet.
fn kill_of_exited_processes(shim: &mut Shim, id: &str) {
    let (code, msg) = status_of(shim.kill(id, "e1", libc::SIGTERM));
    assert_eq!(code, Code::NOT_FOUND, "{msg}");
    assert!(msg.contains("already finished"), "{msg}");
    shim.exec(id, "e2", &["sleep", "1000"]).unwrap();
    let (code, msg) = status_of(shim.kill(id, "e2", libc::SIGTERM));
    assert_eq!(code, Code::FAILED_PRECONDITION, "{msg}");
    shim.delete(id, "e2").unwrap();
    assert_eq!(shim.delete(id, "e1").unwrap().exit_status, 3);

    let short_bundle = bundle(&["true"]);
    let short = unique_id("short");
    shim.run(&short, &short_bundle);
    assert_eq!(shim.wait(&short, ""), 0);
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let (code, msg) = status_of(shim.kill(&short, "", signal));
        assert_eq!(code, Code::NOT_FOUND, "{msg}");
        assert!(msg.contains("already finished"), "{msg}");
    }
    shim.delete(&short, "").unwrap();
}

/// The client reading a container's stdout goes away while the container keeps writing: the
/// container blocks on a full fifo (the shim holds a reader, so nobody gets SIGPIPE), the shim
/// keeps serving, and the container can still be killed and reaped. With a terminal the shim
/// copies the pty into the fifo itself: that copy blocks too, and waiting for it to drain at
/// the exit must not hold up the shim's other calls.
fn closed_stdout_reader(shim: &mut Shim, terminal: bool) {
    let mut noisy_bundle = Bundle::new(&["sh", "-c", "while :; do echo 0123456789abcdef; done"]);
    noisy_bundle.set("/process/terminal", json!(terminal));
    noisy_bundle.write();
    let noisy = unique_id("noisy");
    let stdout = shim.run(&noisy, &noisy_bundle);
    let mut reader = std::fs::File::open(&stdout).unwrap();
    let mut buf = [0u8; 4096];
    reader.read_exact(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf).contains("0123456789abcdef"));
    drop(reader);
    // Long enough to fill the fifo and block the writer.
    std::thread::sleep(Duration::from_millis(500));
    shim.assert_serves(&noisy);
    shim.kill(&noisy, "", libc::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // With a terminal the exit waits for the output to drain: the shim still counts the
    // container running while the runtime already says "container not running". A second
    // kill is then NotFound (already finished), as from runc-v2, which containerd takes for
    // "stopped" — never Unknown.
    if let Err(e) = shim.kill(&noisy, "", libc::SIGKILL) {
        let (code, msg) = status_of::<()>(Err(e));
        assert_eq!(code, Code::NOT_FOUND, "{msg}");
    }
    let asked = Instant::now();
    let _ = shim.state(&noisy).unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "State took {:?} while an exit drained its output",
        asked.elapsed()
    );
    assert_eq!(shim.wait(&noisy, ""), 137);
    shim.delete(&noisy, "").unwrap();
}

both!(shim_no_thread_or_fd_leak_per_exec, no_leak_per_exec);
/// Execs come and go (stdio fifos opened, never opened, or removed by the client before the
/// exec is deleted): the shim ends with the threads and fds it had before.
fn no_leak_per_exec(flavor: Flavor) {
    let keep_bundle = bundle(&["sleep", "1000"]);
    let keep = unique_id("keep");
    let mut shim = Shim::start(flavor, &keep, &keep_bundle);
    shim.run(&keep, &keep_bundle);
    // One exec first: whatever the shim keeps for good (pools, the publisher) is there then.
    exec_round(&shim, &keep, "warm");
    let before = footprint(shim.pid);
    for i in 0..5 {
        exec_round(&shim, &keep, &format!("round{i}"));
    }
    // No more than before: the warm-up exec's stdin copier can still be on its way out when
    // `before` is taken (then the shim ends with one thread fewer).
    let deadline = Instant::now() + Duration::from_secs(10);
    let grown = |(threads, fds): (usize, usize)| threads > before.0 || fds > before.1;
    while grown(footprint(shim.pid)) {
        assert!(
            Instant::now() < deadline,
            "shim {} grew from {before:?} to {:?} (stdio threads, fds)",
            shim.pid,
            footprint(shim.pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    shim.assert_serves(&keep);
}

/// One exec whose stdin the client never opens and whose fifos are gone before Delete, and
/// one whose stdin the client writes and closes.
fn exec_round(shim: &Shim, id: &str, name: &str) {
    let unopened = format!("{name}-a");
    let (stdin, stdout) = (
        shim.fifo(&format!("{unopened}.in")),
        shim.fifo(&format!("{unopened}.out")),
    );
    shim.exec_with_stdio(id, &unopened, &["true"], &stdin, &stdout)
        .unwrap();
    shim.start_process(id, &unopened).unwrap();
    assert_eq!(shim.wait(id, &unopened), 0);
    std::fs::remove_file(&stdin).unwrap();
    std::fs::remove_file(&stdout).unwrap();
    let mut r = DeleteRequest::new();
    r.id = id.into();
    r.exec_id = unopened;
    shim.client.delete(ctx(), &r).unwrap();

    let fed = format!("{name}-b");
    let (stdin, stdout) = (
        shim.fifo(&format!("{fed}.in")),
        shim.fifo(&format!("{fed}.out")),
    );
    shim.exec_with_stdio(id, &fed, &["cat"], &stdin, &stdout)
        .unwrap();
    shim.start_process(id, &fed).unwrap();
    let mut reader = std::fs::File::open(&stdout).unwrap();
    std::fs::write(&stdin, "fed\n").unwrap();
    let mut out = String::new();
    reader.read_to_string(&mut out).unwrap();
    assert_eq!(out, "fed\n");
    assert_eq!(shim.wait(id, &fed), 0);
    let mut r = DeleteRequest::new();
    r.id = id.into();
    r.exec_id = fed;
    shim.client.delete(ctx(), &r).unwrap();
}

/// (stdio copy threads, open fds) of shim `pid`. Its ttrpc worker pool grows and shrinks
/// with load, so only the threads a process's stdio starts are counted.
fn footprint(pid: i32) -> (usize, usize) {
    let copy_threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    matches!(comm.trim(), "stdin" | "pty-out")
                })
                .count()
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (copy_threads, fds)
}

both!(shim_update_and_stats, update_and_stats);
/// Update (containerd sends the OCI LinuxResources as JSON; `ctr` has no command for it) sets
/// the container's memory limit, and Stats reports it.
fn update_and_stats(flavor: Flavor) {
    const LIMIT: u64 = 48 << 20;
    let b = bundle(&["sleep", "1000"]);
    let id = unique_id("upd");
    let mut shim = Shim::start(flavor, &id, &b);
    shim.run(&id, &b);
    let mut resources = Any::new();
    resources.type_url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into();
    resources.value = json!({"memory": {"limit": LIMIT}}).to_string().into_bytes();
    let mut r = UpdateTaskRequest::new();
    r.id = id.clone();
    r.resources = MessageField::some(resources);
    shim.client
        .update(ctx(), &r)
        .unwrap_or_else(|e| panic!("update: {e:?}"));
    let pid = shim.state(&id).unwrap().pid;
    assert_eq!(memory_limit(pid), LIMIT);

    let mut r = StatsRequest::new();
    r.id = id.clone();
    let stats = shim.client.stats(ctx(), &r).unwrap().stats;
    let limit = match stats.type_url.as_str() {
        "io.containerd.cgroups.v1.Metrics" => {
            let m = berth_proto::cgroups::metrics::Metrics::parse_from_bytes(&stats.value).unwrap();
            m.memory.usage.limit
        }
        "io.containerd.cgroups.v2.Metrics" => {
            let m =
                berth_proto::cgroups_v2::metrics::Metrics::parse_from_bytes(&stats.value).unwrap();
            m.memory.usage_limit
        }
        other => panic!("stats of type {other}"),
    };
    assert_eq!(limit, LIMIT);
}

/// The memory limit of `pid`'s cgroup (v1 `memory.limit_in_bytes` or v2 `memory.max`).
fn memory_limit(pid: u32) -> u64 {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let file = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let path = table.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        format!("/sys/fs/cgroup{path}/memory.max")
    } else {
        let path = table
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p))
            .unwrap();
        format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
    };
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

both!(shim_checkpoint_leaves_container_running, checkpoint);
/// Checkpoint (leave running) either writes an image or fails with the runtime's (criu's)
/// reason; either way the container keeps running and the shim keeps serving.
fn checkpoint(flavor: Flavor) {
    let b = bundle(&["sleep", "1000"]);
    let id = unique_id("ckpt");
    let mut shim = Shim::start(flavor, &id, &b);
    shim.run(&id, &b);
    let image = shim.dir.path().join("checkpoint");
    let mut r = CheckpointTaskRequest::new();
    r.id = id.clone();
    r.path = image.to_string_lossy().into();
    match shim.client.checkpoint(ctx(), &r) {
        Ok(_) => assert!(
            std::fs::read_dir(&image).map(|d| d.count()).unwrap_or(0) > 0,
            "checkpoint succeeded but wrote no image"
        ),
        Err(e) => {
            let (code, msg) = status_of::<()>(Err(e));
            eprintln!("checkpoint refused: {code:?} {msg}");
            assert_eq!(code, Code::UNKNOWN, "{msg}");
            assert!(msg.to_lowercase().contains("criu"), "{msg}");
        }
    }
    shim.assert_serves(&id);
}

both!(shim_events_all_forwarded_before_exit, events_forwarded);
/// Every event reaches containerd's events service, in order and once, the last (TaskDelete)
/// included although Shutdown follows Delete at once.
fn events_forwarded(flavor: Flavor) {
    let dir = tempfile::Builder::new()
        .prefix("berth-shim-ttrpc")
        .tempdir()
        .unwrap();
    let sink = EventSink::listen(&dir.path().join("events.sock"));
    let b = bundle(&["sleep", "1000"]);
    let id = unique_id("events");
    let mut shim = Shim::start_in(dir, flavor, &id, &b, &sink.path);
    shim.run(&id, &b);
    shim.exec(&id, "e1", &["true"]).unwrap();
    shim.start_process(&id, "e1").unwrap();
    assert_eq!(shim.wait(&id, "e1"), 0);
    shim.delete(&id, "e1").unwrap();
    shim.kill(&id, "", libc::SIGKILL).unwrap();
    assert_eq!(shim.wait(&id, ""), 137);
    shim.delete(&id, "").unwrap();
    shim.shutdown();
    shim.wait_gone();
    assert_eq!(
        *sink.topics.lock().unwrap(),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exit",
            "/tasks/delete",
        ]
    );
}

/// A stand-in for containerd's events service (`TTRPC_ADDRESS`): records forwarded topics.
struct EventSink {
    path: String,
    topics: Arc<Mutex<Vec<String>>>,
    server: Option<ttrpc::Server>,
}

struct Recorder(Arc<Mutex<Vec<String>>>);

impl berth_proto::Events for Recorder {
    fn forward(&self, _: &ttrpc::TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        // A containerd slow to take events: the shim must still not exit before the last.
        std::thread::sleep(Duration::from_millis(50));
        self.0.lock().unwrap().push(req.envelope.topic.clone());
        Ok(Empty::new())
    }
}

impl EventSink {
    fn listen(path: &Path) -> EventSink {
        let topics = Arc::new(Mutex::new(Vec::new()));
        let path = path.to_string_lossy().into_owned();
        let mut server = ttrpc::Server::new()
            .bind(&format!("unix://{path}"))
            .expect("bind events socket")
            .register_service(berth_proto::create_events(Arc::new(Recorder(
                topics.clone(),
            ))));
        server.start().expect("events server");
        EventSink {
            path,
            topics,
            server: Some(server),
        }
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        // Not `shutdown`: that waits on connection handlers, which may never finish.
        if let Some(server) = self.server.take() {
            drop(server.stop_listen());
        }
    }
}

both!(shim_log_uris, log_uris);
/// `file://` and `binary://` stdio, with and without a terminal: every line arrives.
fn log_uris(flavor: Flavor) {
    let first = bundle(&["true"]);
    let first_id = unique_id("logs");
    let mut shim = Shim::start(flavor, &first_id, &first);
    let logger = shim.dir.path().join("logger.sh");
    std::fs::write(&logger, LOGGER).unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for terminal in [false, true] {
        for scheme in ["file", "binary"] {
            let base = shim.dir.path().join(format!("{scheme}-{terminal}"));
            let (out, err) = (base.with_extension("out"), base.with_extension("err"));
            let uris = match scheme {
                "file" => [
                    format!("file://{}", out.display()),
                    format!("file://{}", err.display()),
                ],
                _ => {
                    let uri = format!("binary://{}?to={}", logger.display(), base.display());
                    [uri.clone(), uri]
                }
            };
            let mut b = Bundle::new(&["sh", "-c", "echo to-out; echo to-err >&2"]);
            b.set("/process/terminal", json!(terminal));
            b.write();
            let id = unique_id(scheme);
            shim.create_with(&id, b.path(), [&uris[0], &uris[1]], terminal)
                .unwrap_or_else(|e| panic!("create {scheme} terminal={terminal}: {e:?}"));
            shim.start_process(&id, "").unwrap();
            assert_eq!(shim.wait(&id, ""), 0);
            shim.delete(&id, "").unwrap();
            let want = if terminal {
                [("out", "to-out\r\nto-err\r\n"), ("err", "")]
            } else {
                [("out", "to-out\n"), ("err", "to-err\n")]
            };
            for (ext, text) in want {
                let path = base.with_extension(ext);
                let got = eventually(|| std::fs::read_to_string(&path).unwrap_or_default(), text);
                assert_eq!(got, text, "{scheme} terminal={terminal} {ext}");
            }
        }
    }
}

/// `read()` until it returns `want` or 10 s passed; the last value read.
fn eventually(read: impl Fn() -> String, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = read();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A logging binary: `to PATH` writes stdout (fd 3) to PATH.out, stderr (fd 4) to PATH.err;
/// ready once fd 5 is closed.
const LOGGER: &str = r#"#!/bin/sh
[ "$1" = to ] || exit 2
/bin/cat <&3 5>&- 4<&- > "$2.out" &
/bin/cat <&4 5>&- 3<&- > "$2.err" &
exec 5>&- 3<&- 4<&-
wait
"#;

both!(shim_grouped_containers_share_one_shim, grouped_containers);
/// Two containers of one group (the CRI sandbox id on one, runc-v2's group label on the other,
/// as containerd's shims read them): `start` for the second reuses the running shim, which
/// stays until the last container is deleted and Shutdown is called.
fn grouped_containers(flavor: Flavor) {
    let group = unique_id("group");
    let mut first_bundle = Bundle::new(&["sleep", "1000"]);
    first_bundle.set(
        "/annotations",
        json!({"io.kubernetes.cri.sandbox-id": group}),
    );
    first_bundle.write();
    let mut second_bundle = Bundle::new(&["sleep", "1000"]);
    second_bundle.set(
        "/annotations",
        json!({"io.containerd.runc.v2.group": group}),
    );
    second_bundle.write();
    let (first, second) = (unique_id("first"), unique_id("second"));

    let mut shim = Shim::start(flavor, &first, &first_bundle);
    assert_eq!(shim.start_again(&second, &second_bundle), shim.address);
    assert_eq!(read_shim_pid(second_bundle.path()), shim.pid);
    let other_bundle = bundle(&["true"]);
    assert_ne!(
        shim.start_again(&unique_id("alone"), &other_bundle),
        shim.address,
        "a container of no group shares the shim"
    );
    let alone = read_shim_pid(other_bundle.path());
    shim.run(&first, &first_bundle);
    shim.run(&second, &second_bundle);
    shim.assert_serves(&first);
    shim.assert_serves(&second);

    shim.kill(&first, "", libc::SIGKILL).unwrap();
    assert_eq!(shim.wait(&first, ""), 137);
    shim.delete(&first, "").unwrap();
    shim.shutdown();
    std::thread::sleep(Duration::from_millis(300));
    shim.assert_serves(&second);

    shim.kill(&second, "", libc::SIGKILL).unwrap();
    assert_eq!(shim.wait(&second, ""), 137);
    shim.delete(&second, "").unwrap();
    shim.shutdown();
    shim.wait_gone();
    assert!(
        !Path::new(shim.address.trim_start_matches("unix://")).exists(),
        "socket left behind"
    );
    // The ungrouped shim never got a container: Shutdown ends it.
    let lone = TaskClient::new(
        ttrpc::Client::connect(&socket_of(other_bundle.path())).expect("connect lone shim"),
    );
    let _ = lone.shutdown(ctx(), &ShutdownRequest::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(alone) {
        assert!(Instant::now() < deadline, "lone shim {alone} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn socket_of(bundle: &Path) -> String {
    std::fs::read_to_string(bundle.join("address")).unwrap()
}

both!(
    shim_init_exit_kills_processes_of_shared_pid_namespace,
    init_exit_kills_rest
);
/// A container without a pid namespace of its own (the host's, or a pod's joined by path):
/// when its init exits, the processes it left are killed, as runc-v2 does (`kill --all`).
/// With a pid namespace of its own the kernel does that.
fn init_exit_kills_rest(flavor: Flavor) {
    let pod_bundle = bundle(&["sleep", "1000"]);
    let pod = unique_id("pod");
    let mut shim = Shim::start(flavor, &pod, &pod_bundle);
    shim.run(&pod, &pod_bundle);
    let pod_pid = shim.state(&pod).unwrap().pid;
    let pod_ns = format!("/proc/{pod_pid}/ns/pid");

    let mut host = Bundle::new(&["sh", "-c", "sleep 1001 & echo $!"]);
    host.without_namespace("pid");
    host.write();
    let host_id = unique_id("hostpid");
    let mut out = String::new();
    let mut reader = std::io::BufReader::new(shim.run_reading(&host_id, &host));
    std::io::BufRead::read_line(&mut reader, &mut out).unwrap();
    let left: i32 = out.trim().parse().unwrap_or_else(|_| panic!("pid {out:?}"));
    assert_eq!(shim.wait(&host_id, ""), 0);
    // By the exit, what held the container's stdout is gone: containerd, closing its end at
    // the exit, never cuts a read short ("Failed to pipe stdout").
    let fd = std::os::fd::AsRawFd::as_raw_fd(reader.get_ref());
    // SAFETY: fcntl on an fd this test owns.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => panic!("stdout still has a writer after the exit: {e}"),
    }
    wait_dead(left, "host pid namespace");
    shim.delete(&host_id, "").unwrap();

    let mut joined = Bundle::new(&["sh", "-c", "sleep 1002 & exit 0"]);
    joined.namespace("pid", Some(&pod_ns));
    joined.write();
    let joined_id = unique_id("podpid");
    shim.run(&joined_id, &joined);
    assert_eq!(shim.wait(&joined_id, ""), 0);
    let target = std::fs::read_link(&pod_ns).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = sleepers(&target, "1002");
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pod's pid namespace keeps {left:?} of an exited container"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    shim.delete(&joined_id, "").unwrap();
    shim.assert_serves(&pod);
}

fn wait_dead(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) && !zombie(pid) {
        assert!(
            Instant::now() < deadline,
            "{what}: process {pid} outlived its container's init"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(true)
}

/// Live (not zombie) `sleep ARG` processes in the pid namespace `ns` (a readlink target).
fn sleepers(ns: &Path, arg: &str) -> Vec<i32> {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == ns)
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes())
                && !zombie(*pid)
        })
        .collect()
}

both!(shim_stats_of_stopped_container, stats_of_stopped);
/// Stats of a container whose init exited (not deleted yet) are answered, as runc-v2 does
/// from the container's cgroup: containerd asks on every metrics pass.
fn stats_of_stopped(flavor: Flavor) {
    let b = bundle(&["true"]);
    let id = unique_id("stopped");
    let mut shim = Shim::start(flavor, &id, &b);
    shim.run(&id, &b);
    assert_eq!(shim.wait(&id, ""), 0);
    let mut r = StatsRequest::new();
    r.id = id.clone();
    let stats = shim
        .client
        .stats(ctx(), &r)
        .unwrap_or_else(|e| panic!("stats of a stopped container: {e:?}"))
        .stats;
    assert!(
        stats.type_url.starts_with("io.containerd.cgroups.v"),
        "{}",
        stats.type_url
    );
    shim.delete(&id, "").unwrap();
}

both!(
    shim_init_exit_published_after_leftovers_closed_stdout,
    exit_after_leftovers_closed_stdout
);
/// A container without a pid namespace of its own leaves a process holding its stdout. At the
/// init's exit the shim kills what is left (`kill --all`) and publishes the exit only once
/// those processes are gone, so containerd, which closes its end of the stdout fifo at the
/// exit, never cuts a copy short ("Failed to pipe stdout of container" in its log). The
/// leftover is made slow to die, deterministically: this test traces it with
/// `PTRACE_O_TRACEEXIT`, so the SIGKILL stops it inside its exit with its files still open,
/// until the test lets it go 500 ms later. Wait must not answer before that.
fn exit_after_leftovers_closed_stdout(flavor: Flavor) {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "sleep 1003 & echo $!; while [ ! -e /go ]; do sleep 0.02; done",
    ]);
    b.without_namespace("pid");
    b.write();
    let id = unique_id("slowexit");
    let mut shim = Shim::start(flavor, &id, &b);
    let mut reader = std::io::BufReader::new(shim.run_reading(&id, &b));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let leftover: i32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid {line:?}"));

    let (traced, traced_rx) = std::sync::mpsc::channel();
    let tracer =
        std::thread::spawn(move || hold_in_exit(leftover, Duration::from_millis(500), traced));
    traced_rx.recv().expect("tracer attached");
    std::fs::write(b.rootfs().join("go"), "").unwrap();
    assert_eq!(shim.wait(&id, ""), 0);
    let answered = Instant::now();
    let released = tracer.join().expect("tracer thread");
    assert!(
        answered >= released,
        "Wait answered {:?} before the leftover holding stdout was let go",
        released - answered
    );
    let fd = std::os::fd::AsRawFd::as_raw_fd(reader.get_ref());
    // SAFETY: fcntl on an fd this test owns.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut rest = Vec::new();
    if let Err(e) = reader.read_to_end(&mut rest) {
        panic!("stdout still has a writer after the exit: {e}");
    }
    wait_dead(leftover, "host pid namespace");
    shim.delete(&id, "").unwrap();
}

/// Traces `pid` (`PTRACE_SEIZE` with `PTRACE_O_TRACEEXIT`), says so on `attached`, and when
/// it stops in its exit keeps it there for `hold`; the instant it was let go. Every ptrace
/// call is made from this one thread (the tracer).
fn hold_in_exit(pid: i32, hold: Duration, attached: std::sync::mpsc::Sender<()>) -> Instant {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: ptrace requests on a process this test's container left; no memory is passed.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid,
            null,
            libc::PTRACE_O_TRACEEXIT as usize as *mut libc::c_void,
        )
    };
    assert_eq!(
        rc,
        0,
        "PTRACE_SEIZE {pid}: {}",
        std::io::Error::last_os_error()
    );
    attached.send(()).unwrap();
    let exit_stop = libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8);
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our tracee.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        assert_eq!(
            got,
            pid,
            "waitpid {pid}: {}",
            std::io::Error::last_os_error()
        );
        assert!(
            libc::WIFSTOPPED(status),
            "{pid} ended untraced: {status:#x}"
        );
        if status >> 8 == exit_stop {
            std::thread::sleep(hold);
            let released = Instant::now();
            // SAFETY: as above.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, null, null) };
            return released;
        }
        // Any other stop: resume it, handing on the signal it stopped for.
        let sig = libc::WSTOPSIG(status);
        let sig = if sig == libc::SIGTRAP { 0 } else { sig };
        // SAFETY: as above.
        unsafe {
            libc::ptrace(
                libc::PTRACE_CONT,
                pid,
                null,
                sig as usize as *mut libc::c_void,
            )
        };
    }
}
