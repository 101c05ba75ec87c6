//! Container networking on one host, synchronous and actor-free: subnets and address management
//! (`cidr`, `ipam`), network namespaces held by a bind mount (`netns`), bridges, veth pairs,
//! addresses and routes over rtnetlink (`link`), Berth's own nftables table for port publishing and
//! masquerade (`nft`), and host-port availability (`ports`). The agent's network actor decides; this
//! module only performs.

pub mod cidr;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod nft;
pub mod ports;

pub use cidr::Ipv4Net;

#[cfg(test)]
mod tests;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("netlink {what}: {source}")]
    Netlink {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("nft: {0}")]
    Nft(String),
    #[error("network namespace thread panicked")]
    Panicked,
}

impl NetError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> NetError {
        NetError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn errno(what: impl Into<String>, e: nix::Error) -> NetError {
        NetError::io(what, std::io::Error::from_raw_os_error(e as i32))
    }
}

/// Writes a sysctl under `/proc/sys/net` of the caller's network namespace.
pub fn sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| NetError::io(format!("write {path}"), e))
}

/// Reads a sysctl under `/proc/sys/net` of the caller's network namespace.
pub fn read_sysctl(key: &str) -> Result<String, NetError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| NetError::io(format!("read {path}"), e))
}
