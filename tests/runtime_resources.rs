//! `linux.resources` from the spec, as a user notices them: a memory limit
//! OOM-kills a hog, a pids limit stops a fork bomb.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const MIB: u64 = 1024 * 1024;

#[test]
fn memory_limit_oom_kills_a_hog() {
    let ctx = Ctx::new();
    let id = ctx.id("oom");
    let mut b = ctx.bundle(&id);
    b.resources("memory", json!({"limit": 32 * MIB, "swap": 32 * MIB}))
        .sh(concat!(
            "dd if=/dev/zero of=/dev/null bs=1M count=1 2>/dev/null && echo small-ok; ",
            "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?"
        ));
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("small-ok"),
        "a small allocation must work: {}",
        out.describe()
    );
    assert!(
        out.stdout.contains("dd=137"),
        "the 64 MiB hog should be SIGKILLed: {}",
        out.describe()
    );
    ctx.assert_clean(&b, &id);
}

#[test]
fn memory_limit_oom_kill_of_init_is_reported_as_137() {
    let ctx = Ctx::new();
    let id = ctx.id("oominit");
    let mut b = ctx.bundle(&id);
    b.resources("memory", json!({"limit": 32 * MIB, "swap": 32 * MIB}))
        .args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.code() == Some(137) || out.status.signal() == Some(9),
        "expected exit 137: {}",
        out.describe()
    );
    ctx.assert_clean(&b, &id);
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let ctx = Ctx::new();
    let id = ctx.id("pids");
    let mut b = ctx.bundle(&id);
    // The inner shell aborts once fork fails; init then execs (no fork
    // needed) into a long sleep so the container stays up to be killed.
    b.resources("pids", json!({"limit": 8})).sh(concat!(
        "sh -c 'i=0; while [ $i -lt 20 ]; do sleep 600 & i=$((i+1)); done; echo all-spawned'; ",
        "echo bomb-done; exec sleep 600"
    ));
    b.write();
    let created = ctx
        .rt(&["run", "--detach", "--bundle", s(&b.dir), &id])
        .ok();
    poll("the fork bomb to hit the limit", WAIT_TIMEOUT, || {
        created.stdout_now().contains("bomb-done").then_some(())
    });
    let stdout = created.stdout_now();
    let stderr = created.stderr_now();
    assert!(
        !stdout.contains("all-spawned"),
        "20 processes were spawned despite pids.limit=8\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("can't fork") || stderr.contains("Resource temporarily unavailable"),
        "{stderr}"
    );
    // Still controllable.
    let st = ctx.wait_status(&id, "running");
    assert!(st["pid"].as_i64().unwrap() > 0);
    let ps = ctx.rt(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<serde_json::Value> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(
        pids.len() <= 8,
        "more processes than the limit: {}",
        ps.stdout
    );
    ctx.rt(&["kill", "--all", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.rt_timeout(&["delete", &id], Duration::from_secs(30))
        .ok();
    ctx.assert_clean(&b, &id);
}
