//! Networking end to end, each daemon inside the test's own network namespace: addresses handed
//! out in order on the default bridge, containers reaching each other, published ports answering
//! on 127.0.0.1 and on the test host's own address (and only on the address asked for), port
//! conflicts refused before anything starts, leases and nftables rules gone after `rm`, published
//! ports surviving a daemon restart, name resolution on a user network, `--network host`, and bad
//! input as one-line errors.

mod engine;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use engine::{poll, unique, Daemon, WAIT_TIMEOUT};

/// An address of the test host inside its namespace (on a veth pair the test made: this kernel
/// has no dummy driver).
const HOST_ADDR: &str = "10.213.0.1";

fn add_host_address(d: &Daemon) {
    d.netns.ip(&[
        "link", "add", "bdummy0", "type", "veth", "peer", "name", "bdummy1",
    ]);
    d.netns
        .ip(&["addr", "add", &format!("{HOST_ADDR}/24"), "dev", "bdummy0"]);
    d.netns.ip(&["link", "set", "bdummy0", "up"]);
}

/// One HTTP GET from inside the test's namespace; the body, or `None` if nothing answered.
fn http_get(d: &Daemon, addr: &str, path: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().expect("socket address");
    let path = path.to_owned();
    d.netns.run_in(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then(|| body.to_owned())
    })
}

/// Starts busybox httpd serving `/www/index.html` = `body`, with `publish` flags.
fn web(d: &Daemon, name: &str, body: &str, publish: &[&str]) {
    let script =
        format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www");
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(publish);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    d.berth(&args).ok();
}

fn wait_answer(d: &Daemon, addr: &str, body: &str) {
    poll(&format!("{body} at {addr}"), WAIT_TIMEOUT, || {
        http_get(d, addr, "/index.html").filter(|b| b.trim() == body)
    });
}

fn ip_of(d: &Daemon, name: &str) -> String {
    d.inspect_field(name, "{{.NetworkSettings.IPAddress}}")
}

#[test]
fn addresses_in_order_and_containers_reach_each_other() {
    let d = Daemon::with_busybox();
    let (a, b) = (unique("a"), unique("b"));
    d.berth(&["run", "-d", "--name", &a, "busybox", "sleep", "300"])
        .ok();
    d.berth(&["run", "-d", "--name", &b, "busybox", "sleep", "300"])
        .ok();
    let net = d.berth(&["network", "inspect", "bridge"]).ok().json();
    let subnet = net[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        subnet, "172.17.0.0/16",
        "a fresh namespace routes nothing in 172.17/16"
    );
    assert_eq!(ip_of(&d, &a), "172.17.0.2");
    assert_eq!(ip_of(&d, &b), "172.17.0.3");
    assert_eq!(
        d.inspect_field(&a, "{{.NetworkSettings.Gateway}}"),
        "172.17.0.1"
    );
    let out = d
        .berth(&["exec", &a, "ping", "-c", "1", "-W", "5", "172.17.0.3"])
        .ok();
    assert!(
        out.stdout.contains("1 packets received"),
        "{}",
        out.describe()
    );
    // Inside: eth0 with the address, a default route via the gateway, the files Docker writes.
    let inside = d
        .berth(&[
            "exec",
            &a,
            "sh",
            "-c",
            "ip -4 addr show eth0; ip route; cat /etc/hosts /etc/hostname",
        ])
        .ok()
        .stdout;
    assert!(inside.contains("inet 172.17.0.2/16"), "{inside}");
    assert!(
        inside.contains("default via 172.17.0.1 dev eth0"),
        "{inside}"
    );
    assert!(inside.contains("172.17.0.2\t"), "{inside}");
    assert!(inside.contains(&a), "hosts names the container: {inside}");
    let resolv = d
        .berth(&["exec", &a, "cat", "/etc/resolv.conf"])
        .ok()
        .stdout;
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
}

