//! The kernel side of a bridge network, through rtnetlink (no `ip` processes): a container's
//! network namespace bind-mounted at a path, the network's bridge, and a veth pair from the
//! bridge into the namespace with its address, its default route and `lo` up.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

/// A failed kernel operation, naming what it was about.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct LinkError {
    pub what: String,
    pub message: String,
}

fn err(what: impl Into<String>) -> impl FnOnce(String) -> LinkError {
    let what = what.into();
    move |message| LinkError { what, message }
}

/// Where a container's endpoint goes.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// `eth0`, `eth1`, …
    pub ifname: String,
    /// The first network gives the default route; `--internal` ones none.
    pub default_route: bool,
    /// Published ports on 127.0.0.1 reach it (berth's table guards the bridge).
    pub route_localnet: bool,
    /// Its IPv6 address, on a network with IPv6.
    pub v6: Option<Address6>,
}

/// An IPv6 address of an endpoint, with its subnet's prefix and gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address6 {
    pub ip: Ipv6Addr,
    pub prefix: u8,
    pub gateway: Ipv6Addr,
}

/// Makes a network namespace and bind-mounts it at `path` (from a thread of its own, so the
/// daemon's threads stay in theirs).
pub fn create_netns(path: &Path) -> Result<(), LinkError> {
    let what = format!("network namespace {}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(&what)(e.to_string()))?;
    }
    std::fs::File::create(path).map_err(|e| err(&what)(e.to_string()))?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<(), String> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        mount(
            Some(own.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind mount: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("thread panicked".into()));
    if let Err(m) = made {
        let _ = std::fs::remove_file(path);
        return Err(err(what)(m));
    }
    Ok(())
}

/// Unmounts and removes a namespace made by [`create_netns`]; its veths go with it.
pub fn remove_netns(path: &Path) {
    if let Err(e) = umount2(path, MntFlags::MNT_DETACH) {
        if path.exists() {
            tracing::debug!(path = %path.display(), error = %e, "umount netns");
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Runs `f` with a netlink handle in the namespace at `netns` (the daemon's if `None`), on a
/// thread and runtime of its own.
fn in_netns<T, F, Fut>(netns: Option<PathBuf>, f: F) -> Result<T, LinkError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, LinkError>>,
{
    std::thread::spawn(move || {
        if let Some(path) = &netns {
            let what = format!("enter {}", path.display());
            let file = std::fs::File::open(path).map_err(|e| err(&what)(e.to_string()))?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| err(&what)(e.to_string()))?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err("netlink runtime")(e.to_string()))?;
        rt.block_on(async move {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| err("netlink socket")(e.to_string()))?;
            tokio::spawn(conn);
            f(handle).await
        })
    })
    .join()
    .unwrap_or_else(|_| Err(err("netlink thread")("panicked".into())))
}

async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, LinkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(err(format!("link {name}"))(e.to_string())),
    }
}

async fn must_index(handle: &Handle, name: &str) -> Result<u32, LinkError> {
    index_of(handle, name)
        .await?
        .ok_or_else(|| err(format!("link {name}"))("not found".into()))
}

fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}

/// Makes the bridge `name` with the gateway address (once), and brings it up.
pub fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    v6: Option<Address6>,
) -> Result<(), LinkError> {
    let name = name.to_string();
    in_netns(None, move |h| async move {
        let what = format!("bridge {name}");
        let index = match index_of(&h, &name).await? {
            Some(i) => i,
            None => {
                h.link()
                    .add(LinkBridge::new(&name).build())
                    .execute()
                    .await
                    .or_else(|e| if exists(&e) { Ok(()) } else { Err(e) })
                    .map_err(|e| err(&what)(e.to_string()))?;
                must_index(&h, &name).await?
            }
        };
        let mut addresses = vec![(IpAddr::V4(gateway), prefix)];
        if let Some(v6) = v6 {
            enable_ipv6(&name)?;
            addresses.push((IpAddr::V6(v6.gateway), v6.prefix));
        }
        for (ip, prefix) in addresses {
            if let Err(e) = add_address(&h, index, ip, prefix).await {
                if !exists(&e) {
                    return Err(err(format!("{what} address {ip}/{prefix}"))(e.to_string()));
                }
            }
        }
        h.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| err(format!("{what} up"))(e.to_string()))
    })
}

/// Adds `ip/prefix` to link `index`; an IPv6 one without duplicate address detection, so that
/// it is usable at once (no tentative phase when the container's process starts).
async fn add_address(
    h: &Handle,
    index: u32,
    ip: IpAddr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    let mut req = h.address().add(index, ip, prefix);
    if ip.is_ipv6() {
        let m = req.message_mut();
        m.header.flags = AddressHeaderFlags::Nodad;
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute().await
}

/// IPv6 on for `ifname` in the current namespace (a host may boot with it off for new links).
fn enable_ipv6(ifname: &str) -> Result<(), LinkError> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() == "0" => Ok(()),
        _ => std::fs::write(&path, "0").map_err(|e| err(path)(e.to_string())),
    }
}

/// Deletes the bridge `name` (its addresses go with it); a missing one is no error.
pub fn remove_bridge(name: &str) -> Result<(), LinkError> {
    let name = name.to_string();
    in_netns(None, move |h| async move {
        let Some(index) = index_of(&h, &name).await? else {
            return Ok(());
        };
        h.link()
            .del(index)
            .execute()
            .await
            .map_err(|e| err(format!("delete bridge {name}"))(e.to_string()))
    })
}

