//! Pull and push against a real registry: Debian's `docker-registry` on 127.0.0.1, images
//! built by the test (busybox-static) and pushed with `skopeo`. Run as root.
use berth_integration::oci_image::{self, sha256, sha256sum, Layout};
use berth_integration::registry::{Anonymous, Body, FakeRegistry, Registry, Route};
use berth_supervisor::images::progress::Message;
use berth_supervisor::images::registry::Credentials;
use berth_supervisor::images::service::{Error, ImageService, Options};

/// An image service with a private data root.
fn new_service() -> (tempfile::TempDir, ImageService) {
    let dir = tempfile::tempdir().unwrap();
    let service = ImageService::open(Options {
        data_root: dir.path().to_path_buf(),
        insecure_registries: Vec::new(),
        ..Default::default()
    })
    .unwrap();
    (dir, service)
}

/// Pulls and returns the outcome with every progress message.
async fn pull(
    service: &ImageService,
    reference: &str,
    platform: Option<&str>,
    auth: Option<Credentials>,
) -> (
    Result<berth_supervisor::images::metadata::ImageRecord, Error>,
    Vec<Message>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = service.pull(reference, platform, auth, &tx).await;
    drop(tx);
    let mut messages = Vec::new();
    while let Some(m) = rx.recv().await {
        messages.push(m);
    }
    (result, messages)
}

async fn push(service: &ImageService, reference: &str) -> (Result<String, Error>, Vec<Message>) {
    push_as(service, reference, None).await
}

async fn push_as(
    service: &ImageService,
    reference: &str,
    auth: Option<Credentials>,
) -> (Result<String, Error>, Vec<Message>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = service.push(reference, auth, &tx).await;
    drop(tx);
    let mut messages = Vec::new();
    while let Some(m) = rx.recv().await {
        messages.push(m);
    }
    (result, messages)
}

fn statuses(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match &m.id {
            Some(id) => format!("{id}: {}", m.status),
            None => m.status.clone(),
        })
        .collect()
}

fn has(messages: &[Message], status: &str) -> bool {
    messages.iter().any(|m| m.status.starts_with(status))
}

/// Every blob of a platform image is in the store, and `sha256sum` of the stored file
/// equals both its name and the layout's file.
fn assert_stored(service: &ImageService, layout: &Layout, index: usize) {
    let info = &layout.manifests[index];
    let mut digests = vec![info.digest.clone(), info.config.clone()];
    digests.extend(info.layers.iter().cloned());
    for digest in digests {
        let stored = service.content.path(&digest).unwrap();
        assert!(stored.is_file(), "{digest} not in the content store");
        assert_eq!(sha256sum(&stored), digest);
        assert_eq!(sha256sum(&layout.blob_path(&digest)), digest);
    }
}

