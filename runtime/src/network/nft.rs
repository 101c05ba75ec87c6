//! Berth's own nftables table (`ip berth`), the only firewall state Berth touches. It is rendered
//! whole from the agent's leases and replaced in one atomic `nft -f -` transaction (add, delete,
//! recreate), so stale rules cannot survive a daemon restart; later changes of published ports are
//! map element updates from the table the kernel holds ([`Ruleset::start_from`]). Published ports are
//! elements of four maps (tcp/udp × any address/one address) behind a fixed handful of rules: a
//! port costs one map element in the kernel, no process and no per-port rule.
//!
//! The `nft` binary is the interface: its text syntax is stable and the transaction is atomic; the
//! table holds no user-controlled text (addresses, ports and interface names Berth made).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::cidr::Ipv4Net;
use super::ports::Proto;
use super::NetError;

/// The table's name in the `ip` family.
pub const TABLE: &str = "berth";

/// One published port: traffic to `host_ip` (any local address when `None`) : `host_port` goes to
/// `addr` : `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// Everything the table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Each network's bridge and subnet (masquerade, forwarding).
    pub bridges: Vec<(String, Ipv4Net)>,
    pub forwards: Vec<Forward>,
    /// Drop forwarded traffic that is not to or from a Berth bridge: set when Berth itself turned
    /// forwarding on, so enabling it opens nothing else.
    pub restrict_forwarding: bool,
}

fn elements(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", items.join(", "))
    }
}

impl Forward {
    /// The map that holds this forward: `{tcp,udp}_{any,ip}`.
    fn map(&self) -> String {
        let by = if self.host_ip.is_some() { "ip" } else { "any" };
        format!("{}_{by}", self.proto.as_str())
    }

    /// The map key: the host port, preceded by the host address when bound to one.
    fn key(&self) -> String {
        match self.host_ip {
            Some(ip) => format!("{ip} . {}", self.host_port),
            None => self.host_port.to_string(),
        }
    }

    /// The map element: key and destination.
    fn element(&self) -> String {
        format!("{} : {} . {}", self.key(), self.addr, self.port)
    }
}

impl Ruleset {
    /// The nft script that turns `old` (what the kernel holds) into this ruleset: element
    /// additions and removals when only the published ports differ, which is what starting or
    /// removing a container changes, else the whole table ([`Ruleset::render`]). Either way one
    /// transaction.
    pub fn render_from(&self, old: &Ruleset) -> String {
        if old.bridges != self.bridges || old.restrict_forwarding != self.restrict_forwarding {
            return self.render();
        }
        let mut s = String::new();
        for f in old.forwards.iter().filter(|f| !self.forwards.contains(f)) {
            s += &format!("delete element ip {TABLE} {} {{ {} }}\n", f.map(), f.key());
        }
        for f in self.forwards.iter().filter(|f| !old.forwards.contains(f)) {
            s += &format!("add element ip {TABLE} {} {{ {} }}\n", f.map(), f.element());
        }
        s
    }

    /// Starts bringing the kernel's table from `old` (what it holds; `None` when unknown) to this
    /// ruleset, in the background so the caller can overlap it with other setup: element updates
    /// when only ports differ (see [`Ruleset::render_from`]), nothing when they are equal, else
    /// the whole table.
    pub fn start_from(&self, old: Option<&Ruleset>) -> Result<Pending, NetError> {
        let script = match old {
            Some(old) => self.render_from(old),
            None => self.render(),
        };
        if script.is_empty() {
            return Ok(Pending(None));
        }
        spawn_nft(&script).map(|child| Pending(Some(child)))
    }

