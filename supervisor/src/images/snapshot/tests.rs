//! Snapshotter tests: both backends, real mounts (in a private mount namespace of the test's
//! own thread, so nothing leaks even if a test fails).
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::images::layer::tests::RawTar;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Three layers: a base, one with changes and whiteouts, one removing a directory.
fn layers() -> Vec<Vec<u8>> {
    let l1 = RawTar::default()
        .dir("bin")
        .entry(
            crate::images::layer::tests::Kind::File,
            "bin/tool",
            "",
            b"#!",
            0o4755,
        )
        .dir("etc")
        .file("etc/a", b"1")
        .file("etc/b", b"2")
        .dir("d")
        .file("d/x", b"x")
        .file("d/y", b"y")
        .finish();
    let l2 = RawTar::default()
        .dir("etc")
        .file("etc/a", b"1-new")
        .file("etc/.wh.b", b"")
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/z", b"z")
        .file("new", b"n")
        .finish();
    let l3 = RawTar::default()
        .file(".wh.bin", b"")
        .file("etc/c", b"c")
        .finish();
    vec![l1, l2, l3]
}

/// The view the three layers make.
fn expected_view() -> Vec<String> {
    [
        "d/ dir 755",
        "d/z file 644 z",
        "etc/ dir 755",
        "etc/a file 644 1-new",
        "etc/c file 644 c",
        "new file 644 n",
    ]
    .map(String::from)
    .to_vec()
}

/// A sorted listing `path kind mode [content|target]` of a tree.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out.sort();
    out
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let rel = rel.join(name);
        let full = root.join(&rel);
        let meta = fs::symlink_metadata(&full).unwrap();
        let mode = meta.mode() & 0o7777;
        let r = rel.display();
        let kind = meta.file_type();
        if kind.is_dir() {
            out.push(format!("{r}/ dir {mode:o}"));
            walk(root, &rel, out);
        } else if kind.is_file() {
            let content = String::from_utf8_lossy(&fs::read(&full).unwrap()).into_owned();
            out.push(format!("{r} file {mode:o} {content}"));
        } else if kind.is_symlink() {
            out.push(format!(
                "{r} symlink {}",
                fs::read_link(&full).unwrap().display()
            ));
        } else if kind.is_char_device() {
            out.push(format!("{r} char {}", meta.rdev()));
        } else {
            out.push(format!("{r} other"));
        }
    }
}

fn open(dir: &Path, backend: Backend) -> Snapshotter {
    let metadata = Arc::new(Metadata::open(&dir.join("meta")).unwrap());
    Snapshotter::open_with(&dir.join("snapshots"), metadata, Some(backend)).unwrap()
}

/// Unpacks `layers` as a chain; returns the chain IDs.
fn unpack_all(s: &Snapshotter, layers: &[Vec<u8>]) -> Vec<String> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let chains = chain_ids(&diff_ids);
    let mut parent: Option<&str> = None;
    for (i, layer) in layers.iter().enumerate() {
        let record = s
            .unpack(&chains[i], parent, &layer[..], &diff_ids[i])
            .unwrap();
        assert_eq!(record.kind, SnapshotKind::Committed);
        parent = Some(&chains[i]);
    }
    chains
}

/// Moves the calling thread into a private mount namespace.
fn private_mounts() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
}

/// Mounts `mounts`, lists the tree, unmounts.
fn list_mounted(mounts: &[Mount], target: &Path) -> Vec<String> {
    mount_all(mounts, target).unwrap();
    let seen = listing(target);
    unmount(target).unwrap();
    seen
}

fn view_of(backend: Backend) -> (Vec<Mount>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), backend);
    assert_eq!(s.backend(), backend);
    let chains = unpack_all(&s, &layers());
    let mounts = s.view(chains.last().unwrap()).unwrap();
    let target = dir.path().join("mnt");
    fs::create_dir(&target).unwrap();
    let seen = list_mounted(&mounts, &target);
    (mounts, seen)
}

#[test]
fn overlay_is_detected_here() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = Arc::new(Metadata::open(&dir.path().join("meta")).unwrap());
    let s = Snapshotter::open(&dir.path().join("snapshots"), metadata).unwrap();
    assert_eq!(s.backend(), Backend::Overlay);
    assert_eq!(
        fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
        0
    );
}

