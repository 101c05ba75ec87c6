//! `berth runtime` lifecycle: spec, create/start/state/kill/delete, run,
//! exit codes and signals, pid files, ps.

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn spec_writes_a_default_config() {
    let ctx = Ctx::new();
    let dir = ctx.mkdir("spec");
    ctx.rt(&["spec", "--bundle", s(&dir)]).ok();
    let config: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(config["ociVersion"].is_string(), "{config}");
    assert_eq!(config["root"]["path"], "rootfs", "{config}");
    assert!(config["process"]["args"].is_array(), "{config}");
    assert!(config["process"]["cwd"].is_string(), "{config}");
    assert!(config["mounts"].is_array(), "{config}");
    let ns: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for want in ["pid", "mount", "uts", "ipc", "network"] {
        assert!(ns.contains(&want), "namespace {want} missing: {ns:?}");
    }
}

#[test]
fn run_propagates_exit_code_and_leaves_nothing() {
    let ctx = Ctx::new();
    let id = ctx.id("exit");
    let mut b = ctx.bundle(&id);
    b.sh("echo hello; exit 42");
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert_eq!(out.code(), Some(42), "{}", out.describe());
    assert_eq!(out.stdout.trim(), "hello", "{}", out.describe());
    // `run` deletes the container once it exited, like runc.
    ctx.assert_clean(&b, &id);
    assert!(ctx.state(&id).is_none(), "state still known after run");
}

#[test]
fn run_of_true_and_false() {
    let ctx = Ctx::new();
    let id = ctx.id("true");
    let mut b = ctx.bundle(&id);
    b.args(&["true"]);
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    ctx.assert_clean(&b, &id);

    let id = ctx.id("false");
    let mut b = ctx.bundle(&id);
    b.args(&["false"]);
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    ctx.assert_clean(&b, &id);
}

#[test]
fn create_does_not_run_the_program_until_start() {
    let ctx = Ctx::new();
    let id = ctx.id("create");
    let mut b = ctx.bundle(&id);
    let shared = ctx.mkdir("shared");
    b.bind(&shared, "/out", false)
        .sh("echo started > /out/marker");
    let pid_file = ctx.path("pidfile");
    b.write();
    ctx.rt(&[
        "create",
        "--bundle",
        s(&b.dir),
        "--pid-file",
        s(&pid_file),
        &id,
    ])
    .ok();

    let st = ctx.state(&id).expect("state after create");
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str(), "{st}");
    assert!(st["ociVersion"].is_string(), "{st}");
    assert_eq!(st["bundle"], b.dir.to_str().unwrap(), "{st}");
    // runc reports the absolute path; a path relative to the bundle names
    // the same directory.
    let rootfs = b.dir.join(st["rootfs"].as_str().expect("rootfs in state"));
    assert_eq!(rootfs, b.rootfs(), "{st}");
    assert!(
        st["created"].as_str().is_some_and(|c| c.contains('T')),
        "created should be an RFC 3339 time: {st}"
    );
    assert!(st.get("owner").is_some(), "state has no owner: {st}");
    let pid = st["pid"].as_i64().expect("pid in state");
    assert!(pid > 1, "{st}");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "created container's init (pid {pid}) is not alive"
    );
    let from_file: i64 = fs::read_to_string(&pid_file)
        .expect("--pid-file written")
        .trim()
        .parse()
        .expect("pid file holds a number");
    assert_eq!(from_file, pid, "pid file and state disagree");

    // Created, not started: the program has not run. Give it a fair chance
    // to misbehave before checking.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !shared.join("marker").exists(),
        "the user program ran before start"
    );
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));

    ctx.rt(&["start", &id]).ok();
    let content = poll("the program to write its marker", WAIT_TIMEOUT, || {
        fs::read_to_string(shared.join("marker"))
            .ok()
            .filter(|s| !s.is_empty())
    });
    assert_eq!(content.trim(), "started");
    ctx.wait_status(&id, "stopped");

    // A stopped container cannot be started again.
    let again = ctx.rt(&["start", &id]);
    assert!(!again.success(), "start of a stopped container should fail");

    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
    assert!(ctx.state(&id).is_none());
}

