//! kill -9 of the daemon, again and again, while volumes are created, removed and pruned:
//! afterwards every volume listed has its data directory and every data directory a volume
//! (no half volume), and a volume nothing removed keeps its data byte for byte.
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{berth, ok, start, BERTH};

/// `sh -c SCRIPT` with `$B` the berth CLI on `host`, output discarded.
fn background(host: &str, script: &str) -> Child {
    Command::new("sh")
        .args(["-c", script])
        .env("B", format!("{BERTH} -H {host}"))
        .env("BERTH_CONFIG", common::config_dir(host))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The volume directories under the data root (not the store file).
fn volume_dirs(data_root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(data_root.join("volumes"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn listed(host: &str) -> BTreeSet<String> {
    ok(berth(host, &["volume", "ls", "-q"]))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// No half volume: what the daemon lists is exactly what is on disk, each with its `_data`.
fn assert_whole(host: &str, data_root: &Path, round: usize) {
    let names = listed(host);
    assert_eq!(names, volume_dirs(data_root), "round {round}");
    for name in &names {
        let data = data_root.join("volumes").join(name).join("_data");
        assert!(data.is_dir(), "round {round}: {name} has no _data");
        let inspect = ok(berth(host, &["volume", "inspect", name]));
        assert!(inspect.contains(&format!("\"Name\": \"{name}\"")), "{inspect}");
    }
}

#[test]
fn kill_9_during_volume_create_rm_prune_leaves_no_half_volume_and_loses_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let precious: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let daemon = start(dir.path());
        ok(berth(&daemon.host, &["volume", "create", "keep"]));
        let data = daemon.data_root.join("volumes/keep/_data");
        std::fs::create_dir(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/file"), &precious).unwrap();
    }
    for round in 0..12usize {
        let daemon = start(dir.path());
        let host = daemon.host.clone();
        assert_whole(&host, &daemon.data_root, round);
        let create = format!(
            "for i in $(seq 40); do $B volume create --label tmp=1 r{round}v$i; done"
        );
        let rm = format!(
            "for i in $(seq 40); do $B volume rm r{}v$i; $B volume rm -f keep-not-$i; done",
            round.saturating_sub(1)
        );
        let prune = "for i in $(seq 20); do $B volume prune -f --filter label=tmp; done";
        let clients = vec![
            background(&host, &create),
            background(&host, &rm),
            background(&host, prune),
        ];
        // Kill at a different moment each round (not a timed assertion: any moment will do).
        std::thread::sleep(Duration::from_millis(30 + (round as u64 * 97) % 700));
        // SAFETY: signals our own child.
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGKILL) };
        for mut client in clients {
            let _ = client.wait();
        }
        drop(daemon);
    }
    let daemon = start(dir.path());
    assert_whole(&daemon.host, &daemon.data_root, 99);
    assert!(listed(&daemon.host).contains("keep"));
    let kept = daemon.data_root.join("volumes/keep/_data/sub/file");
    assert_eq!(std::fs::read(kept).unwrap(), precious, "keep's data changed");
    // The daemon still works on this store: prune removes all the rest.
    ok(berth(
        &daemon.host,
        &["volume", "prune", "-f", "--filter", "label=tmp"],
    ));
    assert_eq!(listed(&daemon.host), BTreeSet::from(["keep".to_string()]));
    assert_whole(&daemon.host, &daemon.data_root, 100);
}