#[test]
fn overlay_stack_shows_exactly_the_expected_files() {
    private_mounts();
    let (mounts, seen) = view_of(Backend::Overlay);
    assert_eq!(mounts[0].kind, "overlay");
    assert!(mounts[0].options.contains(&"ro".to_string()));
    assert_eq!(seen, expected_view());
}

#[test]
fn copying_fallback_shows_the_same_view() {
    private_mounts();
    let (mounts, seen) = view_of(Backend::Copy);
    assert_eq!(mounts[0].kind, "bind");
    assert_eq!(seen, expected_view());
}

#[test]
fn single_layer_view_is_a_read_only_bind() {
    private_mounts();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Overlay);
    let chains = unpack_all(&s, &layers()[..1]);
    let mounts = s.view(&chains[0]).unwrap();
    assert_eq!(mounts[0].kind, "bind");
    let target = dir.path().join("mnt");
    fs::create_dir(&target).unwrap();
    mount_all(&mounts, &target).unwrap();
    assert_eq!(
        fs::metadata(target.join("bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert!(fs::write(target.join("etc/a"), b"no").is_err());
    unmount(&target).unwrap();
}

#[test]
fn diff_id_mismatch_leaves_nothing() {
    for backend in [Backend::Overlay, Backend::Copy] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), backend);
        let layer = &layers()[0];
        let wrong = digest(b"something else");
        let err = s.unpack(&wrong, None, &layer[..], &wrong).unwrap_err();
        assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
        assert!(s.metadata.snapshots().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
            0
        );
    }
}

#[test]
fn malicious_layer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Overlay);
    let layer = RawTar::default()
        .file("ok", b"1")
        .file("../escape", b"x")
        .finish();
    let err = s
        .unpack("k", None, &layer[..], &digest(&layer))
        .unwrap_err();
    assert!(err.to_string().contains("../escape"), "{err}");
    assert!(s.metadata.snapshots().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
        0
    );
    assert!(!dir.path().join("escape").exists());
}

/// A reader that counts how many times it was read.
struct Counted<'a> {
    bytes: &'a [u8],
    reads: &'a AtomicUsize,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.bytes.read(buf)
    }
}

#[test]
fn concurrent_unpacks_of_one_key_extract_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Overlay);
    let layer = layers().remove(0);
    let diff_id = digest(&layer);
    let counts: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
    let records: Vec<SnapshotRecord> = std::thread::scope(|scope| {
        let handles: Vec<_> = counts
            .iter()
            .map(|reads| {
                let (s, layer, diff_id) = (&s, &layer, &diff_id);
                scope.spawn(move || {
                    let reader = Counted {
                        bytes: layer,
                        reads,
                    };
                    s.unpack(diff_id, None, reader, diff_id).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let extracted = counts
        .iter()
        .filter(|c| c.load(Ordering::SeqCst) > 0)
        .count();
    assert_eq!(extracted, 1);
    assert!(records.iter().all(|r| *r == records[0]));
    assert_eq!(s.metadata.snapshots().unwrap().len(), 1);
}

#[test]
fn open_removes_stale_dirs_and_finishes_commits() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Copy);
    let chains = unpack_all(&s, &layers()[..1]);
    let record = s.stat(&chains[0]).unwrap();
    fs::create_dir_all(dir.path().join("snapshots/999/fs/half")).unwrap();
    s.metadata
        .put_snapshot(&SnapshotRecord {
            key: "container".into(),
            kind: SnapshotKind::Active,
            ..record.clone()
        })
        .unwrap();
    drop(s);
    let s = open(dir.path(), Backend::Copy);
    assert!(!dir.path().join("snapshots/999").exists());
    assert!(s.fs_dir(&record).join("etc/a").exists());
    // Opening also flushed the layer written in this boot.
    let flushed = SnapshotRecord {
        unsynced_boot: None,
        ..record
    };
    assert_eq!(s.metadata.snapshots().unwrap(), vec![flushed]);
    assert!(s.next_id.load(Ordering::SeqCst) > 1);
}

#[test]
fn parents_are_not_removed_before_children() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Overlay);
    let chains = unpack_all(&s, &layers()[..2]);
    let bottom = s.stat(&chains[0]).unwrap();
    let err = s.remove(&chains[0]).unwrap_err();
    assert!(matches!(err, Error::HasChildren { .. }), "{err}");
    s.remove(&chains[1]).unwrap();
    s.remove(&chains[0]).unwrap();
    assert!(!s.fs_dir(&bottom).exists());
    assert!(matches!(s.remove(&chains[0]), Err(Error::NotFound(_))));
}

/// Makes changes through the mounted active snapshot the way a container would.
fn change(root: &Path) {
    fs::write(root.join("etc/a"), b"changed").unwrap();
    fs::remove_file(root.join("new")).unwrap();
    fs::remove_dir_all(root.join("d")).unwrap();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("d/fresh"), b"fresh").unwrap();
    fs::remove_dir_all(root.join("etc")).unwrap();
    fs::create_dir(root.join("added")).unwrap();
    fs::write(root.join("added/file"), b"added").unwrap();
    fs::create_dir(root.join("etc")).unwrap();
    fs::write(root.join("etc/c"), b"c2").unwrap();
    fs::set_permissions(
        root.join("etc/c"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4711),
    )
    .unwrap();
}