#[test]
fn published_port_answers_on_loopback_and_on_the_host_address() {
    let d = Daemon::with_busybox();
    add_host_address(&d);
    let name = unique("web");
    web(&d, &name, "hello-published", &["-p", "18080:80"]);
    wait_answer(&d, "127.0.0.1:18080", "hello-published");
    wait_answer(&d, &format!("{HOST_ADDR}:18080"), "hello-published");
    let ps = d.berth(&["ps"]).ok().stdout;
    assert!(ps.contains("0.0.0.0:18080->80/tcp"), "{ps}");
    assert_eq!(
        d.berth(&["port", &name]).ok().line(),
        "80/tcp -> 0.0.0.0:18080"
    );
    assert_eq!(d.berth(&["port", &name, "80"]).ok().line(), "0.0.0.0:18080");
    let ports = d.inspect_field(&name, "{{json .NetworkSettings.Ports}}");
    assert_eq!(
        ports,
        r#"{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"18080"}]}"#
    );
    let bindings = d.inspect_field(&name, "{{json .HostConfig.PortBindings}}");
    assert_eq!(bindings, r#"{"80/tcp":[{"HostIp":"","HostPort":"18080"}]}"#);
}

#[test]
fn a_port_bound_to_one_address_answers_only_there() {
    let d = Daemon::with_busybox();
    add_host_address(&d);
    let name = unique("web");
    web(
        &d,
        &name,
        "only-here",
        &["-p", &format!("{HOST_ADDR}:7777:80")],
    );
    wait_answer(&d, &format!("{HOST_ADDR}:7777"), "only-here");
    assert_eq!(http_get(&d, "127.0.0.1:7777", "/index.html"), None);
    assert_eq!(
        d.berth(&["port", &name]).ok().line(),
        format!("80/tcp -> {HOST_ADDR}:7777")
    );
}

#[test]
fn ephemeral_ranges_and_udp_ports() {
    let d = Daemon::with_busybox();
    let name = unique("many");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        "80",
        "-p",
        "18090-18091:90-91",
        "-p",
        "18053:53/udp",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let lines: Vec<String> = d
        .berth(&["port", &name])
        .ok()
        .stdout
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        lines.contains(&"90/tcp -> 0.0.0.0:18090".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"91/tcp -> 0.0.0.0:18091".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"53/udp -> 0.0.0.0:18053".to_owned()),
        "{lines:?}"
    );
    let eph = lines
        .iter()
        .find_map(|l| l.strip_prefix("80/tcp -> 0.0.0.0:"))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("an ephemeral port for 80: {lines:?}"));
    assert!(eph >= 1024, "{eph}");
}

#[test]
fn publish_all_uses_the_exposed_ports() {
    let d = Daemon::start();
    let tar = engine::busybox_tarball(&d.dir);
    d.berth(&[
        "import",
        "-c",
        "EXPOSE 80 53/udp",
        tar.to_str().unwrap(),
        "exposing",
    ])
    .ok();
    let name = unique("pub");
    d.berth(&[
        "run", "-d", "-P", "--name", &name, "exposing", "sleep", "300",
    ])
    .ok();
    let out = d.berth(&["port", &name]).ok().stdout;
    assert!(out.contains("80/tcp -> 0.0.0.0:"), "{out}");
    assert!(out.contains("53/udp -> 0.0.0.0:"), "{out}");
}

#[test]
fn taken_ports_are_refused_before_anything_starts() {
    let d = Daemon::with_busybox();
    let first = unique("first");
    d.berth(&[
        "run", "-d", "--name", &first, "-p", "18082:80", "busybox", "sleep", "300",
    ])
    .ok();
    let second = unique("second");
    let out = d
        .berth(&[
            "run", "-d", "--name", &second, "-p", "18082:80", "busybox", "sleep", "300",
        ])
        .fails(125);
    assert!(out.stderr.contains("18082"), "{}", out.describe());
    assert!(
        out.stderr.contains("already allocated"),
        "{}",
        out.describe()
    );
    assert_ne!(d.status(&second), "running");

    // A host process listening in the test's namespace.
    let listener: TcpListener = d
        .netns
        .run_in(|| TcpListener::bind("0.0.0.0:18083").expect("bind a host port"));
    let third = unique("third");
    let out = d
        .berth(&[
            "run", "-d", "--name", &third, "-p", "18083:80", "busybox", "sleep", "300",
        ])
        .fails(125);
    assert!(
        out.stderr.contains("in use on the host"),
        "{}",
        out.describe()
    );
    assert_ne!(d.status(&third), "running");
    drop(listener);
    // Once free, starting the same container works.
    d.berth(&["start", &third]).ok();
    assert_eq!(d.status(&third), "running");
}

