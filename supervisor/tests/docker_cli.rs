//! Debian's docker CLI (`/usr/bin/docker`, 20.10) against `berth daemon`: the image commands,
//! with output asserted exactly. Images are seeded into the data root, built as
//! docker-archives, or pushed to a local `docker-registry` with skopeo.
mod common;

use berth_supervisor::cli::format::{human_size, tabulate};
use berth_supervisor::images::progress;
use common::*;

fn table(rows: &[&[&str]]) -> String {
    let lines: Vec<String> = rows.iter().map(|r| r.join("\t")).collect();
    tabulate(&lines)
}

#[test]
fn version_info_and_images_table() {
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    assert_eq!(
        ok(docker(
            &d.host,
            &["version", "--format", "{{.Server.APIVersion}}"]
        )),
        "1.41\n"
    );
    assert_eq!(
        ok(docker(&d.host, &["info", "--format", "{{.Images}}"])),
        "1\n"
    );
    let size = human_size(image.layer.len() as f64);
    let expected = table(&[
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        &["busybox", "latest", &short(&image.id), "2 weeks ago", &size],
    ]);
    assert_eq!(ok(docker(&d.host, &["images"])), expected);
    assert_eq!(ok(docker(&d.host, &["image", "ls"])), expected);
    assert_eq!(
        ok(docker(&d.host, &["images", "-q"])),
        format!("{}\n", short(&image.id))
    );
    assert_eq!(
        ok(docker(
            &d.host,
            &[
                "images",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Repository}}:{{.Tag}}"
            ]
        )),
        format!("{} busybox:latest\n", image.id)
    );
    // Reference filter: a miss lists only the header.
    assert_eq!(
        ok(docker(&d.host, &["images", "nothing"])),
        table(&[&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]])
    );
    assert_eq!(
        ok(docker(&d.host, &["images", "-q", "busybox:latest"])).trim(),
        short(&image.id)
    );
}

