//! `berth network create|ls|inspect|rm|prune|connect|disconnect` and the daemon's network
//! flags: docker's flags, tables, messages and exit codes.
use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{self, Body};
use super::images::{confirm, inspect_objects};
use super::{encode, Context, Exit};
use crate::cli::format::print_rows;
use crate::network::ipam::{default_pools, AddressPool};

/// `berth daemon` flags of the network service.
#[derive(Debug, Clone, Args)]
pub struct DaemonFlags {
    /// The default bridge's address and subnet
    #[arg(long, default_value = "172.17.0.1/16")]
    pub bip: String,
    /// The default bridge's device name
    #[arg(short = 'b', long, default_value = "berth0")]
    pub bridge: String,
    /// Where networks without --subnet get one (base=CIDR,size=N; docker's pools by default)
    #[arg(long = "default-address-pool")]
    pub default_address_pool: Vec<AddressPool>,
    /// Keep berth's nftables table: masquerade, isolation, published ports (--iptables=false: none)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub iptables: bool,
}

impl From<DaemonFlags> for crate::daemon::NetworkFlags {
    fn from(f: DaemonFlags) -> Self {
        crate::daemon::NetworkFlags {
            bip: f.bip,
            bridge: f.bridge,
            firewall: f.iptables,
            pools: if f.default_address_pool.is_empty() {
                default_pools()
            } else {
                f.default_address_pool
            },
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

pub fn run(ctx: &Context, command: NetworkCommand) -> anyhow::Result<()> {
    match command {
        NetworkCommand::Create(a) => create(ctx, &a),
        NetworkCommand::Ls(a) => list(ctx, &a),
        NetworkCommand::Inspect(a) => inspect(ctx, &a),
        NetworkCommand::Rm(a) => remove(ctx, &a),
        NetworkCommand::Prune(a) => prune(ctx, &a),
        NetworkCommand::Connect(a) => connect(ctx, &a),
        NetworkCommand::Disconnect(a) => disconnect(ctx, &a),
    }
}

fn daemon_error(e: client::Error) -> anyhow::Error {
    eprintln!("{e}");
    Exit(1).into()
}

/// Docker's client-side wording for a missing network.
fn missing(e: client::Error, name: &str) -> anyhow::Error {
    match e {
        client::Error::Daemon { status: 404, .. } => {
            anyhow::anyhow!("Error: No such network: {name}")
        }
        other => other.into(),
    }
}

fn post_json(ctx: &Context, path: &str, body: &Value) -> Result<client::Response, client::Error> {
    ctx.client
        .request(
            "POST",
            path,
            &[],
            Body::Json(serde_json::to_vec(body).unwrap_or_default()),
        )?
        .ok()
}

fn key_values(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i, ""));
            if k.is_empty() {
                anyhow::bail!("invalid argument {i:?} for {what}");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address")]
    pub aux_address: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    pub name: String,
}

/// One IPAM config per subnet; a gateway/range/aux address goes to the subnet holding it.
fn ipam_config(a: &CreateArgs) -> anyhow::Result<Vec<Value>> {
    let mut pools: Vec<Value> = a.subnet.iter().map(|s| json!({ "Subnet": s })).collect();
    let holder = |pools: &mut Vec<Value>, addr: &str, field: &str| -> anyhow::Result<usize> {
        let ip = addr.split('/').next().unwrap_or(addr);
        let ip: std::net::IpAddr = match ip.parse() {
            Ok(ip) => ip,
            Err(_) if pools.len() == 1 => return Ok(0),
            Err(_) => anyhow::bail!("invalid {field} {addr:?}"),
        };
        let index = pools.iter().position(|p| {
            p["Subnet"]
                .as_str()
                .and_then(|s| s.parse::<ipnet::IpNet>().ok())
                .is_some_and(|n| n.contains(&ip))
        });
        match index {
            Some(i) if pools[i][field].is_null() => Ok(i),
            Some(_) => anyhow::bail!("cannot configure multiple {field}s for the same subnet"),
            None if pools.len() == 1 => Ok(0),
            None => anyhow::bail!("no matching subnet for {field} {addr}"),
        }
    };
    if pools.is_empty()
        && !(a.gateway.is_empty() && a.ip_range.is_empty() && a.aux_address.is_empty())
    {
        anyhow::bail!("every ip-range or gateway must have a corresponding subnet");
    }
    for g in &a.gateway {
        let i = holder(&mut pools, g, "Gateway")?;
        pools[i]["Gateway"] = json!(g);
    }
    for r in &a.ip_range {
        let i = holder(&mut pools, r, "IPRange")?;
        pools[i]["IPRange"] = json!(r);
    }
    for (name, addr) in key_values(&a.aux_address, "--aux-address")? {
        let index = holder(&mut pools, &addr, "AuxAddress").unwrap_or(0);
        pools[index]["AuxiliaryAddresses"][name] = json!(addr);
    }
    Ok(pools)
}

pub fn create(ctx: &Context, a: &CreateArgs) -> anyhow::Result<()> {
    let config = match ipam_config(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return Err(Exit(1).into());
        }
    };
    let body = json!({
        "Name": a.name,
        "CheckDuplicate": true,
        "Driver": a.driver,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "EnableIPv6": a.ipv6,
        "IPAM": { "Driver": a.ipam_driver, "Config": config, "Options": {} },
        "Options": key_values(&a.opt, "--opt")?,
        "Labels": key_values(&a.label, "--label")?,
    });
    let created = post_json(ctx, "/networks/create", &body)
        .map_err(daemon_error)?
        .json()?;
    println!("{}", created["Id"].as_str().unwrap_or(""));
    Ok(())
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Provide filter values (e.g. 'driver=bridge')
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Pretty-print networks using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

fn filters_query(filters: &[String]) -> anyhow::Result<String> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        map.entry(k.into()).or_default().push(v.into());
    }
    Ok(encode(&serde_json::to_string(&map)?))
}

