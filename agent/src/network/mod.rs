//! The network actor: owns the bridges, address leases, published-port leases (and their
//! conflicts) and Berth's nftables table, persisted in `network/state.json`. It runs on its own
//! thread (a `SyncArbiter` of one) because every operation is a few blocking netlink/nft calls;
//! serializing them there keeps leases consistent without blocking any other mailbox.

mod hosts;
pub mod state;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use actix::prelude::*;
use protocol::messages::{
    ApiError, Ipam, IpamConfig, NetworkContainer, NetworkInfo, NetworkMode, PortBinding,
    PortProtocol,
};
use runtime::network::link::{self, VethSpec};
use runtime::network::nft::{Pending, Ruleset};
use runtime::network::ports::{self, Proto};
use runtime::network::{ipam, netns, Ipv4Net};

use crate::layout::Layout;
use crate::record::now_nanos;
use state::{
    Attachment, Endpoint, NetState, NetworkDef, Published, DEFAULT_BRIDGE, DEFAULT_NETWORK,
};

type Reply<T> = Result<T, ApiError>;

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

/// Owner of every network resource of the node.
pub struct NetworkActor {
    layout: Layout,
    /// `berth daemon --bridge-subnet`.
    bridge_subnet: Option<Ipv4Net>,
    state: NetState,
    /// The table as last loaded into the kernel. Each `nft` transaction costs an exec and a
    /// commit (≈ 15 ms for a whole table, whose deletion waits for an RCU grace period), so an
    /// unchanged table is left alone and a change of published ports only adds or removes map
    /// elements. `None` until the first load, which replaces whatever a previous daemon left.
    applied: Option<Ruleset>,
}

impl Actor for NetworkActor {
    type Context = SyncContext<Self>;
}

/// Starts the actor on its own thread.
pub fn start(layout: Layout, bridge_subnet: Option<Ipv4Net>) -> Addr<NetworkActor> {
    SyncArbiter::start(1, move || NetworkActor {
        layout: layout.clone(),
        bridge_subnet,
        state: NetState::default(),
        applied: None,
    })
}

/// The host end of a container's `n`th veth: at most 15 characters, unique per container.
fn veth_name(id: &str, n: usize) -> String {
    if n == 0 {
        format!("veth{}", &id[..11.min(id.len())])
    } else {
        format!("veth{}x{n}", &id[..9.min(id.len())])
    }
}

fn proto(p: PortProtocol) -> Proto {
    match p {
        PortProtocol::Tcp => Proto::Tcp,
        PortProtocol::Udp => Proto::Udp,
    }
}

fn shown(ip: Option<Ipv4Addr>) -> String {
    ip.map(|i| i.to_string())
        .unwrap_or_else(|| "0.0.0.0".into())
}

impl NetworkActor {
    fn save(&self) -> Reply<()> {
        self.state
            .save(&self.layout.network_state())
            .map_err(|e| internal("persist network state", e))
    }

    /// Starts loading the rules of the current state; [`NetworkActor::finish_rules`] waits.
    fn start_rules(&mut self) -> Reply<(Ruleset, Pending)> {
        let ruleset = self.state.ruleset();
        let old = self.applied.take();
        let pending = ruleset
            .start_from(old.as_ref())
            .map_err(|e| internal("update nftables", e))?;
        Ok((ruleset, pending))
    }

    fn finish_rules(&mut self, (ruleset, pending): (Ruleset, Pending)) -> Reply<()> {
        pending.wait().map_err(|e| internal("update nftables", e))?;
        self.applied = Some(ruleset);
        Ok(())
    }

    fn apply_rules(&mut self) -> Reply<()> {
        let rules = self.start_rules()?;
        self.finish_rules(rules)
    }

    fn bring_up(net: &NetworkDef) -> Reply<()> {
        link::ensure_bridge(&net.bridge, &net.subnet)
            .map_err(|e| internal(&format!("bridge {}", net.bridge), e))?;
        // Lets DNAT of 127.0.0.1 reach containers (packets from loopback routed out the bridge).
        runtime::network::sysctl(&format!("net.ipv4.conf.{}.route_localnet", net.bridge), "1")
            .map_err(|e| internal("route_localnet", e))
    }