fn prepare_write_commit(backend: Backend) {
    private_mounts();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), backend);
    let all = layers();
    let chains = unpack_all(&s, &all);
    let top = chains.last().unwrap();
    let mounts = s.prepare("c1", Some(top)).unwrap();
    assert!(matches!(s.prepare("c1", Some(top)), Err(Error::Exists(_))));
    let target = dir.path().join("mnt");
    fs::create_dir(&target).unwrap();
    mount_all(&mounts, &target).unwrap();
    change(&target);
    let want = listing(&target);
    unmount(&target).unwrap();

    let committed = s.commit("layer-c1", "c1").unwrap();
    assert_eq!(committed.parent.as_deref(), Some(top.as_str()));
    assert!(matches!(s.stat("c1"), Err(Error::NotFound(_))));
    assert_eq!(list_mounted(&s.view("layer-c1").unwrap(), &target), want);

    let mut tar = Vec::new();
    let exported = s.diff("layer-c1", &mut tar).unwrap();
    assert_eq!(exported.diff_id, digest(&tar));
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&".wh.new".to_string()), "{names:?}");
    if backend == Backend::Overlay {
        // Overlay made the recreated directories opaque.
        assert!(names.contains(&"d/.wh..wh..opq".to_string()), "{names:?}");
    } else {
        assert!(names.contains(&"d/.wh.z".to_string()), "{names:?}");
    }
    // The image's layers applied in place, then the new one: the same tree.
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    for layer in all.iter().chain(std::iter::once(&tar)) {
        layer::apply(&layer[..], &plain, &ApplyOptions::default()).unwrap();
    }
    assert_eq!(listing(&plain), want);
    // And as a snapshot on top of the image's.
    let diff_ids: Vec<String> = all
        .iter()
        .chain(std::iter::once(&tar))
        .map(|l| digest(l))
        .collect();
    let next = chain_ids(&diff_ids).pop().unwrap();
    s.unpack(&next, Some(top), &tar[..], &exported.diff_id)
        .unwrap();
    assert_eq!(list_mounted(&s.view(&next).unwrap(), &target), want);
}

#[test]
fn prepare_write_commit_gives_a_layer_that_applies_overlay() {
    prepare_write_commit(Backend::Overlay);
}

#[test]
fn prepare_write_commit_gives_a_layer_that_applies_copying() {
    prepare_write_commit(Backend::Copy);
}

#[test]
fn active_snapshot_without_parent_is_a_writable_bind() {
    private_mounts();
    for backend in [Backend::Overlay, Backend::Copy] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), backend);
        let mounts = s.prepare("scratch", None).unwrap();
        assert_eq!(
            mounts,
            vec![Mount::bind(&s.fs_dir(&s.stat("scratch").unwrap()), false)]
        );
        let target = dir.path().join("mnt");
        fs::create_dir(&target).unwrap();
        mount_all(&mounts, &target).unwrap();
        fs::write(target.join("hello"), b"hi").unwrap();
        unmount(&target).unwrap();
        let committed = s.commit("base", "scratch").unwrap();
        assert_eq!(committed.size, 2);
        assert!(matches!(
            s.commit("base", "scratch"),
            Err(Error::NotFound(_))
        ));
        let mut tar = Vec::new();
        s.diff("base", &mut tar).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["hello"]);
    }
}

