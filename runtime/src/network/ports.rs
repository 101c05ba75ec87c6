//! Host ports: whether one is free (by binding it, which also sees host processes), and an
//! ephemeral one from the kernel's local port range when `-p 80` leaves the choice to us.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

/// Transport protocol of a forwarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// "tcp" or "udp", as nft and Docker spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Whether `port` can be bound on `ip` (all addresses when `None`) right now. The socket is closed
/// at once: publishing is done by DNAT, not by holding a listener.
pub fn check_free(ip: Option<Ipv4Addr>, port: u16, proto: Proto) -> std::io::Result<()> {
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    match proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    }
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), Docker's pool for `-p 80`.
pub fn ephemeral_range() -> std::ops::RangeInclusive<u16> {
    let fallback = 32768..=60999;
    let Ok(s) = super::read_sysctl("net.ipv4.ip_local_port_range") else {
        return fallback;
    };
    let mut it = s.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) if a <= b => a..=b,
        _ => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_not_bindable() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = check_free(Some(Ipv4Addr::LOCALHOST), port, Proto::Tcp).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        drop(l);
        assert!(check_free(Some(Ipv4Addr::LOCALHOST), port, Proto::Tcp).is_ok());
    }
}
