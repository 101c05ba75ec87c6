//! Bridges, veth pairs, addresses and routes through rtnetlink. Each call opens a netlink socket
//! on a private current-thread tokio runtime in the calling thread, so it acts on that thread's
//! network namespace (see [`super::netns`]) and stays synchronous for its caller.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::cidr::Ipv4Net;
use super::NetError;

type Result<T> = std::result::Result<T, NetError>;

fn nl(what: &str) -> impl FnOnce(rtnetlink::Error) -> NetError + '_ {
    move |source| NetError::Netlink {
        what: what.to_owned(),
        source,
    }
}

fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// Runs `f` with a netlink handle bound to the calling thread's network namespace.
fn run<T, F, Fut>(f: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| NetError::io("netlink runtime", e))?;
    rt.block_on(async move {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| NetError::io("netlink socket", e))?;
        let task = tokio::spawn(conn);
        let result = f(handle).await;
        task.abort();
        result
    })
}

async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl("get link")(e)),
    }
}

async fn add_address(h: &Handle, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    match h
        .address()
        .add(index, IpAddr::V4(addr), prefix)
        .execute()
        .await
    {
        Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
        r => r.map_err(nl("add address")),
    }
}

async fn set_up(h: &Handle, index: u32) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl("set link up"))
}

/// Makes sure the bridge `name` exists, is up and carries the gateway address of `net`; returns
/// its interface index.
pub fn ensure_bridge(name: &str, net: &Ipv4Net) -> Result<u32> {
    run(|h| async move {
        let index = match index_of(&h, name).await? {
            Some(i) => i,
            None => {
                match h.link().add(LinkBridge::new(name).build()).execute().await {
                    Err(e) if errno_of(&e) == Some(libc::EEXIST) => {}
                    r => r.map_err(nl("add bridge"))?,
                }
                index_of(&h, name).await?.ok_or_else(|| {
                    NetError::io(
                        format!("bridge {name}"),
                        std::io::Error::from_raw_os_error(libc::ENODEV),
                    )
                })?
            }
        };
        add_address(&h, index, net.gateway(), net.prefix()).await?;
        set_up(&h, index).await?;
        Ok(index)
    })
}

/// Deletes the link `name` if it exists (a veth's peer goes with it).
pub fn delete_link(name: &str) -> Result<()> {
    run(|h| async move {
        let Some(index) = index_of(&h, name).await? else {
            return Ok(());
        };
        match h.link().del(index).execute().await {
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(()),
            r => r.map_err(nl("delete link")),
        }
    })
}

/// Puts the host end of a veth into `bridge` and brings it up.
pub fn enslave(port: &str, bridge: &str) -> Result<()> {
    run(|h| async move {
        let missing = |n: &str| {
            NetError::io(
                format!("link {n}"),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        };
        let br = index_of(&h, bridge).await?.ok_or_else(|| missing(bridge))?;
        let p = index_of(&h, port).await?.ok_or_else(|| missing(port))?;
        h.link()
            .set(LinkUnspec::new_with_index(p).controller(br).up().build())
            .execute()
            .await
            .map_err(nl("attach veth to bridge"))
    })
}

/// The IPv4 destinations the caller's namespace routes (connected networks included), so a new
/// subnet can avoid them.
pub fn routed_subnets() -> Result<Vec<Ipv4Net>> {
    run(|h| async move {
        let mut routes = h
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let mut out = Vec::new();
        while let Some(r) = routes.try_next().await.map_err(nl("list routes"))? {
            if r.header.address_family != AddressFamily::Inet {
                continue;
            }
            let dest = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(*d),
                _ => None,
            });
            if let Some(net) =
                dest.and_then(|d| Ipv4Net::new(d, r.header.destination_prefix_length).ok())
            {
                out.push(net);
            }
        }
        Ok(out)
    })
}

/// One container interface: a veth whose container end is `ifname` with `addr` in `net`, and whose
/// host end is `host_name` in the namespace `host_ns`.
pub struct VethSpec<'a> {
    pub ifname: &'a str,
    pub host_name: &'a str,
    pub addr: Ipv4Addr,
    pub net: Ipv4Net,
    /// Install the default route via the network's gateway (the first network only).
    pub default_route: bool,
}

/// Docker's MAC scheme: 02:42 followed by the IPv4 address, stable for an address.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// In the calling thread's (container) namespace: brings `lo` up when asked, creates the veth with
/// its host end created directly in `host_ns` (no move between namespaces), and configures the
/// container end's address, state and route.
pub fn plug_veth(host_ns: BorrowedFd<'_>, spec: &VethSpec<'_>, lo_up: bool) -> Result<()> {
    let host_fd = host_ns.as_raw_fd();
    run(|h| async move {
        if lo_up {
            if let Some(lo) = index_of(&h, "lo").await? {
                set_up(&h, lo).await?;
            }
        }
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.host_name.to_owned())
            .setns_by_fd(host_fd)
            .build();
        let veth = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(spec.ifname.to_owned())
            .address(mac_for(spec.addr).to_vec())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        h.link().add(veth).execute().await.map_err(nl("add veth"))?;
        let index = index_of(&h, spec.ifname).await?.ok_or_else(|| {
            NetError::io(
                format!("link {}", spec.ifname),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?;
        add_address(&h, index, spec.addr, spec.net.prefix()).await?;
        set_up(&h, index).await?;
        if spec.default_route {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(spec.net.gateway())
                .output_interface(index)
                .build();
            h.route()
                .add(route)
                .execute()
                .await
                .map_err(nl("add default route"))?;
        }
        Ok(())
    })
}
