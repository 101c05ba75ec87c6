//! `/etc/hosts` of a container on a bridge network: loopback names, its own address with its
//! hostname and name, and on user networks one line per peer, which is how containers there find
//! each other by name (the file is rewritten in place, so the bind mount sees each change).

use super::state::{Endpoint, DEFAULT_NETWORK};

/// The hosts file of `own`, given every endpoint of the node.
pub fn render<'a>(own: &Endpoint, all: impl Iterator<Item = &'a Endpoint>) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for a in &own.attachments {
        s += &format!("{}\t{} {}\n", a.ip, own.hostname, own.name);
    }
    let user_nets: Vec<&str> = own
        .attachments
        .iter()
        .map(|a| a.network.as_str())
        .filter(|n| *n != DEFAULT_NETWORK)
        .collect();
    for peer in all.filter(|p| p.container != own.container) {
        for a in peer
            .attachments
            .iter()
            .filter(|a| user_nets.contains(&a.network.as_str()))
        {
            let short = &peer.container[..12.min(peer.container.len())];
            s += &format!("{}\t{} {}\n", a.ip, peer.name, short);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::state::Attachment;
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(id: &str, name: &str, net: &str, last: u8) -> Endpoint {
        Endpoint {
            container: id.repeat(12),
            name: name.into(),
            hostname: id.repeat(12),
            attachments: vec![Attachment {
                network: net.into(),
                network_id: "n".into(),
                ifname: "eth0".into(),
                veth: "v".into(),
                ip: Ipv4Addr::new(172, 18, 0, last),
                subnet: "172.18.0.0/16".parse().unwrap(),
            }],
            ports: vec![],
        }
    }

    #[test]
    fn peers_on_user_networks_only() {
        let a = ep("a", "web", "app", 2);
        let b = ep("b", "db", "app", 3);
        let c = ep("c", "other", "bridge", 4);
        let text = render(&a, [&a, &b, &c].into_iter());
        assert!(text.contains("172.18.0.2\taaaaaaaaaaaa web\n"));
        assert!(text.contains("172.18.0.3\tdb bbbbbbbbbbbb\n"));
        assert!(!text.contains("other"));
        let d = ep("d", "lonely", "bridge", 5);
        let text = render(&d, [&c, &d].into_iter());
        assert!(!text.contains("other"), "{text}");
    }
}
