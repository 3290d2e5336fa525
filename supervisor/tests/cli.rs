//! The `berth` CLI against `berth daemon`: its output must be what docker's CLI prints for the
//! same daemon, byte for byte, with docker's exit codes and error wording.
mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use base64::Engine;
use common::*;

/// Runs the same arguments through docker and berth; both must agree.
fn same(host: &str, args: &[&str]) -> String {
    let d = docker(host, args);
    let b = berth(host, args);
    assert_eq!(
        stdout(&b),
        stdout(&d),
        "stdout of {args:?}\nberth stderr: {}",
        stderr(&b)
    );
    assert_eq!(stderr(&b), stderr(&d), "stderr of {args:?}");
    assert_eq!(b.status.code(), d.status.code(), "exit code of {args:?}");
    stdout(&b)
}

#[test]
fn listings_match_docker() {
    let dir = tempfile::tempdir().unwrap();
    let old = busybox_image("old", 40);
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &old);
    seed(&dir.path().join("data"), "busybox", &image);
    // One name per image: docker orders the names of one image at random.
    let web = busybox_image("web", 3);
    seed(&dir.path().join("data"), "127.0.0.1:5000/app/web:v1", &web);
    let d = start(dir.path());
    for args in [
        &["images"][..],
        &["image", "ls"],
        &["images", "-q"],
        &["images", "-a"],
        &["images", "--digests"],
        &["images", "--no-trunc"],
        &["images", "busybox"],
        &["images", "--filter", "dangling=true"],
        &[
            "images",
            "--format",
            "{{.ID}}: {{.Repository}}:{{.Tag}} {{.Size}}",
        ],
        &[
            "images",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.CreatedAt}}",
        ],
        &["history", "busybox"],
        &["history", "--no-trunc", "busybox"],
        &["history", "-q", "busybox"],
        &[
            "history",
            "--format",
            "{{.ID}} {{.CreatedSince}} {{.Size}}",
            "busybox",
        ],
        &["image", "inspect", "busybox"],
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{json .RootFS}} {{.Config.Cmd}}",
            "busybox",
        ],
        &[
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}} {{.Config.Env}} {{json .RepoTags}}",
            "busybox",
        ],
    ] {
        same(&d.host, args);
    }
    let out = ok(berth(&d.host, &["images", "--format", "json"]));
    let row: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["Repository"], "127.0.0.1:5000/app/web");
    assert_eq!(row["CreatedSince"], "3 days ago");
}

#[test]
fn changes_and_errors_match_docker() {
    let dir = tempfile::tempdir().unwrap();
    let old = busybox_image("old", 40);
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &old);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    for args in [
        &["rmi", "x"][..],
        &["image", "inspect", "x"],
        &["history", "x"],
        &["tag", "x", "y"],
        &["image", "rm", "nope:v1"],
    ] {
        same(&d.host, args);
    }
    ok(berth(
        &d.host,
        &["tag", "busybox", "127.0.0.1:5000/app/web:v1"],
    ));
    assert_eq!(
        ok(berth(&d.host, &["rmi", "127.0.0.1:5000/app/web:v1"])),
        "Untagged: 127.0.0.1:5000/app/web:v1\n"
    );
    let pruned = ok(berth(&d.host, &["image", "prune", "-f"]));
    assert!(
        pruned.starts_with(&format!(
            "Deleted Images:\ndeleted: {}\n\nTotal reclaimed space: ",
            old.id
        )),
        "{pruned}"
    );
    // Without -f it asks, and "n" keeps everything.
    let mut child = Command::new(BERTH)
        .args(["-H", &d.host, "image", "prune", "-a"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        stdout(&out),
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(
        ok(berth(&d.host, &["rmi", "busybox"])),
        format!("Untagged: busybox:latest\nDeleted: {}\n", image.id)
    );
    same(&d.host, &["images"]);
}

#[test]
fn usage_help_and_exit_codes() {
    let out = Command::new(BERTH).arg("--help").output().unwrap();
    let help = stdout(&out);
    for command in [
        "daemon", "version", "info", "pull", "push", "images", "tag", "rmi", "history", "save",
        "load", "login", "logout", "image",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command} missing from\n{help}"
        );
    }
    let out = Command::new(BERTH)
        .args(["tag", "onlyone"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(BERTH)
        .args(["images", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BERTH)
        .args(["logout", "127.0.0.1:5000"])
        .env("BERTH_CONFIG", dir.path())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "Not logged in to 127.0.0.1:5000\n");
}

/// Waits on `ImageService::login` (service/pull.rs).
#[test]
fn login_stores_credentials_0600_and_logout_removes_them() {
    let registry = start_registry();
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let mut child = Command::new(BERTH)
        .args([
            "-H",
            &d.host,
            "login",
            "-u",
            "tester",
            "--password-stdin",
            &registry.addr,
        ])
        .env("BERTH_CONFIG", config_dir(&d.host))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "Login Succeeded\n", "{}", stderr(&out));
    let path = config_dir(&d.host).join("config.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode("tester:secret");
    assert_eq!(config["auths"][&registry.addr]["auth"], expected.as_str());
    assert_eq!(
        ok(berth(&d.host, &["logout", &registry.addr])),
        format!("Removing login credentials for {}\n", registry.addr)
    );
}

/// Waits on `ImageService::save` and `load` (service/transfer.rs).
#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    let file = dir.path().join("out.tar");
    ok(berth(
        &d.host,
        &["save", "-o", file.to_str().unwrap(), "busybox"],
    ));
    let piped = Command::new(BERTH)
        .args(["-H", &d.host, "save", "busybox"])
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    assert_eq!(
        piped.stdout.len() as u64,
        std::fs::metadata(&file).unwrap().len()
    );
    ok(berth(&d.host, &["rmi", "busybox"]));
    assert_eq!(
        ok(berth(&d.host, &["load", "-i", file.to_str().unwrap()])),
        "Loaded image: busybox:latest\n"
    );
    let other = busybox_image("two", 3);
    let built = dir.path().join("hello.tar");
    std::fs::write(&built, docker_archive(&other, &["hello:v1"])).unwrap();
    let out = Command::new(BERTH)
        .args(["-H", &d.host, "load", "-q"])
        .stdin(std::fs::File::open(&built).unwrap())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "Loaded image: hello:v1\n", "{}", stderr(&out));
}

