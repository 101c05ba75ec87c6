//! The network actor's persisted state (`network/state.json`, written atomically): the networks,
//! and per container its endpoint (addresses and published ports). Lease questions (which address
//! is free, which host port is taken) are answered here without side effects.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use runtime::network::nft::{Forward, Ruleset};
use runtime::network::ports::Proto;
use runtime::network::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Name of the default network.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Bridge of the default network.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// A bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    pub id: String,
    pub subnet: Ipv4Net,
    /// The Linux bridge (`berth0`, `br-<id12>`).
    pub bridge: String,
    /// Unix nanoseconds.
    pub created: i64,
}

/// One interface of a container on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub network_id: String,
    /// Name inside the container (`eth0`, `eth1`...).
    pub ifname: String,
    /// Host end of the veth.
    pub veth: String,
    pub ip: Ipv4Addr,
    pub subnet: Ipv4Net,
}

impl Attachment {
    /// The container end's MAC address, as `inspect` prints it.
    pub fn mac(&self) -> String {
        runtime::network::link::mac_for(self.ip)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A published port in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub proto: Proto,
    /// `None` for every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl Published {
    /// Whether both would receive the same traffic.
    pub fn clashes(&self, proto: Proto, host_ip: Option<Ipv4Addr>, host_port: u16) -> bool {
        self.proto == proto
            && self.host_port == host_port
            && (self.host_ip.is_none() || host_ip.is_none() || self.host_ip == host_ip)
    }
}

/// What a running container holds on the network: its interfaces and published ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container: String,
    pub name: String,
    pub hostname: String,
    pub attachments: Vec<Attachment>,
    pub ports: Vec<Published>,
}

/// Everything the network actor persists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetState {
    pub networks: BTreeMap<String, NetworkDef>,
    /// By container id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Berth turned IPv4 forwarding on, so it also restricts forwarding to its bridges.
    pub restrict_forwarding: bool,
    /// Ids of the built-in `host` and `none` networks.
    pub builtin_ids: BTreeMap<String, String>,
}

impl NetState {
    pub fn load(path: &Path) -> std::io::Result<NetState> {
        match std::fs::read(path) {
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NetState::default()),
            Err(e) => Err(e),
        }
    }

    /// Temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        runtime::atomic_file::write_atomic(path, &data)
    }

    /// A network by name, or by a unique id prefix.
    pub fn find(&self, key: &str) -> Option<&NetworkDef> {
        if let Some(n) = self.networks.get(key) {
            return Some(n);
        }
        let mut hits = self.networks.values().filter(|n| n.id.starts_with(key));
        match (hits.next(), hits.next()) {
            (Some(n), None) if !key.is_empty() => Some(n),
            _ => None,
        }
    }

    /// Addresses leased on `network`.
    pub fn used_ips(&self, network: &str) -> BTreeSet<Ipv4Addr> {
        self.endpoints
            .values()
            .flat_map(|e| &e.attachments)
            .filter(|a| a.network == network)
            .map(|a| a.ip)
            .collect()
    }

    /// The endpoints attached to `network`.
    pub fn on_network<'a>(&'a self, network: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints
            .values()
            .filter(move |e| e.attachments.iter().any(|a| a.network == network))
    }

    /// The container already publishing this host port, if any.
    pub fn port_holder(&self, proto: Proto, host_ip: Option<Ipv4Addr>, port: u16) -> Option<&str> {
        self.endpoints
            .values()
            .find(|e| e.ports.iter().any(|p| p.clashes(proto, host_ip, port)))
            .map(|e| e.name.as_str())
    }

    /// The nftables table for these networks and leases.
    pub fn ruleset(&self) -> Ruleset {
        let mut forwards = Vec::new();
        for e in self.endpoints.values() {
            let Some(first) = e.attachments.first() else {
                continue;
            };
            for p in &e.ports {
                forwards.push(Forward {
                    proto: p.proto,
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    addr: first.ip,
                    port: p.container_port,
                });
            }
        }
        Ruleset {
            bridges: self
                .networks
                .values()
                .map(|n| (n.bridge.clone(), n.subnet))
                .collect(),
            forwards,
            restrict_forwarding: self.restrict_forwarding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(ip: Option<Ipv4Addr>, port: u16) -> Published {
        Published {
            proto: Proto::Tcp,
            host_ip: ip,
            host_port: port,
            container_port: 80,
        }
    }

    #[test]
    fn any_address_clashes_with_every_address() {
        let lo = Some(Ipv4Addr::LOCALHOST);
        let other = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert!(published(None, 80).clashes(Proto::Tcp, lo, 80));
        assert!(published(lo, 80).clashes(Proto::Tcp, None, 80));
        assert!(!published(lo, 80).clashes(Proto::Tcp, other, 80));
        assert!(!published(None, 80).clashes(Proto::Udp, None, 80));
        assert!(!published(None, 80).clashes(Proto::Tcp, None, 81));
    }

    #[test]
    fn state_round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network/state.json");
        let mut s = NetState::default();
        s.networks.insert(
            "bridge".into(),
            NetworkDef {
                name: "bridge".into(),
                id: "ab".repeat(32),
                subnet: "172.17.0.0/16".parse().unwrap(),
                bridge: DEFAULT_BRIDGE.into(),
                created: 1,
            },
        );
        s.save(&path).unwrap();
        let back = NetState::load(&path).unwrap();
        assert_eq!(back.networks, s.networks);
        assert_eq!(back.find("abab").map(|n| n.name.as_str()), Some("bridge"));
    }
}
