//! `berth runtime` error paths: each fails with a non-zero exit, one line on
//! stderr that names the problem, and leaves nothing behind.

mod common;

use std::fs;

use common::*;

#[test]
fn missing_binary_fails_create_and_leaves_nothing() {
    let ctx = Ctx::new();
    let id = ctx.id("nobin");
    let mut b = ctx.bundle(&id);
    b.args(&["no-such-binary-xyz"]);
    let out = ctx.create(&b, &id);
    ctx.assert_error(&out, &["no-such-binary-xyz"]);
    ctx.assert_clean(&b, &id);
    assert!(ctx.state(&id).is_none(), "failed create left a container");
}

#[test]
fn missing_binary_fails_run_and_leaves_nothing() {
    let ctx = Ctx::new();
    let id = ctx.id("nobinrun");
    let mut b = ctx.bundle(&id);
    b.args(&["/bin/no-such-binary-xyz"]);
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    ctx.assert_error(&out, &["no-such-binary-xyz"]);
    ctx.assert_clean(&b, &id);
}

#[test]
fn rootfs_that_is_not_a_directory_is_rejected() {
    let ctx = Ctx::new();
    let id = ctx.id("rootfile");
    let b = ctx.bundle(&id);
    fs::remove_dir_all(b.rootfs()).unwrap();
    fs::write(b.rootfs(), "not a directory\n").unwrap();
    let out = ctx.create(&b, &id);
    ctx.assert_error(&out, &["not a directory", "rootfs"]);
    ctx.assert_clean(&b, &id);
    assert!(ctx.state(&id).is_none());
}

#[test]
fn missing_rootfs_is_rejected() {
    let ctx = Ctx::new();
    let id = ctx.id("norootfs");
    let b = ctx.bundle(&id);
    fs::remove_dir_all(b.rootfs()).unwrap();
    let out = ctx.create(&b, &id);
    ctx.assert_error(&out, &["no such file", "not found", "not exist", "rootfs"]);
    ctx.assert_clean(&b, &id);
}

#[test]
fn malformed_config_is_rejected() {
    let ctx = Ctx::new();
    let id = ctx.id("badjson");
    let b = ctx.bundle(&id);
    // Not through Ctx::create, which would rewrite config.json.
    fs::write(b.dir.join("config.json"), "{\"ociVersion\": \"1.0.2\", bad").unwrap();
    let out = ctx.rt(&["create", "--bundle", s(&b.dir), &id]);
    ctx.assert_error(
        &out,
        &["config", "json", "invalid", "parse", "syntax", "expected"],
    );
    ctx.assert_clean(&b, &id);
    assert!(ctx.state(&id).is_none());
}

#[test]
fn missing_config_is_rejected() {
    let ctx = Ctx::new();
    let id = ctx.id("noconfig");
    let b = ctx.bundle(&id);
    fs::remove_file(b.dir.join("config.json")).unwrap();
    let out = ctx.rt(&["create", "--bundle", s(&b.dir), &id]);
    ctx.assert_error(
        &out,
        &["config.json", "no such file", "not found", "not exist"],
    );
    ctx.assert_clean(&b, &id);
}

#[test]
fn unknown_id_is_an_error_for_every_command() {
    let ctx = Ctx::new();
    let id = ctx.id("ghost");
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
        vec!["ps", id.as_str()],
    ] {
        let out = ctx.rt(&args);
        ctx.assert_error(&out, &["not exist", "not found", "no such", "unknown", &id]);
    }
    assert!(!ctx.root.join(&id).exists());
}

#[test]
fn duplicate_id_is_rejected_and_the_first_survives() {
    let ctx = Ctx::new();
    let id = ctx.id("dup");
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "600"]);
    ctx.create(&b, &id).ok();
    let first = ctx.state(&id).expect("first container");

    let mut b2 = ctx.bundle(&id);
    b2.args(&["true"]);
    let out = ctx.create(&b2, &id);
    ctx.assert_error(&out, &["already exists", "exists", "in use", "duplicate"]);

    // The original container is untouched.
    let now = ctx.state(&id).expect("first container still there");
    assert_eq!(now["pid"], first["pid"]);
    assert_eq!(now["bundle"], first["bundle"]);
    assert_eq!(now["status"], "created");

    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_clean(&b, &id);
    ctx.assert_clean(&b2, &id);
}

#[test]
fn invalid_container_ids_are_rejected() {
    let ctx = Ctx::new();
    let id = ctx.id("valid");
    let b = ctx.bundle(&id);
    b.write();
    for bad in ["../escape", "a/b", ".."] {
        let out = ctx.rt(&["create", "--bundle", s(&b.dir), bad]);
        assert!(
            !out.success(),
            "create with id {bad:?} should fail: {}",
            out.describe()
        );
        assert!(!out.stderr.trim().is_empty(), "no error for id {bad:?}");
    }
    assert!(
        !ctx.dir.join("escape").exists(),
        "id escaped the state root"
    );
    ctx.assert_clean(&b, &id);
}

#[test]
fn unknown_signal_is_rejected() {
    let ctx = Ctx::new();
    let id = ctx.id("badsig");
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "600"]);
    ctx.create(&b, &id).ok();
    let out = ctx.rt(&["kill", &id, "NOTASIGNAL"]);
    ctx.assert_error(&out, &["signal", "NOTASIGNAL"]);
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn delete_force_of_an_unknown_id_succeeds() {
    // runc and crun both exit 0 here: `delete --force` is idempotent
    // cleanup, which engines rely on.
    let ctx = Ctx::new();
    let id = ctx.id("gone");
    let out = ctx.rt(&["delete", "--force", &id]);
    assert!(out.success(), "{}", out.describe());
    assert!(!ctx.root.join(&id).exists());
}
