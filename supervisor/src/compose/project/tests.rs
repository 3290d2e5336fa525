use super::*;

fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("My_App.")
        .tempdir()
        .unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}

fn opts(d: &tempfile::TempDir) -> Options {
    Options {
        cwd: d.path().to_path_buf(),
        ..Default::default()
    }
}

fn err(files: &[(&str, &str)]) -> String {
    let d = dir(files);
    load(&opts(&d)).unwrap_err().to_string()
}

#[test]
fn discovers_and_merges_the_override_file() {
    let d = dir(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: busybox\n    ports: ['80']\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  web:\n    ports: ['81:81']\n    user: nobody\n",
        ),
    ]);
    let sub = d.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mut o = opts(&d);
    o.cwd = sub;
    let p = load(&o).unwrap();
    let web = &p.services["web"];
    assert_eq!(web.ports.len(), 2);
    assert_eq!(web.user.as_deref(), Some("nobody"));
    assert_eq!(p.config_files.len(), 2);
    assert_eq!(p.working_dir, d.path());
    assert!(p.name.starts_with("my_app"), "{}", p.name);
    assert_eq!(p.networks["default"].name, format!("{}_default", p.name));
}

#[test]
fn env_file_and_environment_interpolate() {
    let d = dir(&[
        (".env", "TAG=1.36\nPORT=8080\nCOMPOSE_PROJECT_NAME=demo\n"),
        (
            "docker-compose.yml",
            "services:\n  web:\n    image: busybox:${TAG}\n    ports: ['${PORT}:80']\n\
             \x20   command: echo $${HOME} ${UNSET:-fallback}\n",
        ),
    ]);
    let mut o = opts(&d);
    o.environ.insert("PORT".into(), "9090".into());
    let p = load(&o).unwrap();
    assert_eq!(p.name, "demo");
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("busybox:1.36"));
    assert_eq!(web.ports[0].published.as_deref(), Some("9090"));
    assert_eq!(
        web.command.as_deref().unwrap(),
        ["echo", "${HOME}", "fallback"]
    );
}

#[test]
fn several_files_named_with_f() {
    let d = dir(&[
        (
            "a.yml",
            "services:\n  web:\n    image: a\n    environment: [A=1]\nvolumes:\n  data:\n",
        ),
        (
            "b.yml",
            "services:\n  web:\n    image: b\n    environment:\n      B: 2\n",
        ),
    ]);
    let mut o = opts(&d);
    o.files = vec!["a.yml".into(), "b.yml".into()];
    o.project_name = Some("p".into());
    let p = load(&o).unwrap();
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("b"));
    assert_eq!(web.environment.len(), 2);
    assert_eq!(p.volumes["data"].name, "p_data");
}

#[test]
fn profiles_enable_services() {
    let text = "services:\n  web: {image: a}\n  debug: {image: b, profiles: [dev]}\n";
    let d = dir(&[("compose.yaml", text)]);
    let p = load(&opts(&d)).unwrap();
    assert!(p.services.contains_key("web") && p.disabled.contains_key("debug"));
    let mut o = opts(&d);
    o.environ.insert("COMPOSE_PROFILES".into(), "dev".into());
    assert!(load(&o).unwrap().services.contains_key("debug"));
    let mut o = opts(&d);
    o.named_services = vec!["debug".into()];
    assert!(load(&o).unwrap().services.contains_key("debug"));
}

#[test]
fn extends_from_another_file() {
    let d = dir(&[
        (
            "base.yml",
            "services:\n  common: {image: busybox, user: nobody}\n",
        ),
        (
            "compose.yaml",
            "services:\n  web:\n    extends: {file: base.yml, service: common}\n    user: root\n",
        ),
    ]);
    let p = load(&opts(&d)).unwrap();
    assert_eq!(p.services["web"].image.as_deref(), Some("busybox"));
    assert_eq!(p.services["web"].user.as_deref(), Some("root"));
}

#[test]
fn malformed_yaml_names_line_and_column() {
    let e = err(&[("compose.yaml", "services:\n  web:\n    image: \"busybox\n")]);
    assert!(
        e.contains("compose.yaml:3:12: while scanning a quoted scalar"),
        "{e}"
    );
}

#[test]
fn unknown_keys_name_their_path() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    imag: b\n",
    )]);
    assert!(
        e.contains("compose.yaml:4:11: services.web.imag: unknown key"),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    ports:\n      - {target: 80, publish: 1}\n",
    )]);
    assert!(
        e.contains("services.web.ports[0].publish: unknown key"),
        "{e}"
    );
    let e = err(&[("compose.yaml", "servics:\n  web: {image: a}\n")]);
    assert!(e.contains("servics: unknown key"), "{e}");
}

#[test]
fn wrong_types_name_their_path() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    ports:\n      - [80]\n",
    )]);
    assert!(
        e.contains("compose.yaml:5:9: services.web.ports[0]: must be a string"),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    privileged: maybe\n",
    )]);
    assert!(
        e.contains("services.web.privileged: must be a boolean"),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: a\n    ports: ['99999:80']\n",
    )]);
    assert!(
        e.contains("services.web.ports[0]") && e.contains("not a port mapping"),
        "{e}"
    );
}

#[test]
fn missing_required_variable() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: ${IMAGE:?set IMAGE first}\n",
    )]);
    assert!(e.contains("services.web.image"), "{e}");
    assert!(
        e.contains("required variable IMAGE is missing a value: set IMAGE first"),
        "{e}"
    );
}

#[test]
fn references_and_cycles() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  web: {image: a, depends_on: [db]}\n",
    )]);
    assert!(
        e.contains("services.web.depends_on: depends on undefined service \"db\""),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web: {image: a, networks: [back]}\n",
    )]);
    assert!(e.contains("undefined network \"back\""), "{e}");
    let e = err(&[(
        "compose.yaml",
        "services:\n  web: {image: a, volumes: ['data:/d']}\n",
    )]);
    assert!(
        e.contains("services.web.volumes: refers to undefined volume \"data\""),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  a: {image: a, depends_on: [b]}\n  b: {image: a, depends_on: [a]}\n",
    )]);
    assert!(
        e.contains("dependency cycle between services: a -> b -> a"),
        "{e}"
    );
}

#[test]
fn no_file_and_bad_project_names() {
    let d = dir(&[]);
    let e = load(&opts(&d)).unwrap_err().to_string();
    assert!(e.contains("no configuration file provided"), "{e}");
    let d = dir(&[("compose.yaml", "services: {}\n")]);
    let mut o = opts(&d);
    o.project_name = Some("Bad Name".into());
    let e = load(&o).unwrap_err().to_string();
    assert!(e.contains("invalid project name \"Bad Name\""), "{e}");
}

#[test]
fn service_needs_image_or_build() {
    let e = err(&[("compose.yaml", "services:\n  web: {user: root}\n")]);
    assert!(
        e.contains("services.web: has neither an image nor a build context"),
        "{e}"
    );
    let d = dir(&[("compose.yaml", "services:\n  app:\n    build: ./app\n    healthcheck:\n      test: wget -q localhost\n      interval: 1s\n")]);
    let p = load(&opts(&d)).unwrap();
    let app = &p.services["app"];
    assert_eq!(app.build.as_ref().unwrap().context, d.path().join("./app"));
    let hc = app.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test, ["CMD-SHELL", "wget -q localhost"]);
    assert_eq!(hc.interval, Some(1_000_000_000));
}