#[test]
fn active_overlay_mounts_name_upper_and_work() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Overlay);
    let chains = unpack_all(&s, &layers()[..2]);
    let mounts = s.prepare("c", Some(&chains[1])).unwrap();
    let record = s.stat("c").unwrap();
    let layer = |k: &str| s.fs_dir(&s.stat(k).unwrap()).display().to_string();
    let options = &mounts[0].options;
    assert_eq!(
        options[0],
        format!("lowerdir={}:{}", layer(&chains[1]), layer(&chains[0]))
    );
    assert_eq!(
        options[1],
        format!("upperdir={}", s.fs_dir(&record).display())
    );
    assert!(options[2].starts_with("workdir="));
    assert_eq!(s.mounts("c").unwrap(), mounts);
    assert!(matches!(s.view("c"), Err(Error::WrongKind { .. })));
}

#[test]
fn a_stack_too_long_for_one_page_of_options_still_mounts() {
    private_mounts();
    let dir = tempfile::tempdir().unwrap();
    let deep = dir
        .path()
        .join("a-rather-long-directory-name-to-make-paths-long");
    let s = open(&deep, Backend::Overlay);
    let layers: Vec<Vec<u8>> = (0..120)
        .map(|i| RawTar::default().file(&format!("f{i}"), b"x").finish())
        .collect();
    let chains = unpack_all(&s, &layers);
    let mounts = s.view(chains.last().unwrap()).unwrap();
    assert!(mounts[0].options.join(",").len() > 4096);
    let target = dir.path().join("mnt");
    fs::create_dir(&target).unwrap();
    let seen = list_mounted(&mounts, &target);
    assert_eq!(seen.len(), 120);
    assert!(seen.contains(&"f0 file 644 x".to_string()));
    assert!(seen.contains(&"f119 file 644 x".to_string()));
}

#[test]
fn unflushed_layers_of_an_earlier_boot_are_forgotten_with_their_children() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Overlay);
    let chains = unpack_all(&s, &layers());
    assert!(chains
        .iter()
        .all(|k| s.stat(k).unwrap().unsynced_boot == Some(durable::boot_id())));
    assert_eq!(s.flush().unwrap(), chains.len());
    assert!(chains
        .iter()
        .all(|k| s.stat(k).unwrap().unsynced_boot.is_none()));
    // The middle layer as if written before a power loss: it and the layer above it go.
    let mut middle = s.stat(&chains[1]).unwrap();
    middle.unsynced_boot = Some("an-earlier-boot".into());
    s.metadata.put_snapshot(&middle).unwrap();
    let metadata = s.metadata.clone();
    drop(s);
    let s = Snapshotter::open_with(&dir.path().join("snapshots"), metadata, None).unwrap();
    assert!(s.stat(&chains[0]).is_ok());
    for key in &chains[1..] {
        assert!(matches!(s.stat(key), Err(Error::NotFound(_))), "{key} kept");
    }
    let left = fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(left, 1, "directories of forgotten snapshots left");
}

#[test]
fn a_containers_layers_are_kept_even_if_unflushed_before_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Backend::Overlay);
    let chains = unpack_all(&s, &layers());
    s.prepare("container", Some(chains.last().unwrap()))
        .unwrap();
    let mut bottom = s.stat(&chains[0]).unwrap();
    bottom.unsynced_boot = Some("an-earlier-boot".into());
    s.metadata.put_snapshot(&bottom).unwrap();
    let metadata = s.metadata.clone();
    drop(s);
    let s = Snapshotter::open_with(&dir.path().join("snapshots"), metadata, None).unwrap();
    for key in chains.iter().chain([&"container".to_string()]) {
        assert!(s.stat(key).is_ok(), "{key} forgotten under a container");
    }
}
