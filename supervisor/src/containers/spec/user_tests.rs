use std::os::unix::fs::symlink;

use super::*;
use crate::containers::spec::tests::Fixture;

fn resolve_in(f: &Fixture, user: &str, add: &[&str]) -> Result<Identity, SpecError> {
    let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
    resolve(&f.rootfs(), user, &add)
}

fn ids(i: &Identity) -> (u32, u32, Vec<u32>) {
    (i.uid, i.gid, i.additional_gids.clone())
}

/// What dockerd 20.10 put in `process.user` for the same `-u` on the same image.
#[test]
fn users_resolve_as_under_dockerd() {
    let f = Fixture::new();
    for (user, add, want) in [
        ("", &[][..], (0, 0, vec![0])),
        ("1000:1000", &[], (1000, 1000, vec![1000])),
        ("1000", &[], (1000, 1001, vec![1001, 100, 2000])),
        ("4242", &[], (4242, 0, vec![0])),
        ("alice:extra", &[], (1000, 2000, vec![2000])),
        ("0:extra", &[], (0, 2000, vec![2000])),
        ("nobody", &["5", "5"], (65534, 65534, vec![65534, 5])),
        ("4242:4343", &[], (4242, 4343, vec![4343])),
        (
            "alice",
            &["10", "extra"],
            (1000, 1001, vec![1001, 100, 2000, 10, 2000]),
        ),
    ] {
        assert_eq!(
            ids(&resolve_in(&f, user, add).unwrap()),
            want,
            "-u {user:?} --group-add {add:?}"
        );
    }
    assert_eq!(resolve_in(&f, "alice", &[]).unwrap().home, "/home/alice");
}

#[test]
fn unknown_names_and_bad_ids_are_refused() {
    let f = Fixture::new();
    assert_eq!(
        resolve_in(&f, "bob", &[]).unwrap_err().to_string(),
        "unable to find user bob: no matching entries in passwd file"
    );
    assert_eq!(
        resolve_in(&f, "alice:nogroup", &[])
            .unwrap_err()
            .to_string(),
        "unable to find group nogroup: no matching entries in group file"
    );
    let e = resolve_in(&f, "4294967296", &[]).unwrap_err().to_string();
    assert!(e.contains("User \"4294967296\""), "{e}");
    assert!(resolve_in(&f, "-1", &[])
        .unwrap_err()
        .to_string()
        .contains("unable to find user -1"));
}

#[test]
fn missing_files_allow_numeric_ids_only() {
    let f = Fixture::new();
    std::fs::remove_file(f.rootfs().join("etc/passwd")).unwrap();
    std::fs::remove_file(f.rootfs().join("etc/group")).unwrap();
    assert_eq!(ids(&resolve_in(&f, "", &[]).unwrap()), (0, 0, vec![0]));
    assert_eq!(
        ids(&resolve_in(&f, "7:8", &["9"]).unwrap()),
        (7, 8, vec![8, 9])
    );
    assert!(resolve_in(&f, "alice", &[]).is_err());
}

/// An image whose /etc/passwd is a symlink to an absolute path or climbs out with `..` must
/// not make the daemon read the host's file: the link is resolved inside the rootfs.
#[test]
fn symlinks_are_resolved_inside_the_rootfs() {
    let f = Fixture::new();
    let host_dir = tempfile::tempdir().unwrap();
    let host_passwd = host_dir.path().join("passwd");
    std::fs::write(&host_passwd, "evil:x:0:0::/:/bin/sh\n").unwrap();
    let etc = f.rootfs().join("etc");
    std::fs::remove_file(etc.join("passwd")).unwrap();
    symlink(&host_passwd, etc.join("passwd")).unwrap();
    assert!(
        resolve_in(&f, "evil", &[]).is_err(),
        "the absolute link left the rootfs"
    );
    // The same path inside the rootfs is what is read.
    let inside = f.rootfs().join(host_passwd.strip_prefix("/").unwrap());
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::write(&inside, "inside:x:5:6::/:/bin/sh\n").unwrap();
    assert_eq!(
        ids(&resolve_in(&f, "inside", &[]).unwrap()),
        (5, 6, vec![6])
    );

    std::fs::remove_file(etc.join("passwd")).unwrap();
    let depth = f.rootfs().components().count() + 2;
    let climb = format!(
        "{}{}",
        "../".repeat(depth),
        host_passwd.strip_prefix("/").unwrap().display()
    );
    symlink(&climb, etc.join("passwd")).unwrap();
    assert_eq!(
        ids(&resolve_in(&f, "inside", &[]).unwrap()),
        (5, 6, vec![6]),
        "`..` stops at the rootfs"
    );
}

#[test]
fn a_passwd_that_is_not_a_file_is_refused_without_blocking() {
    let f = Fixture::new();
    let passwd = f.rootfs().join("etc/passwd");
    std::fs::remove_file(&passwd).unwrap();
    nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let e = resolve_in(&f, "alice", &[]).unwrap_err().to_string();
    assert!(
        e.contains("not a regular file") && e.contains("etc/passwd"),
        "{e}"
    );
}
