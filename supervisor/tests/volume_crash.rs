//! kill -9 of the daemon, again and again, while volumes are created, removed and pruned:
//! afterwards every volume listed has its data directory and every data directory a volume
//! (no half volume), every create and rm the CLI saw succeed holds, and the volumes nothing
//! removed (an unused one, one a container uses) keep their data byte for byte.
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{berth, busybox_image, ok, seed, start, BERTH};

/// `sh -c SCRIPT` with `$B` the berth CLI on `host` and `$P` the directory `progress`,
/// output discarded.
fn background(host: &str, progress: &Path, script: &str) -> Child {
    Command::new("sh")
        .args(["-c", script])
        .env("B", format!("{BERTH} -H {host}"))
        .env("P", progress)
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

/// The names a client loop wrote to `file` after the CLI said yes.
fn acknowledged(file: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// No half volume: what the daemon lists is exactly what is on disk, each with its `_data`,
/// and each inspects.
fn assert_whole(host: &str, data_root: &Path, round: usize) {
    let names = listed(host);
    assert_eq!(names, volume_dirs(data_root), "round {round}");
    for name in &names {
        let data = data_root.join("volumes").join(name).join("_data");
        assert!(data.is_dir(), "round {round}: {name} has no _data");
    }
    let mut args = vec!["volume", "inspect"];
    args.extend(names.iter().map(String::as_str));
    let inspected: serde_json::Value = serde_json::from_str(&ok(berth(host, &args))).unwrap();
    let inspected: BTreeSet<String> = inspected
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(inspected, names, "round {round}");
}

fn assert_kept(data_root: &Path, precious: &[u8], round: usize) {
    for name in ["keep", "used"] {
        let file = data_root.join("volumes").join(name).join("_data/sub/file");
        let data = std::fs::read(&file).unwrap_or_default();
        assert!(data == precious, "round {round}: {name}'s data changed");
    }
}

const ROUNDS: usize = 12;
const PER_ROUND: usize = 40;

#[test]
fn kill_9_during_volume_create_rm_prune_leaves_no_half_volume_and_loses_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().join("progress");
    std::fs::create_dir(&progress).unwrap();
    let precious: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    seed(&dir.path().join("data"), "busybox", &busybox_image("vc", 1));
    {
        let daemon = start(dir.path());
        let h = &daemon.host;
        ok(berth(h, &["volume", "create", "keep"]));
        // Selected by every prune and rm below, and spared only because `holder` uses it.
        ok(berth(h, &["volume", "create", "--label", "tmp=1", "used"]));
        ok(berth(
            h,
            &[
                "create", "--name", "holder", "-v", "used:/u", "busybox", "true",
            ],
        ));
        for name in ["keep", "used"] {
            let data = daemon.data_root.join("volumes").join(name).join("_data");
            std::fs::create_dir(data.join("sub")).unwrap();
            std::fs::write(data.join("sub/file"), &precious).unwrap();
        }
    }
    let mut created = BTreeSet::new();
    let mut removed = BTreeSet::new();
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        let daemon = start(dir.path());
        let host = daemon.host.clone();
        assert_whole(&host, &daemon.data_root, round);
        assert_kept(&daemon.data_root, &precious, round);
        // Every create and rm the CLI confirmed holds after the kills. `s*` volumes are
        // touched by no prune, only by their create and the next round's rm (whose effect
        // is unknown when the kill cut its answer off).
        created.extend(acknowledged(&progress.join("created")));
        removed.extend(acknowledged(&progress.join("removed")));
        let tried = acknowledged(&progress.join("tried"));
        let names = listed(&host);
        let lost: Vec<_> = created
            .iter()
            .filter(|n| !tried.contains(*n) && !names.contains(*n))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: confirmed creates lost: {lost:?}"
        );
        let back: Vec<_> = names.intersection(&removed).collect();
        assert!(
            back.is_empty(),
            "round {round}: removed volumes came back: {back:?}"
        );

        let create = format!(
            "for i in $(seq {PER_ROUND}); do \
               $B volume create --label tmp=1 r{round}v$i && \
               $B volume create --label stay=1 s{round}v$i && echo s{round}v$i >> $P/created; \
             done"
        );
        let rm = format!(
            "for i in $(seq {PER_ROUND}); do \
               echo s{p}v$i >> $P/tried; $B volume rm s{p}v$i && echo s{p}v$i >> $P/removed; \
               $B volume rm used; \
             done",
            p = round.saturating_sub(1),
        );
        let prune = "for i in $(seq 20); do $B volume prune -f --filter label=tmp; done";
        let clients = vec![
            background(&host, &progress, &create),
            background(&host, &progress, &rm),
            background(&host, &progress, prune),
        ];
        // Kill at a different moment each round (not a timed assertion: any moment will do).
        std::thread::sleep(Duration::from_millis(30 + (round as u64 * 97) % 700));
        // SAFETY: signals our own child.
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGKILL) };
        for mut client in clients {
            let _ = client.wait();
        }
        let made = acknowledged(&progress.join("created"));
        let this_round = made
            .iter()
            .filter(|n| n.starts_with(&format!("s{round}v")))
            .count();
        eprintln!("round {round}: {this_round} of {PER_ROUND} creates confirmed before the kill");
        if this_round < PER_ROUND {
            interrupted += 1;
        }
        drop(daemon);
    }
    // The kills came while the clients were at work (else this tested nothing).
    assert!(
        interrupted >= ROUNDS / 2,
        "only {interrupted} of {ROUNDS} rounds were cut short"
    );
    assert!(!created.is_empty() && !removed.is_empty());

    let daemon = start(dir.path());
    let h = &daemon.host;
    assert_whole(h, &daemon.data_root, ROUNDS);
    assert_kept(&daemon.data_root, &precious, ROUNDS);
    created.extend(acknowledged(&progress.join("created")));
    removed.extend(acknowledged(&progress.join("removed")));
    let tried = acknowledged(&progress.join("tried"));
    let names = listed(h);
    assert!(
        created
            .iter()
            .all(|n| tried.contains(n) || names.contains(n)),
        "a confirmed create was lost"
    );
    assert!(names.is_disjoint(&removed), "a removed volume came back");
    // The daemon still works on this store: prune removes all the rest but what is kept.
    ok(berth(
        h,
        &["volume", "prune", "-f", "--filter", "label=tmp"],
    ));
    ok(berth(
        h,
        &["volume", "prune", "-f", "--filter", "label=stay"],
    ));
    assert_eq!(
        listed(h),
        BTreeSet::from(["keep".to_string(), "used".to_string()])
    );
    assert_whole(h, &daemon.data_root, ROUNDS + 1);
    // Once its container is gone, `used` goes too.
    ok(berth(h, &["rm", "holder"]));
    ok(berth(h, &["volume", "rm", "used"]));
    assert_eq!(listed(h), BTreeSet::from(["keep".to_string()]));
}