#[test]
fn rm_releases_the_address_and_the_rules() {
    let d = Daemon::with_busybox();
    let a = unique("a");
    d.berth(&[
        "run", "-d", "--name", &a, "-p", "18084:80", "busybox", "sleep", "300",
    ])
    .ok();
    assert_eq!(ip_of(&d, &a), "172.17.0.2");
    let nft = |d: &Daemon| {
        let out = d
            .netns
            .command("nft")
            .args(["list", "table", "ip", "berth"])
            .output()
            .expect("run nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let links = |d: &Daemon| {
        let out = d
            .netns
            .command("ip")
            .args(["-o", "link"])
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(nft(&d).contains("18084 : 172.17.0.2 . 80"), "{}", nft(&d));
    assert!(links(&d).contains("veth"), "{}", links(&d));
    d.berth(&["rm", "-f", &a]).ok();
    assert!(!nft(&d).contains("18084"), "{}", nft(&d));
    assert!(!links(&d).contains("veth"), "{}", links(&d));
    assert!(
        std::fs::read_dir(d.root.join("netns"))
            .unwrap()
            .next()
            .is_none(),
        "no pinned namespace left"
    );
    let b = unique("b");
    d.berth(&[
        "run", "-d", "--name", &b, "-p", "18084:80", "busybox", "sleep", "300",
    ])
    .ok();
    assert_eq!(
        ip_of(&d, &b),
        "172.17.0.2",
        "the address is handed out again"
    );
    // Stopping releases too.
    d.berth(&["stop", "-t", "1", &b]).ok();
    assert!(!nft(&d).contains("18084"), "{}", nft(&d));
    assert_eq!(d.berth(&["port", &b]).ok().stdout, "");
}

#[test]
fn published_ports_survive_a_daemon_restart() {
    let mut d = Daemon::with_busybox();
    let name = unique("web");
    web(&d, &name, "still-here", &["-p", "18086:80"]);
    wait_answer(&d, "127.0.0.1:18086", "still-here");
    d.kill9();
    assert_eq!(
        http_get(&d, "127.0.0.1:18086", "/index.html")
            .as_deref()
            .map(str::trim),
        Some("still-here"),
        "the kernel keeps forwarding while the daemon is down"
    );
    d.restart();
    wait_answer(&d, "127.0.0.1:18086", "still-here");
    assert_eq!(
        d.berth(&["port", &name]).ok().line(),
        "80/tcp -> 0.0.0.0:18086"
    );
    // A second container cannot take the port after the restart either.
    d.berth(&["run", "-d", "-p", "18086:80", "busybox", "sleep", "1"])
        .fails(125);
}

#[test]
fn user_network_containers_resolve_each_other_by_name() {
    let d = Daemon::with_busybox();
    let net = unique("net");
    let id = d.berth(&["network", "create", &net]).ok().line();
    assert_eq!(id.len(), 64, "{id}");
    let ls = d.berth(&["network", "ls"]).ok().stdout;
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    for n in [net.as_str(), "bridge", "host", "none"] {
        assert!(
            ls.lines().any(|l| l.split_whitespace().nth(1) == Some(n)),
            "{n}: {ls}"
        );
    }
    let (a, b) = (unique("a"), unique("b"));
    for c in [&a, &b] {
        d.berth(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            &net,
            "busybox",
            "sleep",
            "300",
        ])
        .ok();
    }
    let out = d
        .berth(&["exec", &a, "ping", "-c", "1", "-W", "5", &b])
        .ok();
    assert!(
        out.stdout.contains("1 packets received"),
        "{}",
        out.describe()
    );
    let out = d
        .berth(&["exec", &b, "ping", "-c", "1", "-W", "5", &a])
        .ok();
    assert!(
        out.stdout.contains("1 packets received"),
        "{}",
        out.describe()
    );
    let info = d.berth(&["network", "inspect", &net]).ok().json();
    assert_eq!(info[0]["Containers"].as_object().map(|m| m.len()), Some(2));

    let out = d.berth(&["network", "rm", &net]).fails(125);
    assert!(
        out.stderr.contains("active endpoints"),
        "{}",
        out.describe()
    );
    d.berth(&["rm", "-f", &a, &b]).ok();
    assert_eq!(d.berth(&["network", "rm", &net]).ok().line(), net);
    d.berth(&["network", "inspect", &net]).fails(125);
}

#[test]
fn connect_adds_an_interface_on_another_network() {
    let d = Daemon::with_busybox();
    let net = unique("net");
    d.berth(&["network", "create", "--subnet", "172.30.0.0/24", &net])
        .ok();
    let (a, b) = (unique("a"), unique("b"));
    d.berth(&["run", "-d", "--name", &a, "busybox", "sleep", "300"])
        .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        &b,
        "--network",
        &net,
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    d.berth(&["network", "connect", &net, &a]).ok();
    let nets: serde_json::Value =
        serde_json::from_str(&d.inspect_field(&a, "{{json .NetworkSettings.Networks}}")).unwrap();
    assert_eq!(nets[&net]["IPAddress"], "172.30.0.3", "{nets}");
    assert_eq!(nets["bridge"]["IPAddress"], "172.17.0.2", "{nets}");
    let out = d
        .berth(&["exec", &a, "ping", "-c", "1", "-W", "5", &b])
        .ok();
    assert!(
        out.stdout.contains("1 packets received"),
        "{}",
        out.describe()
    );
    d.berth(&["network", "disconnect", &net, &a]).ok();
    let links = d.berth(&["exec", &a, "ip", "-o", "link"]).ok().stdout;
    assert!(!links.contains("eth1"), "{links}");
}

#[test]
fn host_network_sees_the_test_host() {
    let d = Daemon::with_busybox();
    add_host_address(&d);
    let out = d
        .berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "ip",
            "-o",
            "addr",
        ])
        .ok();
    assert!(out.stdout.contains("bdummy0"), "{}", out.describe());
    assert!(out.stdout.contains(HOST_ADDR), "{}", out.describe());
}