    /// Subnets a new network must not overlap: the host's routes and the other networks.
    fn taken_subnets(&self) -> Reply<Vec<Ipv4Net>> {
        let mut taken = link::routed_subnets().map_err(|e| internal("list routes", e))?;
        taken.extend(self.state.networks.values().map(|n| n.subnet));
        Ok(taken)
    }

    fn init(&mut self) -> Reply<()> {
        std::fs::create_dir_all(self.layout.netns_dir())
            .map_err(|e| internal("create netns directory", e))?;
        self.state = NetState::load(&self.layout.network_state())
            .map_err(|e| internal("load network state", e))?;
        let current = self.state.networks.get(DEFAULT_NETWORK).map(|n| n.subnet);
        let wanted = match (self.bridge_subnet, current) {
            (Some(o), Some(c))
                if o != c && !self.state.on_network(DEFAULT_NETWORK).any(|_| true) =>
            {
                let _ = link::delete_link(DEFAULT_BRIDGE);
                self.state.networks.remove(DEFAULT_NETWORK);
                Some(o)
            }
            (Some(o), Some(c)) if o != c => {
                tracing::warn!(
                    "default bridge keeps {c}: containers still hold addresses on it, so --bridge-subnet {o} waits for them"
                );
                None
            }
            (_, Some(_)) => None,
            (o, None) => Some(match o {
                Some(o) => o,
                None => ipam::first_free_pool(&self.taken_subnets()?).ok_or_else(|| {
                    ApiError::internal("no free subnet for the default bridge: use --bridge-subnet")
                })?,
            }),
        };
        if let Some(subnet) = wanted {
            self.state.networks.insert(
                DEFAULT_NETWORK.into(),
                NetworkDef {
                    name: DEFAULT_NETWORK.into(),
                    id: crate::names::random_hex(32),
                    subnet,
                    bridge: DEFAULT_BRIDGE.into(),
                    created: now_nanos(),
                },
            );
        }
        for builtin in ["host", "none"] {
            self.state
                .builtin_ids
                .entry(builtin.into())
                .or_insert_with(|| crate::names::random_hex(32));
        }
        for net in self.state.networks.values() {
            Self::bring_up(net)?;
        }
        if runtime::network::read_sysctl("net.ipv4.ip_forward").is_ok_and(|v| v == "0") {
            runtime::network::sysctl("net.ipv4.ip_forward", "1")
                .map_err(|e| internal("enable forwarding", e))?;
            self.state.restrict_forwarding = true;
        }
        self.apply_rules()?;
        self.save()
    }

