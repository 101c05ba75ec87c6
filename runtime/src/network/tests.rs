//! The kernel-facing parts for real, each test inside a network namespace it unshares for itself
//! (on its own thread), so the host's network is never touched: a bridge with its gateway, a
//! container namespace pinned on a file with a veth whose host end lands in the bridge, routes as
//! seen from both sides, and removal.

use std::net::Ipv4Addr;

use nix::sched::{unshare, CloneFlags};

use super::link::{self, VethSpec};
use super::{netns, Ipv4Net};

/// Runs `f` on a thread inside a fresh network namespace of its own.
fn isolated<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare a test network namespace");
            f()
        })
        .join()
        .expect("test thread")
    })
}

#[test]
fn a_container_namespace_on_a_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("ns");
    isolated(|| {
        let net: Ipv4Net = "10.200.0.0/24".parse().unwrap();
        link::ensure_bridge("brtest0", &net).unwrap();
        // Idempotent: a second call finds the bridge and its address.
        link::ensure_bridge("brtest0", &net).unwrap();
        assert!(link::routed_subnets().unwrap().contains(&net));

        let spec = VethSpec {
            ifname: "eth0",
            host_name: "vethtest0",
            addr: Ipv4Addr::new(10, 200, 0, 2),
            net,
            default_route: true,
        };
        let inside = netns::create(&pin, |host| {
            link::plug_veth(host, &spec, true)?;
            link::routed_subnets()
        })
        .unwrap();
        assert!(inside.contains(&net), "{inside:?}");
        link::enslave("vethtest0", "brtest0").unwrap();

        // The pinned namespace can be entered again later.
        let again = netns::enter(&pin, link::routed_subnets).unwrap();
        assert_eq!(again, inside);

        link::delete_link("vethtest0").unwrap();
        link::delete_link("vethtest0").unwrap();
        let after = netns::enter(&pin, link::routed_subnets).unwrap();
        assert!(!after.contains(&net), "eth0 went with its peer: {after:?}");
        netns::remove(&pin).unwrap();
        netns::remove(&pin).unwrap();
        assert!(!pin.exists());
    });
}

#[test]
fn a_failed_setup_leaves_no_namespace_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("ns");
    isolated(|| {
        let spec = VethSpec {
            ifname: "eth0",
            host_name: "vethtest1",
            addr: Ipv4Addr::new(10, 201, 0, 2),
            net: "10.201.0.0/24".parse().unwrap(),
            default_route: true,
        };
        let made = netns::create(&pin, |host| {
            link::plug_veth(host, &spec, true)?;
            // The same names again cannot be created.
            link::plug_veth(host, &spec, false)
        });
        assert!(made.is_err());
        assert!(!pin.exists());
        link::delete_link("vethtest1").unwrap();
    });
}

#[test]
fn the_table_is_replaced_whole() {
    use super::nft::{Forward, Ruleset};
    use super::ports::Proto;
    let list = || {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "ip", "berth"])
            .output()
            .expect("run nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    isolated(|| {
        let mut rules = Ruleset {
            bridges: vec![("berth0".into(), "172.17.0.0/16".parse().unwrap())],
            forwards: vec![Forward {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                addr: Ipv4Addr::new(172, 17, 0, 2),
                port: 80,
            }],
            restrict_forwarding: true,
        };
        rules.apply().unwrap();
        let text = list();
        assert!(text.contains("8080 : 172.17.0.2 . 80"), "{text}");
        assert!(text.contains("drop"), "{text}");
        rules.forwards.clear();
        rules.apply().unwrap();
        let text = list();
        assert!(!text.contains("8080"), "{text}");
        assert!(text.contains("masquerade"), "{text}");
    });
}