#[test]
fn inspect_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    let out = ok(docker(&d.host, &["image", "inspect", "busybox"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Id"], image.id.as_str());
    assert_eq!(v[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v[0]["Os"], "linux");
    let fmt = "{{.Id}} {{json .RootFS}} {{.Config.Cmd}}";
    assert_eq!(
        ok(docker(
            &d.host,
            &["image", "inspect", "--format", fmt, "busybox"]
        )),
        format!(
            "{} {{\"Layers\":[\"{}\"],\"Type\":\"layers\"}} [sh]\n",
            image.id, image.diff_id
        )
    );
    let add: String = ADD_LINE.chars().take(44).collect::<String>() + "…";
    let expected = table(&[
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &[&short(&image.id), "2 weeks ago", CMD_LINE, "0B", ""],
        &["<missing>", "2 weeks ago", &add, "0B", ""],
    ]);
    assert_eq!(ok(docker(&d.host, &["history", "busybox"])), expected);
    assert_eq!(
        ok(docker(
            &d.host,
            &[
                "history",
                "--no-trunc",
                "--format",
                "{{.CreatedBy}}",
                "busybox"
            ]
        )),
        format!("{CMD_LINE}\n{ADD_LINE}\n")
    );
}

#[test]
fn tag_rmi_and_unknown_images() {
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    ok(docker(
        &d.host,
        &["tag", "busybox", "127.0.0.1:5000/app/web:v1"],
    ));
    // Names of one image come in Go's random map order: compare them sorted.
    let listed = ok(docker(
        &d.host,
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    ));
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(names, ["127.0.0.1:5000/app/web:v1", "busybox:latest"]);
    let inspect = [
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "127.0.0.1:5000/app/web:v1",
    ];
    assert_eq!(ok(docker(&d.host, &inspect)), format!("{}\n", image.id));
    assert_eq!(
        ok(docker(&d.host, &["rmi", "127.0.0.1:5000/app/web:v1"])),
        "Untagged: 127.0.0.1:5000/app/web:v1\n"
    );

    let out = docker(&d.host, &["rmi", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: No such image: x\n");
    let out = docker(&d.host, &["image", "inspect", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "[]\n");
    assert_eq!(stderr(&out), "Error: No such image: x\n");
    let out = docker(&d.host, &["history", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error response from daemon: No such image: x\n"
    );
    let out = docker(&d.host, &["tag", "x", "y"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error response from daemon: No such image: x\n"
    );

    assert_eq!(
        ok(docker(&d.host, &["rmi", "busybox"])),
        format!("Untagged: busybox:latest\nDeleted: {}\n", image.id)
    );
    assert_eq!(
        ok(docker(&d.host, &["info", "--format", "{{.Images}}"])),
        "0\n"
    );
}

#[test]
fn image_prune_dangling_then_all() {
    let dir = tempfile::tempdir().unwrap();
    let old = busybox_image("old", 20);
    let new = busybox_image("new", 15);
    seed(&dir.path().join("data"), "busybox", &old);
    seed(&dir.path().join("data"), "busybox", &new);
    let d = start(dir.path());
    let size = |i: &TestImage| human_size(i.layer.len() as f64);
    assert_eq!(
        ok(docker(&d.host, &["images"])),
        table(&[
            &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            &[
                "busybox",
                "latest",
                &short(&new.id),
                "2 weeks ago",
                &size(&new)
            ],
            &[
                "<none>",
                "<none>",
                &short(&old.id),
                "2 weeks ago",
                &size(&old)
            ],
        ])
    );
    assert_eq!(
        ok(docker(
            &d.host,
            &["images", "-q", "--filter", "dangling=true"]
        )),
        format!("{}\n", short(&old.id))
    );
    let reclaimed = (old.layer.len() + old.config.len() + old.manifest.len()) as f64;
    assert_eq!(
        ok(docker(&d.host, &["image", "prune", "-f"])),
        format!(
            "Deleted Images:\ndeleted: {}\n\nTotal reclaimed space: {}\n",
            old.id,
            progress::human_size(reclaimed, 4)
        )
    );
    assert_eq!(
        ok(docker(&d.host, &["image", "prune", "-f"])),
        "Total reclaimed space: 0B\n"
    );
    let out = ok(docker(&d.host, &["image", "prune", "-a", "-f"]));
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: busybox:latest\ndeleted: {}\n\nTotal reclaimed space: ",
            new.id
        )),
        "{out}"
    );
    assert_eq!(ok(docker(&d.host, &["images", "-q"])), "");
}

/// Waits on `ImageService::save` and `load` (service/transfer.rs).
#[test]
fn save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    seed(&dir.path().join("data"), "busybox", &image);
    let d = start(dir.path());
    let saved = dir.path().join("busybox.tar");
    ok(docker(
        &d.host,
        &["save", "-o", saved.to_str().unwrap(), "busybox"],
    ));
    let mut archive = tar::Archive::new(std::fs::File::open(&saved).unwrap());
    let manifest = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|e| serde_json::from_reader::<_, serde_json::Value>(e).unwrap())
        .expect("manifest.json in the saved archive");
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["busybox:latest"])
    );

    ok(docker(&d.host, &["rmi", "busybox"]));
    assert_eq!(
        ok(docker(&d.host, &["load", "-i", saved.to_str().unwrap()])),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(
        ok(docker(
            &d.host,
            &["image", "inspect", "--format", "{{.Id}}", "busybox"]
        )),
        format!("{}\n", image.id)
    );

    let other = busybox_image("two", 3);
    let built = dir.path().join("hello.tar");
    std::fs::write(&built, docker_archive(&other, &["hello:v1"])).unwrap();
    assert_eq!(
        ok(docker(&d.host, &["load", "-i", built.to_str().unwrap()])),
        "Loaded image: hello:v1\n"
    );
    assert_eq!(
        ok(docker(
            &d.host,
            &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]
        )),
        format!(
            "hello:v1 {}\nbusybox:latest {}\n",
            short(&other.id),
            short(&image.id)
        )
    );
    let nope = dir.path().join("nope.tar");
    let out = docker(&d.host, &["save", "-o", nope.to_str().unwrap(), "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error response from daemon: "),
        "{out:?}"
    );
}

/// Waits on `ImageService::pull` and `push` (service/pull.rs, service/push.rs).
#[test]
fn pull_and_push_with_local_registry() {
    let registry = start_registry();
    let dir = tempfile::tempdir().unwrap();
    let image = busybox_image("one", 15);
    let archive = dir.path().join("busybox.tar");
    std::fs::write(&archive, docker_archive(&image, &["busybox:v1"])).unwrap();
    skopeo_push(&archive, &format!("{}/busybox:v1", registry.addr));
    let d = start(dir.path());

    let name = format!("{}/busybox:v1", registry.addr);
    let out = ok(docker(&d.host, &["pull", &name]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "v1: Pulling from busybox", "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&name.as_str()), "{out}");
    assert_eq!(
        ok(docker(
            &d.host,
            &["image", "inspect", "--format", "{{.Id}}", &name]
        )),
        format!("{}\n", image.id)
    );
    // A second pull finds the image up to date and says so once, as the service reports it.
    let again = ok(docker(&d.host, &["pull", &name]));
    let statuses: Vec<&str> = again.lines().filter(|l| l.starts_with("Status:")).collect();
    assert_eq!(
        statuses,
        [format!("Status: Image is up to date for {name}")],
        "{again}"
    );
    assert_eq!(
        again.lines().filter(|l| l.starts_with("Digest:")).count(),
        1,
        "{again}"
    );

    let copy = format!("{}/copy:v2", registry.addr);
    ok(docker(&d.host, &["tag", &name, &copy]));
    let out = ok(docker(&d.host, &["push", &copy]));
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/copy]\n",
            registry.addr
        )),
        "{out}"
    );
    assert!(out.contains("v2: digest: sha256:"), "{out}");
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{copy}"))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{inspect:?}");

    // `push -a` (an empty tag) pushes every local tag of the repository, and only those.
    let all = format!("{}/all", registry.addr);
    for tag in ["a", "b"] {
        ok(docker(&d.host, &["tag", &name, &format!("{all}:{tag}")]));
    }
    ok(docker(
        &d.host,
        &["tag", &name, &format!("{}/other:c", registry.addr)],
    ));
    let out = ok(docker(&d.host, &["push", "--all-tags", &all]));
    let refers = format!("The push refers to repository [{all}]");
    assert_eq!(out.lines().filter(|l| *l == refers).count(), 1, "{out}");
    assert!(out.contains("\na: digest: sha256:"), "{out}");
    assert!(out.contains("\nb: digest: sha256:"), "{out}");
    assert_eq!(registry_tags(&all), ["a", "b"]);
    assert!(registry_tags(&format!("{}/other", registry.addr)).is_empty());
    let out = docker(&d.host, &["push", "-a", &format!("{}/none", registry.addr)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let out = docker(&d.host, &["pull", &format!("{}/nope:v1", registry.addr)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error response from daemon: "),
        "{out:?}"
    );
}

/// The tags a registry has for a repository (`skopeo list-tags`); none if it has no such
/// repository.
fn registry_tags(repository: &str) -> Vec<String> {
    let out = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{repository}"))
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = listing["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    tags.sort();
    tags
}
