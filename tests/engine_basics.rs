//! The daemon and the CLI without containers: the daemon comes up, `info` and `version` answer,
//! bad flags and unknown objects are one line and exit 125, a missing client configuration is a
//! clear error, several daemons run side by side, SIGTERM stops the daemon cleanly, and
//! `berth daemon` hands its flags to `berthd` (or names it when it is missing).

mod engine;

use std::process::Command;
use std::time::Duration;

use engine::{berth_bin, run_cmd, unique, Daemon, TestNetns};

#[test]
fn daemon_comes_up_and_info_answers() {
    let d = Daemon::start();
    let out = d.berth(&["info"]).ok();
    assert!(out.stdout.contains("Server Version:"), "{}", out.stdout);
    assert!(out.stdout.contains("Nodes: 1"), "{}", out.stdout);
    assert!(out.stdout.contains("ready"), "{}", out.stdout);
    let json = d.berth(&["info", "--format", "json"]).ok().json();
    assert_eq!(json["Containers"], 0);
    assert_eq!(json["Nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["Nodes"][0]["Ready"], true);
    assert_eq!(json["ProtocolVersion"], protocol::PROTOCOL_VERSION);
    let name = d.berth(&["info", "-f", "{{.Name}}"]).ok().line();
    assert_eq!(json["Name"], name.as_str());
}

#[test]
fn client_config_is_private_and_names_the_controller() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let meta = std::fs::metadata(d.config()).expect("client.toml");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(d.config()).expect("read client.toml");
    for key in [
        "controller = \"127.0.0.1:",
        "server_name = ",
        "cert = ",
        "key = ",
        "ca = ",
    ] {
        assert!(text.contains(key), "client.toml lacks {key}:\n{text}");
    }
    assert!(
        !text.contains("127.0.0.1:0\""),
        "port 0 must be replaced by the bound port:\n{text}"
    );
}

#[test]
fn version_prints_client_and_server() {
    let d = Daemon::start();
    let out = d.berth(&["version"]).ok();
    assert!(out.stdout.contains("Client:"), "{}", out.stdout);
    assert!(out.stdout.contains("Server:"), "{}", out.stdout);
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        out.stdout
    );
}

#[test]
fn empty_daemon_lists_nothing() {
    let d = Daemon::start();
    let out = d.berth(&["ps", "-a"]).ok();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out
        .stdout
        .starts_with("CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES"));
    assert_eq!(d.berth(&["ps", "-aq"]).ok().stdout, "");
    assert_eq!(d.berth(&["ps", "--format", "json"]).ok().stdout, "");
    let out = d.berth(&["volume", "ls", "-q"]).ok();
    assert_eq!(out.stdout, "");
}

#[test]
fn bad_flags_exit_125_with_one_line() {
    let d = Daemon::start();
    for args in [
        vec!["run", "--bogus", "busybox"],
        vec!["ps", "--nope"],
        vec!["run", "--memory", "lots", "busybox"],
        vec!["run", "--restart", "sometimes", "busybox"],
        vec!["run", "-p", "99999:80", "busybox"],
        vec!["run", "-v", "relative/path:/x", "busybox"],
        vec!["run", "--cpus", "-1", "busybox"],
        vec!["logs", "--since", "yesterday-ish", "x"],
        vec!["stop"],
        vec!["frobnicate"],
        vec!["ps", "--filter", "colour=red"],
        vec!["ps", "--filter", "nokeyvalue"],
    ] {
        d.berth(&args).fails(125);
    }
}

#[test]
fn unknown_containers_are_named() {
    let d = Daemon::start();
    let ghost = unique("ghost");
    for verb in [
        vec!["start", ghost.as_str()],
        vec!["stop", ghost.as_str()],
        vec!["kill", ghost.as_str()],
        vec!["rm", ghost.as_str()],
        vec!["rm", "-f", ghost.as_str()],
        vec!["restart", ghost.as_str()],
        vec!["pause", ghost.as_str()],
        vec!["unpause", ghost.as_str()],
        vec!["logs", ghost.as_str()],
        vec!["wait", ghost.as_str()],
        vec!["top", ghost.as_str()],
        vec!["diff", ghost.as_str()],
        vec!["exec", ghost.as_str(), "true"],
        vec!["attach", ghost.as_str()],
        vec!["rename", ghost.as_str(), "other"],
        vec!["stats", "--no-stream", ghost.as_str()],
        vec!["inspect", ghost.as_str()],
    ] {
        let out = d.berth(&verb).fails(125);
        assert_eq!(
            out.stderr_lines()[0],
            format!("berth: no such container: {ghost}"),
            "{verb:?}"
        );
    }
}

#[test]
fn missing_image_is_a_clear_error() {
    let d = Daemon::start();
    let image = unique("noimage");
    // --pull never: no test reaches a registry it did not start.
    let out = d.berth(&["run", "--pull", "never", &image]).fails(125);
    assert!(
        out.stderr.contains("no such image") && out.stderr.contains(&image),
        "{}",
        out.describe()
    );
    let out = d
        .berth(&["create", "--pull", "never", &image, "true"])
        .fails(125);
    assert!(out.stderr.contains("no such image"), "{}", out.describe());
    assert_eq!(
        d.berth(&["ps", "-aq"]).ok().stdout,
        "",
        "nothing was created"
    );
}