    /// Host ports for `bindings`: the asked ones checked against leases and the host (by binding),
    /// the unset ones picked from the ephemeral range.
    fn resolve_ports(&self, bindings: &[PortBinding]) -> Reply<Vec<Published>> {
        let mut out: Vec<Published> = Vec::new();
        for b in bindings {
            let p = proto(b.protocol);
            let host_ip = match b.host_ip.as_deref() {
                None | Some("") | Some("0.0.0.0") => None,
                Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
                    ApiError::invalid(format!("invalid host address {s:?} in a published port"))
                })?),
            };
            let taken = |port: u16| {
                self.state.port_holder(p, host_ip, port).is_some()
                    || out.iter().any(|o| o.clashes(p, host_ip, port))
            };
            let host_port = match b.host_port {
                Some(port) => {
                    let refuse = |why: String| {
                        ApiError::conflict(format!(
                            "Bind for {}:{port} failed: {why}",
                            shown(host_ip)
                        ))
                    };
                    if let Some(holder) = self.state.port_holder(p, host_ip, port) {
                        return Err(refuse(format!(
                            "port is already allocated (by container {holder})"
                        )));
                    }
                    if out.iter().any(|o| o.clashes(p, host_ip, port)) {
                        return Err(refuse("port is published twice".into()));
                    }
                    match ports::check_free(host_ip, port, p) {
                        Ok(()) => port,
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                            return Err(refuse("port is already in use on the host".into()))
                        }
                        Err(e) => return Err(refuse(e.to_string())),
                    }
                }
                None => ports::ephemeral_range()
                    .find(|&port| !taken(port) && ports::check_free(host_ip, port, p).is_ok())
                    .ok_or_else(|| ApiError::conflict("no free host port left to publish on"))?,
            };
            out.push(Published {
                proto: p,
                host_ip,
                host_port,
                container_port: b.container_port,
            });
        }
        Ok(out)
    }

    fn network_for(&self, mode: &NetworkMode) -> Reply<NetworkDef> {
        let key = match mode {
            NetworkMode::Named(n) => n.as_str(),
            _ => DEFAULT_NETWORK,
        };
        self.state
            .find(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))
    }

    fn new_attachment(&self, id: &str, net: &NetworkDef, n: usize) -> Reply<Attachment> {
        let ip =
            ipam::lowest_free(&net.subnet, &self.state.used_ips(&net.name)).ok_or_else(|| {
                ApiError::conflict(format!("no free address left on network {}", net.name))
            })?;
        Ok(Attachment {
            network: net.name.clone(),
            network_id: net.id.clone(),
            ifname: format!("eth{n}"),
            veth: veth_name(id, n),
            ip,
            subnet: net.subnet,
        })
    }

    fn plug(&self, id: &str, att: &Attachment, net: &NetworkDef, first: bool) -> Reply<()> {
        let spec = VethSpec {
            ifname: &att.ifname,
            host_name: &att.veth,
            addr: att.ip,
            net: att.subnet,
            default_route: first,
        };
        let path = self.layout.netns(id);
        let made = if first {
            netns::create(&path, |host| link::plug_veth(host, &spec, true))
        } else {
            let host = std::fs::File::open("/proc/thread-self/ns/net")
                .map_err(|e| internal("open own namespace", e))?;
            netns::enter(&path, || {
                link::plug_veth(std::os::fd::AsFd::as_fd(&host), &spec, false)
            })
        };
        made.map_err(|e| internal("set up container network", e))?;
        if let Err(e) = link::enslave(&att.veth, &net.bridge) {
            let _ = link::delete_link(&att.veth);
            if first {
                let _ = netns::remove(&path);
            }
            return Err(internal("attach to bridge", e));
        }
        Ok(())
    }

    fn attach(&mut self, msg: Attach) -> Reply<Endpoint> {
        if self.state.endpoints.contains_key(&msg.id) {
            self.detach(&msg.id);
        }
        let net = self.network_for(&msg.network)?;
        let ports = self.resolve_ports(&msg.ports)?;
        let att = self.new_attachment(&msg.id, &net, 0)?;
        let endpoint = Endpoint {
            container: msg.id.clone(),
            name: msg.name,
            hostname: msg.hostname,
            attachments: vec![att.clone()],
            ports,
        };
        self.state
            .endpoints
            .insert(msg.id.clone(), endpoint.clone());
        // The DNAT rules need only the address and the ports: they load while the namespace and
        // the veth are made.
        let rules = self.start_rules();
        let plugged = self.plug(&msg.id, &att, &net, true);
        let loaded = rules.and_then(|r| self.finish_rules(r));
        if let Err(e) = plugged.and(loaded).and_then(|()| self.save()) {
            self.detach(&msg.id);
            return Err(e);
        }
        self.write_hosts(Some(&msg.id), &[net.name]);
        Ok(endpoint)
    }

    /// Releases everything a container holds; a container without an endpoint is a no-op.
    fn detach(&mut self, id: &str) {
        let Some(ep) = self.state.endpoints.remove(id) else {
            return;
        };
        // The rules are withdrawn while the links and the namespace go.
        let rules = self.start_rules();
        for a in &ep.attachments {
            if let Err(e) = link::delete_link(&a.veth) {
                tracing::warn!(container = %id, "delete {}: {e}", a.veth);
            }
        }
        if let Err(e) = netns::remove(&self.layout.netns(id)) {
            tracing::warn!(container = %id, "remove namespace: {e}");
        }
        if let Err(e) = rules
            .and_then(|r| self.finish_rules(r))
            .and_then(|()| self.save())
        {
            tracing::warn!(container = %id, "{}", e.message);
        }
        let nets: Vec<String> = ep.attachments.iter().map(|a| a.network.clone()).collect();
        self.write_hosts(None, &nets);
    }

    /// Rewrites the hosts file of `own` and of every container on these networks that lists peers
    /// (user networks: the default bridge has no name resolution).
    fn write_hosts(&self, own: Option<&str>, networks: &[String]) {
        for ep in self.state.endpoints.values() {
            let peer = ep
                .attachments
                .iter()
                .any(|a| a.network != DEFAULT_NETWORK && networks.contains(&a.network));
            if !peer && own != Some(ep.container.as_str()) {
                continue;
            }
            let text = hosts::render(ep, self.state.endpoints.values());
            let path = self.layout.container(&ep.container).hosts();
            if let Err(e) = std::fs::write(&path, text) {
                tracing::warn!(container = %ep.container, "write hosts: {e}");
            }
        }
    }

    fn reconcile(&mut self, live: &HashSet<String>) {
        let stale: Vec<String> = self
            .state
            .endpoints
            .keys()
            .filter(|id| !live.contains(*id))
            .cloned()
            .collect();
        for id in stale {
            tracing::info!(container = %id, "releasing stale network lease");
            self.detach(&id);
        }
        if let Ok(entries) = std::fs::read_dir(self.layout.netns_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !self.state.endpoints.contains_key(&name) {
                    let _ = netns::remove(&e.path());
                }
            }
        }
        if let Err(e) = self.apply_rules() {
            tracing::warn!("{}", e.message);
        }
    }

    fn info(&self, net: &NetworkDef) -> NetworkInfo {
        let containers = self
            .state
            .on_network(&net.name)
            .flat_map(|e| {
                e.attachments
                    .iter()
                    .filter(|a| a.network == net.name)
                    .map(move |a| {
                        (
                            e.container.clone(),
                            NetworkContainer {
                                name: e.name.clone(),
                                ipv4_address: format!("{}/{}", a.ip, a.subnet.prefix()),
                                mac_address: a.mac(),
                            },
                        )
                    })
            })
            .collect();
        NetworkInfo {
            name: net.name.clone(),
            id: net.id.clone(),
            created: protocol::messages::rfc3339_nanos(net.created),
            scope: "local".into(),
            driver: "bridge".into(),
            ipam: Ipam {
                driver: "default".into(),
                config: vec![IpamConfig {
                    subnet: net.subnet.to_string(),
                    gateway: net.subnet.gateway().to_string(),
                }],
            },
            bridge: net.bridge.clone(),
            containers,
        }
    }

    fn builtin(&self, name: &str) -> NetworkInfo {
        NetworkInfo {
            name: name.into(),
            id: self
                .state
                .builtin_ids
                .get(name)
                .cloned()
                .unwrap_or_default(),
            created: protocol::messages::rfc3339_nanos(0),
            scope: "local".into(),
            driver: if name == "host" { "host" } else { "null" }.into(),
            ipam: Ipam {
                driver: "default".into(),
                config: vec![],
            },
            bridge: String::new(),
            containers: Default::default(),
        }
    }

    fn lookup(&self, key: &str) -> Reply<NetworkInfo> {
        if let Some(n) = self.state.find(key) {
            return Ok(self.info(n));
        }
        ["host", "none"]
            .into_iter()
            .find(|b| {
                *b == key
                    || self
                        .state
                        .builtin_ids
                        .get(*b)
                        .is_some_and(|id| !key.is_empty() && id.starts_with(key))
            })
            .map(|b| self.builtin(b))
            .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))
    }

    fn create(&mut self, name: String, subnet: Option<String>) -> Reply<NetworkInfo> {
        if ["bridge", "host", "none", "default"].contains(&name.as_str()) {
            return Err(ApiError::conflict(format!(
                "network with name {name} already exists (pre-defined)"
            )));
        }
        if !crate::names::is_valid(&name) {
            return Err(ApiError::invalid(format!("invalid network name {name:?}")));
        }
        if self.state.networks.contains_key(&name) {
            return Err(ApiError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let subnet = match subnet {
            Some(s) => {
                let net: Ipv4Net = s.parse().map_err(|e| ApiError::invalid(format!("{e}")))?;
                if self
                    .state
                    .networks
                    .values()
                    .any(|n| n.subnet.overlaps(&net))
                {
                    return Err(ApiError::conflict(format!(
                        "invalid pool request: subnet {net} overlaps with another network"
                    )));
                }
                net
            }
            None => ipam::first_free_pool(&self.taken_subnets()?)
                .ok_or_else(|| ApiError::conflict("no free subnet left for a new network"))?,
        };
        let id = crate::names::random_hex(32);
        let def = NetworkDef {
            name: name.clone(),
            bridge: format!("br-{}", &id[..12]),
            id,
            subnet,
            created: now_nanos(),
        };
        Self::bring_up(&def)?;
        self.state.networks.insert(name, def.clone());
        self.apply_rules()?;
        self.save()?;
        Ok(self.info(&def))
    }

    fn remove(&mut self, key: &str) -> Reply<()> {
        if ["bridge", "host", "none"].contains(&key) {
            return Err(ApiError::conflict(format!(
                "{key} is a pre-defined network and cannot be removed"
            )));
        }
        let net = self
            .state
            .find(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))?;
        if net.name == DEFAULT_NETWORK {
            return Err(ApiError::conflict(
                "bridge is a pre-defined network and cannot be removed",
            ));
        }
        if self.state.on_network(&net.name).next().is_some() {
            return Err(ApiError::conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                net.name, net.id
            )));
        }
        link::delete_link(&net.bridge).map_err(|e| internal("delete bridge", e))?;
        self.state.networks.remove(&net.name);
        self.apply_rules()?;
        self.save()
    }

    fn connect(&mut self, id: &str, key: &str) -> Reply<Endpoint> {
        let net = self
            .state
            .find(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))?;
        let ep = self.state.endpoints.get(id).cloned().ok_or_else(|| {
            ApiError::conflict("container is not running on a bridge network".to_string())
        })?;
        if ep.attachments.iter().any(|a| a.network == net.name) {
            return Err(ApiError::conflict(format!(
                "endpoint with name {} already exists in network {}",
                ep.name, net.name
            )));
        }
        let att = self.new_attachment(id, &net, ep.attachments.len())?;
        self.plug(id, &att, &net, false)?;
        if let Some(e) = self.state.endpoints.get_mut(id) {
            e.attachments.push(att);
        }
        self.endpoint_changed(id, net.name)
    }

    /// After `connect` or `disconnect`: persists the leases, rewrites the hosts files of the
    /// network's containers and returns the container's endpoint as it now is.
    fn endpoint_changed(&mut self, id: &str, network: String) -> Reply<Endpoint> {
        self.save()?;
        self.write_hosts(Some(id), &[network]);
        self.state
            .endpoints
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::internal("endpoint vanished"))
    }

    fn disconnect(&mut self, id: &str, key: &str) -> Reply<Endpoint> {
        let net = self
            .state
            .find(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))?;
        let ep = self.state.endpoints.get(id).cloned().ok_or_else(|| {
            ApiError::conflict(format!(
                "container is not connected to network {}",
                net.name
            ))
        })?;
        let Some(pos) = ep.attachments.iter().position(|a| a.network == net.name) else {
            return Err(ApiError::conflict(format!(
                "container is not connected to network {}",
                net.name
            )));
        };
        if pos == 0 {
            return Err(ApiError::invalid(format!(
                "cannot disconnect a container from its primary network {} while it runs",
                net.name
            )));
        }
        let att = &ep.attachments[pos];
        link::delete_link(&att.veth).map_err(|e| internal("delete veth", e))?;
        if let Some(e) = self.state.endpoints.get_mut(id) {
            e.attachments.remove(pos);
        }
        self.endpoint_changed(id, net.name)
    }
}

