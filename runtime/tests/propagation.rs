//! `linux.rootfsPropagation`: honoured on the container's `/` (shared, unbindable, private),
//! and `rshared` works with a rootfs that is itself a mount point (containerd's overlay; a
//! bind-mounted rootfs reproduces it), as runc makes private the mount holding the rootfs.
mod support;
use std::process::Command;
use support::*;

/// The optional fields (shared:N, master:N, unbindable) of the container's `/` mount.
fn root_tags(mountinfo: &str) -> Vec<String> {
    let line = mount_line(mountinfo, "/");
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-").unwrap();
    fields[6..sep]
        .iter()
        .map(|f| f.split(':').next().unwrap().to_string())
        .collect()
}

fn mountinfo_with(propagation: &str) -> String {
    sh_with("cat /proc/self/mountinfo", |b| {
        b.set("/linux/rootfsPropagation", json!(propagation));
    })
}

#[test]
fn shared_is_set_on_the_new_root() {
    let info = mountinfo_with("shared");
    assert_eq!(root_tags(&info), ["shared"], "{}", mount_line(&info, "/"));
    let info = mountinfo_with("rshared");
    assert_eq!(root_tags(&info), ["shared"], "{}", mount_line(&info, "/"));
}

#[test]
fn unbindable_is_set_on_the_new_root() {
    let info = mountinfo_with("unbindable");
    assert_eq!(
        root_tags(&info),
        ["unbindable"],
        "{}",
        mount_line(&info, "/")
    );
}

#[test]
fn private_and_the_default_leave_the_root_unshared() {
    for p in ["private", "rprivate"] {
        let info = mountinfo_with(p);
        assert!(
            root_tags(&info).is_empty(),
            "{p}: {}",
            mount_line(&info, "/")
        );
    }
}

#[test]
fn rshared_with_a_rootfs_that_is_a_mount_point() {
    let rt = runtime();
    let mut b = Bundle::new(&["cat", "/proc/self/mountinfo"]);
    b.set("/linux/rootfsPropagation", json!("rshared"));
    b.write();
    let id = unique_id("rshared-mp");
    // In a mount namespace of the test's own where everything is shared, as on a systemd
    // host; the rootfs bind-mounted onto itself is then a shared mount point.
    let script = format!(
        "set -e; mount --make-rshared /; mount --bind {r} {r}; \
         {bin} --root {root} run --bundle {b} {id}",
        r = b.rootfs().display(),
        bin = runtime_bin().display(),
        root = rt.root_path().display(),
        b = b.path_str(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "unchanged", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        root_tags(&stdout),
        ["shared"],
        "{}",
        mount_line(&stdout, "/")
    );
}