fn parse_mac(mac: &str) -> Vec<u8> {
    mac.split(':')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// A veth pair from `a.bridge` into the namespace at `netns`, configured inside. The peer is
/// made in the namespace under its final name and address (one request): moving a link
/// between namespaces waits for an RCU grace period, 15–25 ms on this kind of host.
pub fn attach(netns: &Path, a: &Attachment) -> Result<(), LinkError> {
    let host_side = format!("vb{}", &crate::containers::service::random_hex()[..8]);
    let ns_file = std::fs::File::open(netns)
        .map_err(|e| err(format!("open {}", netns.display()))(e.to_string()))?;
    let (bridge, hs, ifname, mac) = (
        a.bridge.clone(),
        host_side.clone(),
        a.ifname.clone(),
        parse_mac(&a.mac),
    );
    in_netns(None, move |h| async move {
        let what = format!("veth {hs}");
        let bridge_index = must_index(&h, &bridge).await?;
        let peer = LinkUnspec::new_with_name(&ifname)
            .address(mac)
            .setns_by_fd(ns_file.as_raw_fd())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(hs.clone())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        h.link()
            .add(veth)
            .execute()
            .await
            .map_err(|e| err(&what)(e.to_string()))?;
        let host_index = must_index(&h, &hs).await?;
        h.link()
            .set(
                LinkUnspec::new_with_index(host_index)
                    .controller(bridge_index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| err(format!("{what}: onto {bridge}"))(e.to_string()))
    })?;
    let a = a.clone();
    in_netns(Some(netns.to_path_buf()), move |h| async move {
        configure_inside(&h, &a).await
    })
}

async fn configure_inside(h: &Handle, a: &Attachment) -> Result<(), LinkError> {
    let what = format!("{} in the container", a.ifname);
    let index = must_index(h, &a.ifname).await?;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| err(format!("{what} up"))(e.to_string()))?;
    h.address()
        .add(index, IpAddr::V4(a.ip), a.prefix)
        .execute()
        .await
        .map_err(|e| err(format!("{what}: address {}/{}", a.ip, a.prefix))(e.to_string()))?;
    if let Some(v6) = a.v6 {
        enable_ipv6(&a.ifname)?;
        add_address(h, index, IpAddr::V6(v6.ip), v6.prefix)
            .await
            .map_err(|e| err(format!("{what}: address {}/{}", v6.ip, v6.prefix))(e.to_string()))?;
    }
    let lo = must_index(h, "lo").await?;
    h.link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await
        .map_err(|e| err("lo up")(e.to_string()))?;
    if a.default_route {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(a.gateway)
            .output_interface(index)
            .build();
        h.route()
            .add(route)
            .execute()
            .await
            .map_err(|e| err(format!("default route via {}", a.gateway))(e.to_string()))?;
        if let Some(v6) = a.v6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(v6.gateway)
                .output_interface(index)
                .build();
            h.route()
                .add(route)
                .execute()
                .await
                .map_err(|e| err(format!("default route via {}", v6.gateway))(e.to_string()))?;
        }
    }
    Ok(())
}

/// The names and MAC addresses of the links in the namespace at `netns`.
async fn links(h: &Handle) -> Result<Vec<(u32, String, Vec<u8>)>, LinkError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut out = Vec::new();
    let mut stream = h.link().get().execute();
    while let Some(l) = stream
        .try_next()
        .await
        .map_err(|e| err("list links")(e.to_string()))?
    {
        let (mut name, mut mac) = (String::new(), Vec::new());
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(m) => mac = m.clone(),
                _ => {}
            }
        }
        out.push((l.header.index, name, mac));
    }
    Ok(out)
}

/// The first `ethN` that no link of the namespace at `netns` has (for a live connect).
pub fn free_ifname(netns: &Path) -> Result<String, LinkError> {
    in_netns(Some(netns.to_path_buf()), |h| async move {
        let taken: Vec<String> = links(&h).await?.into_iter().map(|l| l.1).collect();
        Ok((0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_default())
    })
}

/// Whether the namespace at `netns` has a default route (a live connect adds one only if not).
pub fn has_default_route(netns: &Path) -> Result<bool, LinkError> {
    in_netns(Some(netns.to_path_buf()), |h| async move {
        let mut routes = h
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        while let Some(r) = routes
            .try_next()
            .await
            .map_err(|e| err("list routes")(e.to_string()))?
        {
            if r.header.destination_prefix_length == 0 {
                return Ok(true);
            }
        }
        Ok(false)
    })
}

/// Removes the container's link with MAC `mac` from the namespace at `netns` (its veth peer
/// on the bridge goes with it); none with that MAC is no error.
pub fn detach(netns: &Path, mac: &str) -> Result<(), LinkError> {
    let mac = parse_mac(mac);
    in_netns(Some(netns.to_path_buf()), move |h| async move {
        for (index, name, m) in links(&h).await? {
            if m == mac {
                h.link()
                    .del(index)
                    .execute()
                    .await
                    .map_err(|e| err(format!("delete {name}"))(e.to_string()))?;
            }
        }
        Ok(())
    })
}