fn ingest_is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir.join("content/ingest"))
        .map(|d| d.count() == 0)
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_busybox_then_pull_again_fetches_nothing() {
    let registry = Registry::start();
    let layout = oci_image::busybox("latest");
    oci_image::push(&layout, &registry.host(), "busybox", None);
    let (_dir, service) = new_service();
    let reference = format!("{}/busybox", registry.host());

    let (result, messages) = pull(&service, &reference, None, None).await;
    let record = result.unwrap_or_else(|e| panic!("pull: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(record.target.digest, layout.manifests[0].digest);
    assert_eq!(record.config_digest, layout.manifests[0].config);
    assert_eq!(
        record.repo_digest.as_deref(),
        Some(layout.top_digest.as_str())
    );
    assert_stored(&service, &layout, 0);
    let lines = statuses(&messages);
    let layer_id = &layout.manifests[0].layers[0]["sha256:".len()..][..12];
    for expected in [
        "latest: Pulling from busybox".to_string(),
        format!("{layer_id}: Pulling fs layer"),
        format!("{layer_id}: Downloading"),
        format!("{layer_id}: Verifying Checksum"),
        format!("{layer_id}: Download complete"),
        format!("Digest: {}", layout.top_digest),
        format!("Status: Downloaded newer image for {reference}:latest"),
    ] {
        assert!(
            lines.contains(&expected),
            "{expected:?} missing in {lines:#?}"
        );
    }
    let image = service.resolve(&format!("{reference}:latest")).unwrap();
    assert_eq!(image.id, layout.manifests[0].config);
    assert_eq!(
        image.repo_digests(),
        vec![format!("{reference}@{}", layout.top_digest)]
    );
    assert_eq!(
        service.metadata.leased_digests().unwrap(),
        Vec::<String>::new()
    );

    let (result, _) = pull(&service, &format!("{reference}:nope"), None, None).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("not found: manifest unknown"), "{error}");

    let gets = registry.all_blob_gets();
    assert!(gets >= 2, "registry log shows {gets} blob GETs");
    let (result, messages) = pull(&service, &reference, None, None).await;
    result.unwrap();
    assert_eq!(registry.all_blob_gets(), gets, "second pull fetched blobs");
    let lines = statuses(&messages);
    assert!(
        lines.contains(&format!("{layer_id}: Already exists")),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&format!(
            "Status: Image is up to date for {reference}:latest"
        )),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_multi_layer_whiteouts_and_zstd_images() {
    let registry = Registry::start();
    let whiteouts = oci_image::whiteouts("v1");
    let zstd = oci_image::zstd_image("v1");
    oci_image::push(&whiteouts, &registry.host(), "layers", None);
    oci_image::push(&zstd, &registry.host(), "zstd", None);
    let (dir, service) = new_service();
    for (repo, layout) in [("layers", &whiteouts), ("zstd", &zstd)] {
        let reference = format!("{}/{repo}:v1", registry.host());
        let (result, messages) = pull(&service, &reference, None, None).await;
        result.unwrap_or_else(|e| panic!("pull {reference}: {e}\n{:#?}", statuses(&messages)));
        assert_stored(&service, layout, 0);
        let image = service.resolve(&reference).unwrap();
        assert_eq!(image.layer_digests(), layout.manifests[0].layers);
        assert_eq!(image.diff_ids(), layout.manifests[0].diff_ids);
    }
    assert!(ingest_is_empty(dir.path()));
    // The layouts are usable by other tools too.
    let archive = dir.path().join("zstd.tar");
    oci_image::copy_to(&zstd, &format!("oci-archive:{}", archive.display()));
    assert!(archive.metadata().unwrap().len() > 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_selection_from_an_index() {
    let registry = Registry::start();
    let layout = oci_image::two_platform("multi");
    oci_image::push(&layout, &registry.host(), "multi", None);
    let reference = format!("{}/multi:multi", registry.host());
    for (index, platform) in [
        (1, "linux/arm64"),
        (0, "linux/amd64"),
        (1, "linux/arm64/v8"),
    ] {
        let (_dir, service) = new_service();
        let (result, messages) = pull(&service, &reference, Some(platform), None).await;
        let record =
            result.unwrap_or_else(|e| panic!("pull {platform}: {e}\n{:#?}", statuses(&messages)));
        let info = &layout.manifests[index];
        assert_eq!(record.target.digest, info.digest, "{platform}");
        assert_eq!(record.config_digest, info.config, "{platform}");
        assert_eq!(
            record.repo_digest.as_deref(),
            Some(layout.top_digest.as_str())
        );
        assert_stored(&service, &layout, index);
        assert!(service.content.contains(&layout.top_digest));
        let other = &layout.manifests[1 - index];
        assert!(!service.content.contains(&other.config), "{platform}");
        let config = service.read_json(&record.config_digest).unwrap();
        assert_eq!(
            format!("linux/{}", config["architecture"].as_str().unwrap()),
            info.platform.trim_end_matches("/v8")
        );
    }
    if oci_image::host_platform() == "linux/amd64" {
        let (_dir, service) = new_service();
        let (result, _) = pull(&service, &reference, None, None).await;
        assert_eq!(result.unwrap().target.digest, layout.manifests[0].digest);
    }
    let (_dir, service) = new_service();
    let (result, _) = pull(&service, &reference, Some("linux/s390x"), None).await;
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains("no matching manifest for linux/s390x"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_another_registry_then_mount_across_repositories() {
    let source = Registry::start();
    let target = Registry::start();
    let layout = oci_image::whiteouts("v1");
    oci_image::push(&layout, &source.host(), "app", None);
    let (_dir, service) = new_service();
    let (result, _) = pull(&service, &format!("{}/app:v1", source.host()), None, None).await;
    result.unwrap();

    let pushed = format!("{}/team/app:v2", target.host());
    service
        .tag(&format!("{}/app:v1", source.host()), &pushed)
        .unwrap();
    let (result, messages) = push(&service, &pushed).await;
    let digest = result.unwrap_or_else(|e| panic!("push: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(digest, layout.manifests[0].digest);
    let lines = statuses(&messages);
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{}/team/app]", target.host())
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(": Pushed")).count(),
        3,
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.ends_with(": Preparing")));
    assert!(has(&messages, "Pushing"));
    let size = service.content.size(&digest).unwrap();
    assert_eq!(
        lines.last().unwrap(),
        &format!("v2: digest: {digest} size: {size}")
    );
    // What the registry serves is byte for byte what we stored, and skopeo can copy it back.
    let raw = oci_image::remote_raw(&target.host(), "team/app:v2");
    assert_eq!(sha256(&raw), digest);
    let copy = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("docker://{pushed}"))
        .arg(format!("oci:{}:v2", copy.path().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for blob in layout.blobs() {
        let file = copy
            .path()
            .join("blobs/sha256")
            .join(&blob["sha256:".len()..]);
        assert_eq!(sha256sum(&file), blob);
    }

    // Again: everything is there already.
    let (result, messages) = push(&service, &pushed).await;
    result.unwrap();
    let lines = statuses(&messages);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with(": Layer already exists"))
            .count(),
        3,
        "{lines:#?}"
    );

    // Another repository of the same registry: the layers are mounted, not uploaded.
    let other = format!("{}/other:v3", target.host());
    service.tag(&pushed, &other).unwrap();
    let (result, messages) = push(&service, &other).await;
    assert_eq!(result.unwrap(), digest);
    let lines = statuses(&messages);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with(": Mounted from team/app"))
            .count(),
        3,
        "{lines:#?}"
    );
    assert_eq!(
        sha256(&oci_image::remote_raw(&target.host(), "other:v3")),
        digest
    );
    assert!(target.log().contains("mount=sha256"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_login_and_pull() {
    let registry = Registry::start_with_auth("alice", "s3cret");
    let layout = oci_image::busybox("latest");
    oci_image::push(
        &layout,
        &registry.host(),
        "private",
        Some(("alice", "s3cret")),
    );
    let (_dir, service) = new_service();
    let wrong = Credentials {
        username: "alice".into(),
        password: "wrong".into(),
        server_address: registry.host(),
        ..Default::default()
    };
    let error = service.login(&wrong).await.unwrap_err().to_string();
    eprintln!("wrong password: {error}");
    assert!(
        error.contains("unauthorized: incorrect username or password"),
        "{error}"
    );
    let right = Credentials {
        password: "s3cret".into(),
        ..wrong.clone()
    };
    service.login(&right).await.unwrap();
    // The header docker's client sends decodes to the same credentials.
    assert_eq!(Credentials::from_header(&right.to_header()).unwrap(), right);

    let reference = format!("{}/private", registry.host());
    let (result, _) = pull(&service, &reference, None, None).await;
    let error = result.expect_err("anonymous pull worked").to_string();
    assert!(
        error.contains("unauthorized: authentication required"),
        "{error}"
    );
    let (result, _) = pull(&service, &reference, None, Some(wrong)).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("unauthorized"), "{error}");
    let (result, messages) = pull(&service, &reference, None, Some(right.clone())).await;
    result.unwrap_or_else(|e| panic!("pull with credentials: {e}\n{:#?}", statuses(&messages)));
    assert_stored(&service, &layout, 0);

    // Pushing wants the credentials too.
    let pushed = format!("{}/pushed:v1", registry.host());
    service.tag(&reference, &pushed).unwrap();
    let (result, _) = push(&service, &pushed).await;
    let error = result.expect_err("anonymous push worked").to_string();
    assert!(
        error.contains("unauthorized: authentication required"),
        "{error}"
    );
    let (result, messages) = push_as(&service, &pushed, Some(right)).await;
    let digest = result.unwrap_or_else(|e| panic!("push: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(digest, layout.manifests[0].digest);
    assert!(
        has(&messages, "Mounted from private"),
        "{:#?}",
        statuses(&messages)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_blob_is_refused_and_nothing_of_it_kept() {
    let registry = Registry::start();
    let layout = oci_image::busybox("latest");
    oci_image::push(&layout, &registry.host(), "corrupt", None);
    let layer = layout.manifests[0].layers[0].clone();
    let file = registry.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let (dir, service) = new_service();
    let reference = format!("{}/corrupt", registry.host());
    let (result, messages) = pull(&service, &reference, None, None).await;
    let error = result
        .expect_err("pull of a corrupt layer worked")
        .to_string();
    eprintln!("corrupt layer: {error}");
    assert!(
        error.contains("digest"),
        "{error}\n{:#?}",
        statuses(&messages)
    );
    assert!(error.contains(&layer), "{error}");
    assert!(!service.content.contains(&layer));
    assert!(ingest_is_empty(dir.path()));
    assert!(service.resolve(&reference).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_download_a_shared_layer_once() {
    let registry = Registry::start();
    let layout = oci_image::busybox("latest");
    oci_image::push(&layout, &registry.host(), "one", None);
    oci_image::push(&layout, &registry.host(), "two", None);
    let (_dir, service) = new_service();
    let one = format!("{}/one", registry.host());
    let two = format!("{}/two", registry.host());
    let (a, b) = tokio::join!(
        pull(&service, &one, None, None),
        pull(&service, &two, None, None)
    );
    a.0.unwrap();
    b.0.unwrap();
    let layer = &layout.manifests[0].layers[0];
    assert_eq!(registry.blob_gets(layer), 1, "{}", registry.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_a_docker_v2_schema2_manifest_and_by_digest() {
    let registry = Registry::start();
    let layout = oci_image::busybox("latest");
    let digest = oci_image::push_docker_v2s2(&layout, &registry.host(), "docker");
    let (_dir, service) = new_service();
    let reference = format!("{}/docker:latest", registry.host());
    let (result, messages) = pull(&service, &reference, None, None).await;
    let record = result.unwrap_or_else(|e| panic!("pull: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(
        record.target.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(record.target.digest, digest);
    assert_eq!(sha256sum(&service.content.path(&digest).unwrap()), digest);
    for layer in &layout.manifests[0].layers {
        assert_eq!(sha256sum(&service.content.path(layer).unwrap()), *layer);
    }

    // By digest: the name carries the digest, nothing is fetched again.
    let gets = registry.all_blob_gets();
    let by_digest = format!("{}/docker@{digest}", registry.host());
    let (result, messages) = pull(&service, &by_digest, None, None).await;
    let record = result.unwrap_or_else(|e| panic!("pull: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(record.name, by_digest);
    assert_eq!(registry.all_blob_gets(), gets);
    assert_eq!(
        service.resolve(&by_digest).unwrap().id,
        record.config_digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_size_is_refused_and_a_failed_pull_resumes() {
    let registry = Registry::start();
    let layout = oci_image::busybox("latest");
    oci_image::push(&layout, &registry.host(), "sized", None);
    let info = &layout.manifests[0];
    let layer = info.layers[0].clone();
    let file = registry.blob_file(&layer);
    let original = std::fs::read(&file).unwrap();
    let mut longer = original.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&file, &longer).unwrap();

    let (dir, service) = new_service();
    let reference = format!("{}/sized", registry.host());
    let (result, _) = pull(&service, &reference, None, None).await;
    let error = result
        .expect_err("pull of an oversized layer worked")
        .to_string();
    assert!(error.contains(&layer) && error.contains("bytes"), "{error}");
    assert!(!service.content.contains(&layer));
    assert!(ingest_is_empty(dir.path()));
    // What was fetched stays leased through a gc, and the next pull does not fetch it again.
    service.gc().await.unwrap();
    assert!(service.content.contains(&info.config));
    assert!(service.content.contains(&info.digest));
    std::fs::write(&file, &original).unwrap();
    let (result, _) = pull(&service, &reference, None, None).await;
    result.unwrap();
    assert_eq!(registry.blob_gets(&info.config), 1, "config fetched twice");
    assert!(service.metadata.leased_digests().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_registries_are_cut_off() {
    let layer = format!("sha256:{}", "1".repeat(64));
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_image::OCI_MANIFEST,
        "config": { "mediaType": oci_image::OCI_CONFIG, "digest": sha256(config), "size": config.len() },
        "layers": [{ "mediaType": oci_image::LAYER_GZIP, "digest": layer, "size": 1000 }],
    }))
    .unwrap();
    let cut_layer = oci_image::gzip(&vec![7u8; 100_000]);
    let cut = sha256(&cut_layer);
    let cut_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_image::OCI_MANIFEST,
        "config": { "mediaType": oci_image::OCI_CONFIG, "digest": sha256(config), "size": config.len() },
        "layers": [{ "mediaType": oci_image::LAYER_GZIP, "digest": cut, "size": cut_layer.len() }],
    }))
    .unwrap();
    let manifest_type = (
        "Content-Type".to_string(),
        oci_image::OCI_MANIFEST.to_string(),
    );
    let route = |path: String, headers: Vec<(String, String)>, body: Body| Route {
        path,
        headers,
        body,
    };
    let fake = FakeRegistry::start(vec![
        // A manifest that is not what the registry says it is.
        route(
            "/v2/liar/manifests/latest".into(),
            vec![
                manifest_type.clone(),
                (
                    "Docker-Content-Digest".into(),
                    format!("sha256:{}", "2".repeat(64)),
                ),
            ],
            Body::Bytes(manifest.clone()),
        ),
        // A manifest that never ends.
        route(
            "/v2/endless/manifests/latest".into(),
            vec![manifest_type.clone()],
            Body::Endless,
        ),
        // A layer that never ends.
        route(
            "/v2/stream/manifests/latest".into(),
            vec![manifest_type],
            Body::Bytes(manifest),
        ),
        route(
            format!("/v2/stream/blobs/{}", sha256(config)),
            Vec::new(),
            Body::Bytes(config.to_vec()),
        ),
        route(
            format!("/v2/stream/blobs/{layer}"),
            Vec::new(),
            Body::Endless,
        ),
        // A layer whose connection breaks half-way.
        route(
            "/v2/cut/manifests/latest".into(),
            vec![("Content-Type".into(), oci_image::OCI_MANIFEST.into())],
            Body::Bytes(cut_manifest),
        ),
        route(
            format!("/v2/cut/blobs/{}", sha256(config)),
            Vec::new(),
            Body::Bytes(config.to_vec()),
        ),
        route(
            format!("/v2/cut/blobs/{cut}"),
            Vec::new(),
            Body::Truncated(cut_layer),
        ),
    ]);
    let (dir, service) = new_service();
    // A layer cut off mid-way is tried again, then given up.
    let (_cut_dir, cut_service) = new_service();
    let (result, messages) = pull(&cut_service, &format!("{}/cut", fake.host()), None, None).await;
    let error = result.expect_err("truncated layer accepted").to_string();
    assert!(error.contains(&cut), "{error}");
    let lines = statuses(&messages);
    let retries: Vec<&String> = lines.iter().filter(|l| l.contains("Retrying in")).collect();
    assert_eq!(retries.len(), 2, "{lines:#?}");
    assert!(!cut_service.content.contains(&cut));
    let (result, _) = pull(&service, &format!("{}/liar", fake.host()), None, None).await;
    let error = result.expect_err("liar accepted").to_string();
    assert!(error.contains("manifest has digest"), "{error}");
    let (result, _) = pull(&service, &format!("{}/endless", fake.host()), None, None).await;
    let error = result.expect_err("endless manifest accepted").to_string();
    assert!(error.contains("larger than 4194304 bytes"), "{error}");
    assert!(service.content.list().unwrap().is_empty());
    let (result, _) = pull(&service, &format!("{}/stream", fake.host()), None, None).await;
    let error = result.expect_err("endless layer accepted").to_string();
    assert!(
        error.contains(&layer) && error.contains("more than 1000 bytes"),
        "{error}"
    );
    assert!(!service.content.contains(&layer));
    assert!(ingest_is_empty(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_declared_manifests_and_configs_are_refused_unfetched() {
    // An index whose manifest for this platform declares 1e12 bytes and never ends.
    let child = format!("sha256:{}", "3".repeat(64));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_image::OCI_INDEX,
        "manifests": [{
            "mediaType": oci_image::OCI_MANIFEST, "digest": child, "size": 1_000_000_000_000u64,
            "platform": { "os": "linux", "architecture": "amd64" },
        }],
    }))
    .unwrap();
    // A manifest whose config declares 10 GB and never ends.
    let config = format!("sha256:{}", "4".repeat(64));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_image::OCI_MANIFEST,
        "config": { "mediaType": oci_image::OCI_CONFIG, "digest": config, "size": 10_000_000_000u64 },
        "layers": [],
    }))
    .unwrap();
    // An index and a manifest naming a big blob already stored (a layer, say) as a small
    // manifest and a small config.
    let (dir, service) = new_service();
    let stored = service.content.write_blob(&vec![0u8; 5 << 20]).unwrap();
    let small_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_image::OCI_INDEX,
        "manifests": [{
            "mediaType": oci_image::OCI_MANIFEST, "digest": stored, "size": 100,
            "platform": { "os": "linux", "architecture": "amd64" },
        }],
    }))
    .unwrap();
    let small_config = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_image::OCI_MANIFEST,
        "config": { "mediaType": oci_image::OCI_CONFIG, "digest": stored, "size": 100 },
        "layers": [],
    }))
    .unwrap();
    let route = |path: String, content_type: &str, body: Body| Route {
        path,
        headers: vec![("Content-Type".into(), content_type.into())],
        body,
    };
    let fake = FakeRegistry::start(vec![
        route(
            "/v2/stored-index/manifests/latest".into(),
            oci_image::OCI_INDEX,
            Body::Bytes(small_index),
        ),
        route(
            "/v2/stored-config/manifests/latest".into(),
            oci_image::OCI_MANIFEST,
            Body::Bytes(small_config),
        ),
        route(
            "/v2/index/manifests/latest".into(),
            oci_image::OCI_INDEX,
            Body::Bytes(index),
        ),
        route(
            format!("/v2/index/manifests/{child}"),
            oci_image::OCI_MANIFEST,
            Body::Endless,
        ),
        route(
            "/v2/config/manifests/latest".into(),
            oci_image::OCI_MANIFEST,
            Body::Bytes(manifest),
        ),
        route(
            format!("/v2/config/blobs/{config}"),
            "application/octet-stream",
            Body::Endless,
        ),
    ]);
    let started = std::time::Instant::now();
    for name in ["stored-index", "stored-config"] {
        let reference = format!("{}/{name}", fake.host());
        let (result, _) = pull(&service, &reference, Some("linux/amd64"), None).await;
        let error = result.expect_err("mis-sized stored blob used").to_string();
        assert!(
            error.contains(&stored) && error.contains("expected 100 bytes, got 5242880"),
            "{name}: {error}"
        );
    }
    let reference = format!("{}/index", fake.host());
    let (result, _) = pull(&service, &reference, Some("linux/amd64"), None).await;
    let error = result
        .expect_err("huge platform manifest accepted")
        .to_string();
    assert!(
        error.contains(&child) && error.contains("more than the 4194304 allowed"),
        "{error}"
    );
    let (result, _) = pull(&service, &format!("{}/config", fake.host()), None, None).await;
    let error = result.expect_err("huge config accepted").to_string();
    assert!(
        error.contains(&config)
            && error.contains("10000000000 bytes")
            && error.contains("more than the 67108864 allowed"),
        "{error}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!service.content.contains(&child));
    assert!(!service.content.contains(&config));
    assert!(ingest_is_empty(dir.path()));
}

/// Credentials for a registry, with the server address in the form `docker login` stores.
fn credentials(registry: &Registry, user: &str, password: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: password.into(),
        server_address: format!("http://{}/v2/", registry.host()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_login_push_and_pull() {
    // Nobody gets anything without credentials.
    let registry = Registry::start_with_token("bob", "hunter2", Anonymous::Denied);
    let (_dir, service) = new_service();
    let error = service
        .login(&credentials(&registry, "bob", "nope"))
        .await
        .unwrap_err()
        .to_string();
    eprintln!("wrong password: {error}");
    assert!(
        error.contains("unauthorized: incorrect username or password"),
        "{error}"
    );
    let right = credentials(&registry, "bob", "hunter2");
    service.login(&right).await.unwrap();
    let tokens = registry.tokens();
    assert!(tokens.contains(&"bob refused".to_string()), "{tokens:#?}");
    assert!(
        tokens.contains(&"bob scope=repository:berth/login:pull granted=pull".to_string()),
        "{tokens:#?}"
    );

    // An image of our own (loaded from the layout, not pulled from anywhere).
    let layout = oci_image::busybox("latest");
    let source = Registry::start();
    oci_image::push(&layout, &source.host(), "busybox", None);
    let local = format!("{}/busybox", source.host());
    let (result, _) = pull(&service, &local, None, None).await;
    result.unwrap();
    drop(source);

    let pushed = format!("{}/team/busybox:v1", registry.host());
    service.tag(&local, &pushed).unwrap();
    let (result, _) = push(&service, &pushed).await;
    let error = result.expect_err("anonymous push worked").to_string();
    eprintln!("anonymous push: {error}");
    assert!(error.contains("unauthorized"), "{error}");
    assert!(
        registry
            .tokens()
            .iter()
            .any(|l| l.starts_with("- scope=repository:team/busybox:") && l.ends_with("granted=")),
        "{:#?}",
        registry.tokens()
    );
    let (result, messages) = push_as(&service, &pushed, Some(right.clone())).await;
    let digest = result.unwrap_or_else(|e| panic!("push: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(digest, layout.manifests[0].digest);
    assert!(
        registry
            .tokens()
            .iter()
            .any(|l| l.starts_with("bob scope=repository:team/busybox:") && l.contains("push")),
        "{:#?}",
        registry.tokens()
    );
    // The registry itself checked bob's token (a Go registry logs the token's subject).
    assert_eq!(registry.get_status("/v2/"), Some(401));
    let log = registry.settled_log();
    assert!(
        log.lines()
            .any(|l| l.contains("auth.user.name=bob") && l.contains("team/busybox")),
        "{log}"
    );
    // What the registry stored is the layout, byte for byte.
    for blob in layout.blobs() {
        assert_eq!(sha256sum(&registry.blob_file(&blob)), blob);
    }

    // Another daemon pulls it back: not without credentials, with them everything.
    let (_other_dir, other) = new_service();
    let (result, _) = pull(&other, &pushed, None, None).await;
    let error = result.expect_err("anonymous pull worked").to_string();
    eprintln!("anonymous pull: {error}");
    assert!(
        error.contains("unauthorized: authentication required"),
        "{error}"
    );
    let (result, _) = pull(
        &other,
        &pushed,
        None,
        Some(credentials(&registry, "bob", "nope")),
    )
    .await;
    let error = result
        .expect_err("pull with a wrong password worked")
        .to_string();
    assert!(error.contains("unauthorized"), "{error}");
    let (result, messages) = pull(&other, &pushed, None, Some(right)).await;
    let record = result.unwrap_or_else(|e| panic!("pull: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(record.target.digest, layout.manifests[0].digest);
    assert_stored(&other, &layout, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_anonymous_pull_but_not_push() {
    let registry = Registry::start_with_token("bob", "hunter2", Anonymous::Pull);
    let layout = oci_image::whiteouts("v1");
    let (_dir, service) = new_service();
    let source = Registry::start();
    oci_image::push(&layout, &source.host(), "app", None);
    let local = format!("{}/app:v1", source.host());
    let (result, _) = pull(&service, &local, None, None).await;
    result.unwrap();

    let pushed = format!("{}/app:v1", registry.host());
    service.tag(&local, &pushed).unwrap();
    let (result, _) = push(&service, &pushed).await;
    let error = result.expect_err("anonymous push worked").to_string();
    assert!(error.contains("unauthorized"), "{error}");
    assert!(
        registry
            .tokens()
            .iter()
            .any(|l| l.starts_with("- scope=repository:app:") && l.ends_with("granted=pull")),
        "{:#?}",
        registry.tokens()
    );
    let (result, messages) = push_as(
        &service,
        &pushed,
        Some(credentials(&registry, "bob", "hunter2")),
    )
    .await;
    let digest = result.unwrap_or_else(|e| panic!("push: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(digest, layout.manifests[0].digest);

    let (_other_dir, other) = new_service();
    let (result, messages) = pull(&other, &pushed, None, None).await;
    let record =
        result.unwrap_or_else(|e| panic!("anonymous pull: {e}\n{:#?}", statuses(&messages)));
    assert_eq!(record.target.digest, layout.manifests[0].digest);
    assert_stored(&other, &layout, 0);
}