    /// The nft script that replaces the table.
    pub fn render(&self) -> String {
        let subnets: Vec<String> = self.bridges.iter().map(|(_, n)| n.to_string()).collect();
        let bridges: Vec<String> = self
            .bridges
            .iter()
            .map(|(b, _)| format!("\"{b}\""))
            .collect();
        let map = |proto: Proto, by_ip: bool| -> Vec<String> {
            self.forwards
                .iter()
                .filter(|f| f.proto == proto && f.host_ip.is_some() == by_ip)
                .map(Forward::element)
                .collect()
        };
        let mut s = format!("add table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
        s += &format!(
            "  set subnets {{ type ipv4_addr; flags interval;{} }}\n",
            elements(&subnets)
        );
        s += &format!("  set bridges {{ type ifname;{} }}\n", elements(&bridges));
        for proto in [Proto::Tcp, Proto::Udp] {
            let p = proto.as_str();
            s += &format!(
                "  map {p}_any {{ type inet_service : ipv4_addr . inet_service;{} }}\n",
                elements(&map(proto, false))
            );
            s += &format!(
                "  map {p}_ip {{ type ipv4_addr . inet_service : ipv4_addr . inet_service;{} }}\n",
                elements(&map(proto, true))
            );
        }
        let dnat = || {
            let mut r = String::new();
            for p in ["tcp", "udp"] {
                r += &format!("    dnat ip to ip daddr . {p} dport map @{p}_ip\n");
                r += &format!("    fib daddr type local dnat ip to {p} dport map @{p}_any\n");
            }
            r
        };
        s += "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n";
        s += &dnat();
        s += "  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n";
        s += &dnat();
        s += "  }\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
        s += "    ip saddr @subnets oifname != @bridges masquerade\n";
        s += "    ip saddr 127.0.0.0/8 oifname @bridges masquerade\n";
        s += "    ct status dnat ip saddr @subnets oifname @bridges masquerade\n";
        s += "  }\n  chain forward {\n    type filter hook forward priority filter; policy accept;\n";
        if self.restrict_forwarding {
            s += "    iifname @bridges accept\n    oifname @bridges accept\n    drop\n";
        }
        s += "  }\n}\n";
        s
    }

    /// Replaces Berth's table with this ruleset in one transaction.
    pub fn apply(&self) -> Result<(), NetError> {
        self.start_from(None)?.wait()
    }
}

/// An `nft` transaction under way; [`Pending::wait`] tells how it ended. Dropping it waits too, so
/// no child is left unreaped.
pub struct Pending(Option<std::process::Child>);

impl Pending {
    /// Waits for the transaction; its error is nft's first line.
    pub fn wait(mut self) -> Result<(), NetError> {
        match self.0.take() {
            Some(child) => finish_nft(child),
            None => Ok(()),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            let _ = finish_nft(child);
        }
    }
}

/// Starts `nft -f -` with `script` on its stdin.
fn spawn_nft(script: &str) -> Result<std::process::Child, NetError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::io("run nft", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(script.as_bytes()) {
            drop(stdin);
            let _ = finish_nft(child);
            return Err(NetError::io("write to nft", e));
        }
    }
    Ok(child)
}

fn finish_nft(child: std::process::Child) -> Result<(), NetError> {
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::io("wait for nft", e))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("failed").to_owned();
        Err(NetError::Nft(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ports_as_map_elements() {
        let r = Ruleset {
            bridges: vec![("berth0".into(), "172.17.0.0/16".parse().unwrap())],
            forwards: vec![
                Forward {
                    proto: Proto::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    addr: Ipv4Addr::new(172, 17, 0, 2),
                    port: 80,
                },
                Forward {
                    proto: Proto::Udp,
                    host_ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
                    host_port: 53,
                    addr: Ipv4Addr::new(172, 17, 0, 3),
                    port: 5353,
                },
            ],
            restrict_forwarding: false,
        };
        let s = r.render();
        assert!(s.contains("map tcp_any { type inet_service : ipv4_addr . inet_service; elements = { 8080 : 172.17.0.2 . 80 }; }"));
        assert!(s.contains("elements = { 10.0.0.1 . 53 : 172.17.0.3 . 5353 }"));
        assert!(s.contains("elements = { \"berth0\" }"));
        assert!(!s.contains("drop"));
    }

    #[test]
    fn a_change_of_ports_alone_is_element_updates() {
        let web = Forward {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            addr: Ipv4Addr::new(172, 17, 0, 2),
            port: 80,
        };
        let dns = Forward {
            proto: Proto::Udp,
            host_ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
            host_port: 53,
            addr: Ipv4Addr::new(172, 17, 0, 3),
            port: 5353,
        };
        let base = Ruleset {
            bridges: vec![("berth0".into(), "172.17.0.0/16".parse().unwrap())],
            forwards: vec![web.clone()],
            restrict_forwarding: false,
        };
        assert_eq!(
            base.render_from(&base),
            "",
            "an unchanged table needs no transaction"
        );
        let next = Ruleset {
            forwards: vec![dns],
            ..base.clone()
        };
        assert_eq!(
            next.render_from(&base),
            "delete element ip berth tcp_any { 8080 }\n\
             add element ip berth udp_ip { 10.0.0.1 . 53 : 172.17.0.3 . 5353 }\n"
        );
        let bridged = Ruleset {
            bridges: vec![],
            ..next.clone()
        };
        assert_eq!(
            bridged.render_from(&next),
            bridged.render(),
            "a bridge change rebuilds"
        );
    }
}