#[test]
fn kill_stops_a_detached_container() {
    let ctx = Ctx::new();
    let id = ctx.id("kill");
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "600"]);
    b.write();
    let pid_file = ctx.path("pidfile");
    ctx.rt(&[
        "run",
        "--detach",
        "--pid-file",
        s(&pid_file),
        "--bundle",
        s(&b.dir),
        &id,
    ])
    .ok();
    let st = ctx.wait_status(&id, "running");
    let pid = st["pid"].as_i64().unwrap();
    let from_file: i64 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(from_file, pid);

    // Deleting a running container without --force is refused.
    let del = ctx.rt(&["delete", &id]);
    assert!(!del.success(), "delete of a running container should fail");
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));

    ctx.rt(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    poll("the init process to be gone", WAIT_TIMEOUT, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn delete_force_removes_a_running_container() {
    let ctx = Ctx::new();
    let id = ctx.id("force");
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "600"]);
    b.write();
    ctx.rt(&["run", "-d", "--bundle", s(&b.dir), &id]).ok();
    let pid = ctx.wait_status(&id, "running")["pid"].as_i64().unwrap();
    ctx.rt(&["delete", "--force", &id]).ok();
    assert!(ctx.state(&id).is_none(), "state still known after delete");
    poll("the init process to be gone", WAIT_TIMEOUT, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    ctx.assert_clean(&b, &id);
}

#[test]
fn delete_force_removes_a_created_container() {
    let ctx = Ctx::new();
    let id = ctx.id("forcec");
    let b = ctx.bundle(&id);
    ctx.create(&b, &id).ok();
    ctx.wait_status(&id, "created");
    ctx.rt(&["delete", "--force", &id]).ok();
    assert!(ctx.state(&id).is_none());
    ctx.assert_clean(&b, &id);
}

/// Starts `trap 'echo got-term; exit 3' TERM; ...` in the foreground and
/// sends TERM the way `signal` spells it (None: the default signal).
fn term_is_delivered(ctx: &Ctx, signal: Option<&str>) {
    let id = ctx.id("term");
    let mut b = ctx.bundle(&id);
    b.sh("trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 1 & wait; done");
    b.write();
    let mut cmd = ctx.command(&["run", "--bundle", s(&b.dir), &id]);
    let run = ctx.spawn(&mut cmd);
    poll("the trap to be installed", WAIT_TIMEOUT, || {
        run.stdout_now().contains("ready").then_some(())
    });
    let mut args = vec!["kill", id.as_str()];
    args.extend(signal);
    ctx.rt(&args).ok();
    let out = run.wait("foreground run", CMD_TIMEOUT);
    assert_eq!(
        out.code(),
        Some(3),
        "kill {signal:?} should reach the trap: {}",
        out.describe()
    );
    assert!(out.stdout.contains("got-term"), "{}", out.describe());
    ctx.assert_clean(&b, &id);
}

#[test]
fn kill_defaults_to_term() {
    term_is_delivered(&Ctx::new(), None);
}

#[test]
fn kill_accepts_signal_names_and_numbers() {
    let ctx = Ctx::new();
    for sig in ["TERM", "SIGTERM", "15"] {
        term_is_delivered(&ctx, Some(sig));
    }
}

#[test]
fn foreground_run_killed_exits_128_plus_signal() {
    let ctx = Ctx::new();
    let id = ctx.id("sigkill");
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "600"]);
    b.write();
    let mut cmd = ctx.command(&["run", "--bundle", s(&b.dir), &id]);
    let run = ctx.spawn(&mut cmd);
    ctx.wait_status(&id, "running");
    ctx.rt(&["kill", &id, "9"]).ok();
    let out = run.wait("foreground run", CMD_TIMEOUT);
    assert_eq!(out.code(), Some(128 + 9), "{}", out.describe());
    ctx.assert_clean(&b, &id);
}

