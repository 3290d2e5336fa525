//! The outside review of the image service (issue 11): each attack reproduced with archives
//! and registries made here, and what must hold instead.
mod common;

use std::path::Path;

use berth_supervisor::images::content::digest_of;
use berth_supervisor::images::metadata::{self, ImageRecord};
use berth_supervisor::images::service::{ImageService, Options};
use serde_json::{json, Value};

fn service(root: &Path) -> ImageService {
    ImageService::open(Options {
        data_root: root.to_path_buf(),
        ..Default::default()
    })
    .unwrap()
}

/// A tarball of regular files.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn config_for(layers: &[Vec<u8>], cmd: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest_of(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A docker-archive of images given as (tags, layers, cmd).
fn docker_archive(images: &[(&[&str], &[Vec<u8>], &str)]) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest = Vec::new();
    for (tags, layers, cmd) in images {
        let config = config_for(layers, cmd);
        let hex = digest_of(&config)[7..].to_string();
        let mut paths = Vec::new();
        for layer in layers.iter() {
            let path = format!("{}/layer.tar", &digest_of(layer)[7..]);
            if !files.iter().any(|(p, _)| *p == path) {
                files.push((path.clone(), layer.clone()));
            }
            paths.push(path);
        }
        files.push((format!("{hex}.json"), config));
        manifest.push(json!({"Config": format!("{hex}.json"), "RepoTags": tags, "Layers": paths}));
    }
    files.push(("manifest.json".into(), serde_json::to_vec(&manifest).unwrap()));
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    tar_of(&refs)
}

fn file_layer(name: &str, data: &[u8]) -> Vec<u8> {
    tar_of(&[(name, data)])
}

fn saved_config_digest(svc: &ImageService, name: &str) -> String {
    let mut out = Vec::new();
    svc.save(&[name.to_string()], &mut out).unwrap();
    let mut archive = tar::Archive::new(out.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == "manifest.json" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            let manifest: Value = serde_json::from_str(&text).unwrap();
            let config = manifest[0]["Config"].as_str().unwrap();
            let hex = config.trim_start_matches("blobs/sha256/").trim_end_matches(".json");
            return format!("sha256:{hex}");
        }
    }
    panic!("no manifest.json in the saved archive");
}

// 1. A loaded archive cannot claim a genuine digest.
#[test]
fn an_archive_cannot_name_an_image_by_a_digest_reference() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let genuine = file_layer("etc/genuine", b"genuine");
    svc.load(&mut docker_archive(&[(&["reg.example/busybox:1"], &[genuine], "sh")]).as_slice(), None)
        .unwrap();
    let real = svc.resolve("reg.example/busybox:1").unwrap();
    let real_digest = real.records[0].target.digest.clone();
    let by_digest = format!("reg.example/busybox@{real_digest}");
    assert_eq!(svc.resolve(&by_digest).unwrap().id, real.id);

    let evil = file_layer("etc/evil", b"evil");
    let attack = docker_archive(&[(&[by_digest.as_str()], &[evil], "evil")]);
    let err = svc.load(&mut attack.as_slice(), None).expect_err("digest name loaded");
    let err = err.to_string();
    assert!(err.contains("invalid tag") && err.contains(&by_digest), "{err}");
    let also_tagged = format!("reg.example/busybox:1@{real_digest}");
    let attack = docker_archive(&[(&[also_tagged.as_str()], &[file_layer("x", b"x")], "evil")]);
    assert!(svc.load(&mut attack.as_slice(), None).is_err(), "tag@digest name loaded");

    assert_eq!(svc.resolve(&by_digest).unwrap().id, real.id, "inspect by digest");
    assert_eq!(saved_config_digest(&svc, &by_digest), real.id, "save by digest");
    assert!(svc.tag("reg.example/busybox:1", &by_digest).is_err());
}

// 1. A digest name recorded for other content (by an older daemon, or by hand) is not
// believed: a lookup by digest checks what the record points at.
#[test]
fn a_lookup_by_digest_checks_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.load(&mut docker_archive(&[(&["reg.example/app:1"], &[file_layer("a", b"a")], "a")]).as_slice(), None)
        .unwrap();
    svc.load(&mut docker_archive(&[(&["evil.example/x:1"], &[file_layer("e", b"e")], "e")]).as_slice(), None)
        .unwrap();
    let real = svc.resolve("reg.example/app:1").unwrap();
    let evil = svc.resolve("evil.example/x:1").unwrap();
    let forged = format!("reg.example/app@{}", real.records[0].target.digest);
    let record = ImageRecord {
        name: forged.clone(),
        target: evil.records[0].target.clone(),
        config_digest: evil.id.clone(),
        repo_digest: None,
        updated: metadata::now(),
    };
    assert!(svc.set_name(record.clone()).is_err(), "a forged digest name was set");
    // As an older daemon stored it.
    svc.metadata.put_image(&record).unwrap();
    let found = svc.resolve(&forged).unwrap();
    assert_eq!(found.id, real.id, "the forged record was believed");
    let unknown = format!("reg.example/app@sha256:{}", "0".repeat(64));
    assert!(svc.resolve(&unknown).is_err());
}
