use super::*;

fn options(dir: &std::path::Path) -> Options {
    Options {
        data_root: dir.to_path_buf(),
        bip: "10.213.0.1/24".into(),
        bridge: "bt0".into(),
        pools: vec!["base=10.214.0.0/23,size=24".parse().unwrap()],
        firewall: false,
    }
}

fn create(s: &NetworkService, name: &str, subnet: &str) -> Result<Network, Error> {
    let mut req = CreateRequest {
        name: name.into(),
        ..Default::default()
    };
    if !subnet.is_empty() {
        req.ipam = Some(IpamRequest {
            config: Some(vec![PoolRequest {
                subnet: subnet.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }
    s.create(&req)
}

#[test]
fn predefined_networks_and_bip() {
    let dir = tempfile::tempdir().unwrap();
    let s = NetworkService::open(&options(dir.path())).unwrap();
    let names: Vec<String> = s.list().into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["bridge", "host", "none"]);
    let bridge = s.find("bridge").unwrap();
    assert_eq!(bridge.pools[0].subnet.to_string(), "10.213.0.0/24");
    assert_eq!(bridge.pools[0].gateway.to_string(), "10.213.0.1");
    assert_eq!(bridge.bridge_name().as_deref(), Some("bt0"));
    let e = s.remove("bridge").unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (
            403,
            "bridge is a pre-defined network and cannot be removed".into()
        )
    );
    // Same ids after a restart.
    drop(s);
    let again = NetworkService::open(&options(dir.path())).unwrap();
    assert_eq!(again.find("bridge").unwrap().id, bridge.id);
}

#[test]
fn subnets_from_pools_overlaps_and_exhaustion() {
    let dir = tempfile::tempdir().unwrap();
    let s = NetworkService::open(&options(dir.path())).unwrap();
    let a = create(&s, "a", "").unwrap();
    let b = create(&s, "b", "").unwrap();
    assert_ne!(a.pools[0].subnet, b.pools[0].subnet);
    for n in [&a, &b] {
        assert!("10.214.0.0/23"
            .parse::<Ipv4Net>()
            .unwrap()
            .contains(&n.pools[0].subnet));
    }
    let e = create(&s, "c", "").unwrap_err();
    assert_eq!(e.status(), 403, "{e}");
    assert!(e.to_string().contains("non-overlapping IPv4 address pool"));
    let e = create(&s, "d", "10.213.0.128/25").unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (
            403,
            "Pool overlaps with other one on this address space".into()
        )
    );
    let e = create(&s, "e", "10.300.0.0/16").unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (400, "invalid CIDR address: 10.300.0.0/16".into())
    );
    let e = create(&s, "a", "10.50.0.0/16").unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (409, "network with name a already exists".into())
    );
    assert!(s.find("a").is_ok() && s.find(&a.id[..6]).is_ok());
    assert_eq!(
        s.find("zz").unwrap_err().to_string(),
        "network zz not found"
    );
}

#[test]
fn addresses_are_unique_static_honoured_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let s = NetworkService::open(&options(dir.path())).unwrap();
    create(&s, "small", "10.60.0.0/29").unwrap();
    let ip = |s: &NetworkService, c: &str, want: &str| {
        s.connect(
            "small",
            c,
            c,
            &EndpointRequest {
                ipv4: want.into(),
                aliases: vec![],
                mac: String::new(),
                ..Default::default()
            },
        )
        .map(|(_, e)| e.ip.unwrap().to_string())
    };
    assert_eq!(ip(&s, "c1", "").unwrap(), "10.60.0.2");
    assert_eq!(ip(&s, "c2", "10.60.0.3").unwrap(), "10.60.0.3");
    let e = ip(&s, "c3", "10.60.0.3").unwrap_err();
    assert_eq!(e.status(), 403, "{e}");
    let e = ip(&s, "c3", "10.61.0.3").unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (
            400,
            "Invalid address 10.61.0.3: It does not belong to any of this network's subnets".into()
        )
    );
    let e = ip(&s, "c1", "").unwrap_err();
    assert_eq!(
        e.to_string(),
        "endpoint with name c1 already exists in network small"
    );
    drop(s);
    // After a restart: the reservations hold, the pool runs dry with a clear error.
    let s = NetworkService::open(&options(dir.path())).unwrap();
    assert_eq!(ip(&s, "c4", "").unwrap(), "10.60.0.4");
    for c in ["c5", "c6"] {
        ip(&s, c, "").unwrap();
    }
    let e = ip(&s, "c7", "").unwrap_err();
    assert_eq!(e.status(), 503);
    assert!(
        e.to_string().starts_with("no available IPv4 addresses"),
        "{e}"
    );
    let e = s.remove("small").unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(e.to_string().contains("has active endpoints"), "{e}");
    s.release_all("c1").unwrap();
    assert_eq!(ip(&s, "c7", "").unwrap(), "10.60.0.2");
    let e = s
        .connect(
            "bridge",
            "c8",
            "c8",
            &EndpointRequest {
                ipv4: "10.213.0.9".into(),
                aliases: vec![],
                mac: String::new(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.status(), 400);
}