/// Loads the state, brings up the bridges, enables forwarding and installs the table. The agent
/// does not start without it.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct Init;

impl Handler<Init> for NetworkActor {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, _: Init, _: &mut SyncContext<Self>) -> Self::Result {
        self.init()
    }
}

/// After recovery: releases the leases of containers that are not alive any more and stray
/// namespaces, and rewrites the table from what is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconcile(pub HashSet<String>);

impl Handler<Reconcile> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: Reconcile, _: &mut SyncContext<Self>) {
        self.reconcile(&msg.0);
    }
}

/// Gives a container its namespace (at `Layout::netns`), address and published ports.
#[derive(Message)]
#[rtype(result = "Result<Endpoint, ApiError>")]
pub struct Attach {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub network: NetworkMode,
    pub ports: Vec<PortBinding>,
}

impl Handler<Attach> for NetworkActor {
    type Result = Result<Endpoint, ApiError>;
    fn handle(&mut self, msg: Attach, _: &mut SyncContext<Self>) -> Self::Result {
        self.attach(msg)
    }
}

/// Releases a container's network resources (idempotent).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach(pub String);

impl Handler<Detach> for NetworkActor {
    type Result = ();
    fn handle(&mut self, msg: Detach, _: &mut SyncContext<Self>) {
        self.detach(&msg.0);
    }
}

