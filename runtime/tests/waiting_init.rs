//! The init waiting for `start` holds nothing that reaches the host: no fd to the state
//! directory (a container sharing its pid namespace with CAP_SYS_PTRACE walked
//! `/proc/<init>/fd/N/..` into it), only what the container is meant to have and the exec fifo.
mod support;
use support::*;

fn created(rt: &Runtime) -> (Bundle, String, i64) {
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("waiting");
    rt.create(&b, &id);
    let pid = rt.pid(&id);
    (b, id, pid)
}

#[test]
fn waiting_init_holds_no_host_directory() {
    let rt = runtime();
    let (_b, id, pid) = created(&rt);
    let fifo = rt.root_path().join(&id).join("exec.fifo");
    let mut seen = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let n: i32 = e.file_name().to_string_lossy().parse().unwrap();
        let link = std::fs::read_link(e.path()).unwrap();
        seen.push(format!("{n} -> {}", link.display()));
        if n <= 2 {
            continue;
        }
        let text = link.to_string_lossy();
        let pseudo = ["socket:", "pipe:", "anon_inode:"]
            .iter()
            .any(|p| text.starts_with(p));
        // The runtime's log descriptor, released before the wait: the container's /dev/null.
        let null = std::fs::metadata(e.path()).is_ok_and(|m| {
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3)
        });
        assert!(
            pseudo || link == fifo || null,
            "fd {n} of the waiting init: {seen:?}"
        );
        // Whatever it is, it must not be a directory.
        let meta = std::fs::metadata(e.path()).unwrap();
        assert!(!meta.is_dir(), "fd {n} is a directory: {seen:?}");
    }
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn a_neighbour_with_ptrace_cannot_walk_into_the_state_dir() {
    let rt = runtime();
    let (_a, id, pid) = created(&rt);
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "for f in /proc/1/fd/*; do ls -a \"$f/\" \"$f/..\" \"$f/../..\" 2>/dev/null; done; echo listed",
    ]);
    b.namespace("pid", Some(&format!("/proc/{pid}/ns/pid")));
    for set in ["bounding", "effective", "permitted"] {
        b.push(
            &format!("/process/capabilities/{set}"),
            json!("CAP_SYS_PTRACE"),
        );
    }
    let out = rt.run_ok(&b);
    assert!(out.contains("listed"), "{out}");
    assert!(
        !out.contains("state.json") && !out.contains(&id),
        "the waiting init's fds lead to the host: {out}"
    );
    // And start still works: the init still reaches its exec fifo.
    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
}