/// `--network none`: a network namespace of its own with only its loopback, which is up, as in
/// Docker, so a process can still reach itself on 127.0.0.1.
#[test]
fn none_network_has_only_loopback() {
    let d = Daemon::with_busybox();
    let out = d
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ip",
            "-o",
            "link",
        ])
        .ok();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.describe());
    assert!(out.stdout.contains("lo"), "{}", out.describe());
    assert!(out.stdout.contains(",UP"), "lo is down: {}", out.describe());
}

#[test]
fn bad_network_input_is_one_line() {
    let d = Daemon::with_busybox();
    for bad in [
        vec!["run", "-p", "99999:80", "busybox", "true"],
        vec!["run", "-p", "abc", "busybox", "true"],
        vec!["run", "-p", "8000-8010:80", "busybox", "true"],
        vec!["run", "--network", "nope", "busybox", "true"],
        vec!["network", "create", "--subnet", "300.1.0.0/16", "x1"],
        vec!["network", "rm", "bridge"],
        vec!["network", "inspect", "nope"],
    ] {
        d.berth(&bad).fails(125);
    }
    assert_eq!(
        d.berth(&["ps", "-aq"]).ok().stdout,
        "",
        "nothing was created"
    );
}

#[test]
fn bridge_subnet_flag_overrides_the_default() {
    let d = Daemon::start_with(&["--bridge-subnet", "10.77.0.0/24"]);
    d.import_busybox("busybox");
    let name = unique("c");
    d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "300"])
        .ok();
    assert_eq!(ip_of(&d, &name), "10.77.0.2");
}

#[test]
fn the_default_bridge_avoids_a_subnet_in_use() {
    // Like docker0 on 172.17.0.0/16: the daemon must take 172.18.
    let d = Daemon::start_prepared(&[], |ns| {
        ns.ip(&[
            "link",
            "add",
            "fakedocker0",
            "type",
            "veth",
            "peer",
            "name",
            "fakedocker1",
        ]);
        ns.ip(&["addr", "add", "172.17.0.1/16", "dev", "fakedocker0"]);
        ns.ip(&["link", "set", "fakedocker0", "up"]);
    });
    let net = d.berth(&["network", "inspect", "bridge"]).ok().json();
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
}

#[test]
fn leases_of_containers_that_died_while_the_daemon_was_down_are_released() {
    let mut d = Daemon::with_busybox();
    let name = unique("gone");
    d.berth(&[
        "run", "-d", "--name", &name, "-p", "18087:80", "busybox", "sleep", "300",
    ])
    .ok();
    let pid: i32 = d.inspect_field(&name, "{{.State.Pid}}").parse().unwrap();
    d.kill9();
    // SAFETY: kill(2) of the init of this test's own container.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    poll("the container's init to die", WAIT_TIMEOUT, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    d.restart();
    d.wait_status(&name, "exited");
    let out = d
        .netns
        .command("nft")
        .args(["list", "table", "ip", "berth"])
        .output()
        .expect("run nft");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!table.contains("18087"), "{table}");
    d.berth(&["run", "-d", "-p", "18087:80", "busybox", "sleep", "300"])
        .ok();
}