/// Answers once every message sent before it was handled: `stop`/`rm` answer only after the
/// leases their container gave back are gone, as a user checking right after expects.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle;

impl Handler<Settle> for NetworkActor {
    type Result = ();
    fn handle(&mut self, _: Settle, _: &mut SyncContext<Self>) {}
}

/// Whether a network exists (checked at create, as Docker does).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct Exists(pub String);

impl Handler<Exists> for NetworkActor {
    type Result = Result<(), ApiError>;
    fn handle(&mut self, msg: Exists, _: &mut SyncContext<Self>) -> Self::Result {
        self.network_for(&NetworkMode::Named(msg.0)).map(drop)
    }
}

/// The network verbs that do not involve a container.
#[derive(Message)]
#[rtype(result = "Result<protocol::messages::Response, ApiError>")]
pub enum Verb {
    Create {
        name: String,
        subnet: Option<String>,
    },
    List,
    Inspect(String),
    Remove(String),
    Prune,
}

impl Handler<Verb> for NetworkActor {
    type Result = Result<protocol::messages::Response, ApiError>;
    fn handle(&mut self, msg: Verb, _: &mut SyncContext<Self>) -> Self::Result {
        use protocol::messages::Response;
        match msg {
            Verb::Create { name, subnet } => self.create(name, subnet).map(Response::Network),
            Verb::List => {
                let mut all: Vec<NetworkInfo> =
                    self.state.networks.values().map(|n| self.info(n)).collect();
                all.push(self.builtin("host"));
                all.push(self.builtin("none"));
                all.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(Response::Networks(all))
            }
            Verb::Inspect(key) => self.lookup(&key).map(Response::Network),
            Verb::Remove(key) => self.remove(&key).map(|()| Response::Done),
            Verb::Prune => {
                let unused: Vec<String> = self
                    .state
                    .networks
                    .values()
                    .filter(|n| n.name != DEFAULT_NETWORK)
                    .filter(|n| self.state.on_network(&n.name).next().is_none())
                    .map(|n| n.name.clone())
                    .collect();
                let mut deleted = Vec::new();
                for name in unused {
                    match self.remove(&name) {
                        Ok(()) => deleted.push(name),
                        Err(e) => tracing::warn!("prune network {name}: {}", e.message),
                    }
                }
                Ok(Response::Pruned {
                    deleted,
                    space_reclaimed: 0,
                })
            }
        }
    }
}

/// Adds (`connect`) or removes (`disconnect`) a running container's interface on a network;
/// answers the container's endpoint afterwards.
#[derive(Message)]
#[rtype(result = "Result<Endpoint, ApiError>")]
pub struct Plug {
    pub id: String,
    pub network: String,
    pub connect: bool,
}

impl Handler<Plug> for NetworkActor {
    type Result = Result<Endpoint, ApiError>;
    fn handle(&mut self, msg: Plug, _: &mut SyncContext<Self>) -> Self::Result {
        if msg.connect {
            self.connect(&msg.id, &msg.network)
        } else {
            self.disconnect(&msg.id, &msg.network)
        }
    }
}