/// A network as `ls` shows it: docker's template fields.
fn row(n: &Value, no_trunc: bool) -> Value {
    let id = n["Id"].as_str().unwrap_or("");
    let labels = n["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "ID": if no_trunc { id } else { &id[..12.min(id.len())] },
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n["Scope"],
        "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
        "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
        "Labels": labels,
        "CreatedAt": n["Created"],
    })
}

fn header(field: &str) -> String {
    match field {
        "ID" => "NETWORK ID".into(),
        "CreatedAt" => "CREATED".into(),
        other => other.to_uppercase(),
    }
}

pub fn list(ctx: &Context, a: &ListArgs) -> anyhow::Result<()> {
    let path = format!("/networks?filters={}", filters_query(&a.filter)?);
    let list = ctx.client.get(&path).map_err(daemon_error)?.json()?;
    let mut rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| row(n, a.no_trunc))
        .collect();
    rows.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    print_rows(
        a.format.as_deref(),
        a.quiet.then_some("{{.ID}}"),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        &rows,
        &header,
    )
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

pub fn inspect(ctx: &Context, a: &InspectArgs) -> anyhow::Result<()> {
    inspect_objects(
        ctx,
        a.format.as_deref(),
        &a.networks,
        |n| format!("/networks/{}", encode(n)),
        missing,
    )
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub networks: Vec<String>,
}

pub fn remove(ctx: &Context, a: &RmArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for name in &a.networks {
        let path = format!("/networks/{}", encode(name));
        match ctx
            .client
            .request("DELETE", &path, &[], Body::None)
            .and_then(|r| r.ok())
        {
            Ok(_) => println!("{name}"),
            Err(client::Error::Daemon { status: 404, .. }) => {
                eprintln!("Error: No such network: {name}");
                failed = true;
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. 'label=<key>=<value>')
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn prune(ctx: &Context, a: &PruneArgs) -> anyhow::Result<()> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )
    {
        return Ok(());
    }
    let path = format!("/networks/prune?filters={}", filters_query(&a.filter)?);
    let out = ctx.client.post(&path).map_err(daemon_error)?.json()?;
    let deleted: Vec<&str> = out["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        deleted.iter().for_each(|n| println!("{n}"));
        println!();
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    pub network: String,
    pub container: String,
}

pub fn connect(ctx: &Context, a: &ConnectArgs) -> anyhow::Result<()> {
    let mut endpoint = json!({ "Aliases": a.alias });
    if let Some(ipam) = ipam_of(a.ip.as_deref(), a.ip6.as_deref()) {
        endpoint["IPAMConfig"] = ipam;
    }
    let body = json!({ "Container": a.container, "EndpointConfig": endpoint });
    post_json(
        ctx,
        &format!("/networks/{}/connect", encode(&a.network)),
        &body,
    )
    .map_err(daemon_error)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

pub fn disconnect(ctx: &Context, a: &DisconnectArgs) -> anyhow::Result<()> {
    let body = json!({ "Container": a.container, "Force": a.force });
    post_json(
        ctx,
        &format!("/networks/{}/disconnect", encode(&a.network)),
        &body,
    )
    .map_err(daemon_error)?;
    Ok(())
}

/// `run --network N --ip A --network-alias X`: docker's `NetworkingConfig`.
pub fn endpoints_config(
    network: Option<&str>,
    ip: Option<&str>,
    ip6: Option<&str>,
    aliases: &[String],
) -> Option<Value> {
    let ipam = ipam_of(ip, ip6);
    if ipam.is_none() && aliases.is_empty() {
        return None;
    }
    let name = network.unwrap_or("default");
    let mut endpoint = json!({ "Aliases": aliases });
    if let Some(ipam) = ipam {
        endpoint["IPAMConfig"] = ipam;
    }
    Some(json!({ "EndpointsConfig": { name: endpoint } }))
}

/// docker's `IPAMConfig` of `--ip` and `--ip6`.
fn ipam_of(ip: Option<&str>, ip6: Option<&str>) -> Option<Value> {
    let mut ipam = serde_json::Map::new();
    if let Some(ip) = ip {
        ipam.insert("IPv4Address".into(), json!(ip));
    }
    if let Some(ip) = ip6 {
        ipam.insert("IPv6Address".into(), json!(ip));
    }
    (!ipam.is_empty()).then_some(Value::Object(ipam))
}