/// Waits on `ImageService::pull` and `push` (service/pull.rs, service/push.rs).
#[test]
fn pull_and_push_plain_progress() {
    let registry = start_registry();
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    let archive = dir.path().join("busybox.tar");
    std::fs::write(&archive, docker_archive(&image, &["busybox:v1"])).unwrap();
    skopeo_push(&archive, &format!("{}/busybox:v1", registry.addr));
    let d = start(dir.path());
    let name = format!("{}/busybox:v1", registry.addr);
    let out = ok(berth(&d.host, &["pull", &name]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "v1: Pulling from busybox", "{out}");
    // Layers are named by their blob digest, which skopeo's push compressed: one layer, one id.
    let layer_ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_suffix(": Pulling fs layer"))
        .collect();
    assert_eq!(layer_ids.len(), 1, "{out}");
    assert!(
        layer_ids[0].len() == 12 && layer_ids[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "{out}"
    );
    assert!(
        lines.contains(&format!("{}: Pull complete", layer_ids[0]).as_str()),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&name.as_str()), "{out}");
    let again = ok(berth(&d.host, &["pull", &name]));
    let statuses: Vec<&str> = again.lines().filter(|l| l.starts_with("Status:")).collect();
    assert_eq!(
        statuses,
        [format!("Status: Image is up to date for {name}")],
        "{again}"
    );
    assert_eq!(
        ok(berth(&d.host, &["pull", "-q", &name])),
        format!("{name}\n")
    );
    let copy = format!("{}/copy:v2", registry.addr);
    ok(berth(&d.host, &["tag", &name, &copy]));
    let out = ok(berth(&d.host, &["push", &copy]));
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/copy]\n",
            registry.addr
        )),
        "{out}"
    );
    assert!(out.contains("v2: digest: sha256:"), "{out}");
    let out = berth(&d.host, &["push", &format!("{}/none:v1", registry.addr)]);
    assert_eq!(out.status.code(), Some(1));
    // Without a tag, `latest` only (like docker); `-a` pushes every tag of the repository.
    let all = format!("{}/all", registry.addr);
    for tag in ["latest", "x", "y"] {
        ok(berth(&d.host, &["tag", &name, &format!("{all}:{tag}")]));
    }
    let out = ok(berth(&d.host, &["push", &all]));
    assert!(out.starts_with("Using default tag: latest\n"), "{out}");
    assert!(out.contains("\nlatest: digest: sha256:"), "{out}");
    assert!(!out.contains("\nx: digest:"), "{out}");
    let out = ok(berth(&d.host, &["push", "-a", &all]));
    for tag in ["latest", "x", "y"] {
        assert!(out.contains(&format!("\n{tag}: digest: sha256:")), "{out}");
    }
    let out = berth(&d.host, &["push", "-a", &format!("{all}:x")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("tag can't be used with --all-tags/-a"),
        "{out:?}"
    );
}