#[test]
fn missing_config_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nowhere/client.toml");
    let mut cmd = Command::new(berth_bin());
    cmd.arg("--config").arg(&missing).arg("ps");
    let out = run_cmd(cmd, None, Duration::from_secs(30), dir.path()).fails(125);
    assert!(out.stderr.contains("client.toml"), "{}", out.describe());
    assert!(out.stderr.contains("berth daemon"), "{}", out.describe());

    // BERTH_CONFIG is honoured the same way.
    let mut cmd = Command::new(berth_bin());
    cmd.env("BERTH_CONFIG", &missing).arg("info");
    let out = run_cmd(cmd, None, Duration::from_secs(30), dir.path()).fails(125);
    assert!(
        out.stderr.contains(missing.to_str().unwrap()),
        "{}",
        out.describe()
    );
}

#[test]
fn config_pointing_at_nothing_fails_fast() {
    let d = Daemon::start();
    let text = std::fs::read_to_string(d.config()).unwrap();
    let other = d.path("client.toml");
    // A port nothing listens on (this daemon's, plus one, is as good a guess as any; the
    // certificate check would refuse any other berth daemon anyway).
    let port: u16 = text
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let bad = text.replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", port.wrapping_add(1).max(1)),
    );
    std::fs::write(&other, bad).unwrap();
    let mut cmd = Command::new(berth_bin());
    cmd.arg("--config").arg(&other).arg("ps");
    d.netns.enter(&mut cmd);
    let started = std::time::Instant::now();
    let out = run_cmd(cmd, None, Duration::from_secs(30), &d.dir).fails(125);
    assert!(out.stderr.contains("cannot connect"), "{}", out.describe());
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_monitor_binary_from_another_build_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(berth_bin(), bin.join("berth")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_berthd"), bin.join("berthd")).unwrap();
    // A monitor that speaks interface 1 (before --wait-for-go).
    let shim = bin.join("berth-shim");
    std::fs::write(&shim, "#!/bin/sh\necho 1\n").unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let netns = TestNetns::new();
    let mut cmd = Command::new(bin.join("berth"));
    cmd.arg("daemon")
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["--listen", "127.0.0.1:0"]);
    netns.enter(&mut cmd);
    let out = run_cmd(cmd, None, Duration::from_secs(30), dir.path());
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("speaks interface 1")
            && out.stderr.contains("install both from one build"),
        "{}",
        out.describe()
    );
    assert!(
        !dir.path().join("root/client.toml").exists(),
        "no client configuration for a daemon that did not start"
    );
}

#[test]
fn two_daemons_run_side_by_side() {
    let a = Daemon::start();
    let b = Daemon::start();
    let na = a.berth(&["info", "--format", "json"]).ok().json();
    let nb = b.berth(&["info", "--format", "json"]).ok().json();
    assert_eq!(na["Nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(nb["Nodes"].as_array().map(Vec::len), Some(1));
    // Each CLI trusts only its own cluster's CA: a's identity cannot talk to b.
    let ta = std::fs::read_to_string(a.config()).unwrap();
    let tb = std::fs::read_to_string(b.config()).unwrap();
    let addr_b = tb.lines().find(|l| l.starts_with("controller")).unwrap();
    let addr_a = ta.lines().find(|l| l.starts_with("controller")).unwrap();
    let crossed = a.path("crossed.toml");
    std::fs::write(&crossed, ta.replace(addr_a, addr_b)).unwrap();
    let mut cmd = Command::new(berth_bin());
    cmd.arg("--config").arg(&crossed).arg("info");
    // In b's network namespace, where b's controller listens.
    b.netns.enter(&mut cmd);
    run_cmd(cmd, None, Duration::from_secs(30), &a.dir).fails(125);
}

#[test]
fn sigterm_stops_the_daemon_and_a_restart_reuses_the_pki() {
    let mut d = Daemon::start();
    let ca = std::fs::read(d.root.join("pki/ca/ca.pem")).expect("CA certificate");
    assert_eq!(d.terminate(), Some(0), "daemon exit code after SIGTERM");
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(log.contains("ready"), "{log}");
    d.restart();
    d.berth(&["info"]).ok();
    assert_eq!(
        std::fs::read(d.root.join("pki/ca/ca.pem")).unwrap(),
        ca,
        "the cluster CA is reused"
    );
}

#[test]
fn daemon_flags_are_berthds_and_a_missing_berthd_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `berth daemon --help` is the help of berthd, under the name users type.
    let mut cmd = Command::new(berth_bin());
    cmd.args(["daemon", "--help"]);
    let out = run_cmd(cmd, None, Duration::from_secs(30), dir.path()).ok();
    assert!(out.stdout.contains("Usage: berth daemon"), "{}", out.stdout);
    assert!(out.stdout.contains("--bridge-subnet"), "{}", out.stdout);
    // Its flag errors are one line, exit 125, like every berth error.
    let mut cmd = Command::new(berth_bin());
    cmd.args(["daemon", "--listen", "nowhere"]);
    let out = run_cmd(cmd, None, Duration::from_secs(30), dir.path()).fails(125);
    assert!(out.stderr.starts_with("berth: "), "{}", out.stderr);
    assert!(out.stderr.contains("--listen"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    // A berth installed without its daemon says what is missing.
    let alone = dir.path().join("berth");
    std::fs::copy(berth_bin(), &alone).expect("copy berth");
    let mut cmd = Command::new(&alone);
    cmd.args(["daemon", "--root"]).arg(dir.path().join("root"));
    let out = run_cmd(cmd, None, Duration::from_secs(30), dir.path()).fails(125);
    assert!(out.stderr.contains("berthd"), "{}", out.stderr);
    assert!(!dir.path().join("root").exists(), "nothing may be set up");
}