#[test]
fn child_killed_by_signal_is_reported_by_the_shell() {
    let ctx = Ctx::new();
    let id = ctx.id("child");
    let mut b = ctx.bundle(&id);
    // A non-init process has default signal dispositions.
    b.sh("sh -c 'kill -TERM $$'; echo child=$?");
    let out = ctx.run_ok(&b, &id);
    assert_eq!(out.trim(), "child=143");
}

#[test]
fn ps_lists_the_container_processes() {
    let ctx = Ctx::new();
    let id = ctx.id("ps");
    let mut b = ctx.bundle(&id);
    b.sh("sleep 600 & sleep 600");
    b.write();
    ctx.rt(&["run", "--detach", "--bundle", s(&b.dir), &id])
        .ok();
    let pid = ctx.wait_status(&id, "running")["pid"].as_i64().unwrap();
    let pids: Vec<i64> = poll("ps to list both processes", WAIT_TIMEOUT, || {
        let out = ctx.rt(&["ps", "--format", "json", &id]).ok();
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("ps --format json: {e}: {}", out.describe()));
        let pids: Vec<i64> = v
            .as_array()
            .expect("a JSON array of pids")
            .iter()
            .map(|p| p.as_i64().expect("pid numbers"))
            .collect();
        (pids.len() >= 2).then_some(pids)
    });
    assert!(pids.contains(&pid), "init {pid} missing from {pids:?}");
    assert_eq!(pids.len(), 2, "{pids:?}");

    let table = ctx.rt(&["ps", &id]).ok().stdout;
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.contains("PID"), "no PID column: {table}");
    assert!(
        table.contains(&pid.to_string()),
        "init pid {pid} not in table: {table}"
    );

    ctx.rt(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn kill_all_stops_every_process() {
    let ctx = Ctx::new();
    let id = ctx.id("killall");
    let mut b = ctx.bundle(&id);
    b.sh("sleep 600 & sleep 600");
    b.write();
    ctx.rt(&["run", "--detach", "--bundle", s(&b.dir), &id])
        .ok();
    ctx.wait_status(&id, "running");
    ctx.rt(&["kill", "--all", &id, "SIGKILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn bundle_defaults_to_the_current_directory() {
    let ctx = Ctx::new();
    let id = ctx.id("cwdbundle");
    let mut b = ctx.bundle(&id);
    b.sh("echo from-cwd-bundle");
    b.write();

    // `spec` without --bundle writes ./config.json.
    let spec_dir = ctx.mkdir("spec-cwd");
    let mut cmd = ctx.command(&["spec"]);
    cmd.current_dir(&spec_dir);
    ctx.output(cmd, "spec in cwd", CMD_TIMEOUT).ok();
    assert!(
        spec_dir.join("config.json").exists(),
        "spec wrote no ./config.json"
    );

    // `run` without --bundle uses the current directory.
    let mut cmd = ctx.command(&["run", &id]);
    cmd.current_dir(&b.dir);
    let out = ctx.output(cmd, "run in bundle dir", CMD_TIMEOUT).ok();
    assert_eq!(out.stdout.trim(), "from-cwd-bundle");
    ctx.assert_clean(&b, &id);

    // `create` too, and state reports the absolute bundle path.
    let id = ctx.id("cwdcreate");
    let mut cmd = ctx.command(&["create", &id]);
    cmd.current_dir(&b.dir);
    ctx.output(cmd, "create in bundle dir", CMD_TIMEOUT).ok();
    let st = ctx.state(&id).expect("state");
    assert_eq!(st["bundle"], s(&b.dir), "{st}");
    ctx.rt(&["delete", "--force", &id]).ok();
    assert!(ctx.state(&id).is_none());
}
