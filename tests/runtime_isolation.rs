//! What a user sees inside a `berth runtime` container: namespaces, masked
//! and read-only /proc paths, capabilities, seccomp, /dev, users, env, cwd,
//! rlimits and the mounts from the spec.

mod common;

use std::fs;

use common::*;
use serde_json::json;

#[test]
fn process_is_pid_1_with_the_spec_hostname() {
    let ctx = Ctx::new();
    let id = ctx.id("pid1");
    let mut b = ctx.bundle(&id);
    b.hostname("box-under-test")
        .sh("echo pid=$$; echo host=$(hostname); cat /proc/sys/kernel/hostname");
    let out = ctx.run_ok(&b, &id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["pid=1", "host=box-under-test", "box-under-test"],
        "{out}"
    );
}

#[test]
fn host_processes_are_invisible() {
    let ctx = Ctx::new();
    let id = ctx.id("pidns");
    let mut b = ctx.bundle(&id);
    b.sh("ls /proc; echo ---; ps -o pid,comm");
    let out = ctx.run_ok(&b, &id);
    let (proc_ls, ps) = out.split_once("---").expect("two parts");
    let pids: Vec<u32> = proc_ls
        .split_whitespace()
        .filter_map(|e| e.parse().ok())
        .collect();
    // sh, ls (and nothing of the host's).
    assert!(pids.contains(&1), "pid 1 missing from /proc: {pids:?}");
    assert!(pids.len() <= 3, "host processes visible in /proc: {pids:?}");
    let me = std::process::id();
    assert!(
        me <= 3 || !pids.contains(&me),
        "the test's own pid {me} is visible"
    );
    let ps_lines: Vec<&str> = ps.lines().filter(|l| !l.trim().is_empty()).collect();
    // Header + sh + ps.
    assert!(ps_lines.len() <= 4, "ps shows host processes: {ps}");
}

#[test]
fn host_mounts_are_invisible() {
    let ctx = Ctx::new();
    let id = ctx.id("mntns");
    let mut b = ctx.bundle(&id);
    b.args(&["cat", "/proc/self/mountinfo"]);
    let out = ctx.run_ok(&b, &id);
    let inside = parse_mountinfo(&out);
    assert!(
        inside.iter().any(|m| m.mount_point == "/"),
        "no root mount inside: {out}"
    );
    let tmp = ctx.dir.to_string_lossy().into_owned();
    // Host mount points that are not standard container mounts.
    let host_only: Vec<String> = host_mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| {
            p != "/"
                && !["/proc", "/sys", "/dev"]
                    .iter()
                    .any(|s| p == s || p.starts_with(&format!("{s}/")))
        })
        .collect();
    for m in &inside {
        assert!(
            !m.mount_point.contains(&tmp) && !m.mount_point.starts_with("/work"),
            "host path mounted inside: {}",
            m.line
        );
        assert!(
            !host_only.contains(&m.mount_point),
            "host-only mount visible inside: {}",
            m.line
        );
    }
}

#[test]
fn proc_kcore_is_masked_and_proc_sys_is_read_only() {
    let ctx = Ctx::new();
    let id = ctx.id("procmask");
    let mut b = ctx.bundle(&id);
    b.sh(concat!(
        "echo kcore=$(cat /proc/kcore | wc -c); ",
        "echo evil > /proc/sys/kernel/hostname; echo write=$?; ",
        "echo host=$(hostname)"
    ));
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("kcore=0"), "{}", out.describe());
    assert!(
        out.stdout.contains("write=1") || out.stdout.contains("write=2"),
        "writing /proc/sys should fail: {}",
        out.describe()
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("host=berth-test"), "{}", out.describe());
}

#[test]
fn capabilities_are_exactly_the_requested_set() {
    let ctx = Ctx::new();
    let id = ctx.id("caps");
    let mut b = ctx.bundle(&id);
    b.caps(DOCKER_CAPS)
        .args(&["grep", "^Cap", "/proc/self/status"]);
    let out = ctx.run_ok(&b, &id);
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap_or_else(|| panic!("{k} missing: {out}"))
            .trim()
            .to_owned()
    };
    assert_eq!(get("CapEff"), DOCKER_CAPS_HEX, "{out}");
    assert_eq!(get("CapPrm"), DOCKER_CAPS_HEX, "{out}");
    assert_eq!(get("CapBnd"), DOCKER_CAPS_HEX, "{out}");
    assert_eq!(get("CapInh"), "0000000000000000", "{out}");
    assert_eq!(get("CapAmb"), "0000000000000000", "{out}");
}

#[test]
fn no_capabilities_means_none() {
    let ctx = Ctx::new();
    let id = ctx.id("nocaps");
    let mut b = ctx.bundle(&id);
    b.caps(&[])
        .sh("grep ^CapEff /proc/self/status; mkdir -p /tmp/d; touch /tmp/d/f && echo touched");
    let out = ctx.run_ok(&b, &id);
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("touched"), "{out}");
}

#[test]
fn seccomp_denied_syscall_fails_with_eperm() {
    let ctx = Ctx::new();
    let id = ctx.id("seccomp");
    let mut b = ctx.bundle(&id);
    b.seccomp(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
        ]
    }))
    .sh("touch /tmp/file && echo touch-ok; mkdir /tmp/x; echo mkdir=$?");
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("touch-ok"), "{}", out.describe());
    assert!(out.stdout.contains("mkdir=1"), "{}", out.describe());
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.describe()
    );
    assert!(!b.rootfs().join("tmp/x").exists());
}

#[test]
fn seccomp_errno_ret_is_honoured() {
    let ctx = Ctx::new();
    let id = ctx.id("errnoret");
    let mut b = ctx.bundle(&id);
    b.seccomp(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // ENOSPC = 28
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}
        ]
    }))
    .sh("mkdir /tmp/x; echo mkdir=$?");
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.stdout.contains("mkdir=1"), "{}", out.describe());
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.describe()
    );
}

#[test]
fn dev_has_the_standard_devices() {
    let ctx = Ctx::new();
    let id = ctx.id("dev");
    let mut b = ctx.bundle(&id);
    b.sh(concat!(
        "for d in null zero full random urandom tty; do ",
        "  test -c /dev/$d || echo missing-$d; done; ",
        "test -c /dev/pts/ptmx || echo missing-ptmx; ",
        "test -e /dev/ptmx || echo missing-devptmx; ",
        "test -d /dev/shm || echo missing-shm; ",
        "echo data > /dev/null && echo null-ok; ",
        "echo zero=$(head -c 16 /dev/zero | wc -c); ",
        "echo urandom=$(head -c 16 /dev/urandom | wc -c); ",
        "echo x > /dev/full; echo full=$?; ",
        "touch /dev/shm/f && echo shm-ok"
    ));
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    let so = &out.stdout;
    assert!(!so.contains("missing"), "{}", out.describe());
    for want in ["null-ok", "zero=16", "urandom=16", "full=1", "shm-ok"] {
        assert!(so.contains(want), "{want}: {}", out.describe());
    }
}

#[test]
fn devices_outside_the_spec_are_not_accessible() {
    let ctx = Ctx::new();
    let id = ctx.id("nodev");
    let mut b = ctx.bundle(&id);
    // Even with CAP_MKNOD, the device cgroup denies a disk device node.
    b.caps(DOCKER_CAPS)
        .sh("busybox mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda > /dev/null; echo read=$?");
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.stdout.contains("read=1"), "{}", out.describe());
}

#[test]
fn user_group_and_additional_groups() {
    let ctx = Ctx::new();
    let id = ctx.id("user");
    let mut b = ctx.bundle(&id);
    b.user(1000, 1000, &[10, 20])
        .sh("id; touch /root/x 2>/dev/null && echo root-writable || echo root-denied");
    fs::set_permissions(
        b.rootfs().join("root"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let out = ctx.run_ok(&b, &id);
    let line = out.lines().next().unwrap_or_default();
    assert!(line.starts_with("uid=1000 gid=1000"), "{out}");
    let groups = line.split("groups=").nth(1).unwrap_or_default();
    let groups: Vec<&str> = groups.split(',').map(|g| g.trim()).collect();
    assert!(groups.contains(&"10"), "{out}");
    assert!(groups.contains(&"20"), "{out}");
    assert!(out.contains("root-denied"), "{out}");
}

#[test]
fn env_and_cwd() {
    let ctx = Ctx::new();
    let id = ctx.id("envcwd");
    let mut b = ctx.bundle(&id);
    fs::create_dir_all(b.rootfs().join("srv/app")).unwrap();
    b.env(&["PATH=/bin", "GREETING=hello world", "EMPTY="])
        .cwd("/srv/app")
        .sh("pwd; echo \"g=$GREETING\"; env | grep -c ^ ; echo \"e=[$EMPTY]\"");
    let out = ctx.run_ok(&b, &id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/srv/app", "{out}");
    assert_eq!(lines[1], "g=hello world", "{out}");
    assert_eq!(lines[3], "e=[]", "{out}");
    // Nothing of the host environment leaks in (sh may add PWD/SHLVL).
    let n: usize = lines[2].parse().unwrap();
    assert!(n <= 6, "unexpected environment size {n}: {out}");
}

#[test]
fn host_environment_does_not_leak() {
    let ctx = Ctx::new();
    let id = ctx.id("envleak");
    let mut b = ctx.bundle(&id);
    b.env(&["PATH=/bin"]).args(&["env"]);
    b.write();
    let mut cmd = ctx.command(&["run", "--bundle", s(&b.dir), &id]);
    cmd.env("BERTH_TEST_SECRET", "leaked");
    let out = ctx.spawn(&mut cmd).wait("run", CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    assert!(!out.stdout.contains("leaked"), "{}", out.describe());
    assert!(out.stdout.contains("PATH=/bin"), "{}", out.describe());
}

#[test]
fn rlimits_are_applied() {
    let ctx = Ctx::new();
    let id = ctx.id("rlimit");
    let mut b = ctx.bundle(&id);
    b.rlimits(json!([
        {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
        {"type": "RLIMIT_NPROC", "soft": 1111, "hard": 2222}
    ]))
    .sh("ulimit -n; ulimit -Hn; ulimit -u");
    let out = ctx.run_ok(&b, &id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["321", "654", "1111"], "{out}");
}

#[test]
fn read_only_rootfs() {
    let ctx = Ctx::new();
    let id = ctx.id("rorootfs");
    let mut b = ctx.bundle(&id);
    b.readonly(true).add_mount(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777"]
    }));
    b.sh("touch /newfile; echo root=$?; touch /tmp/ok && echo tmp-ok");
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("root=1"), "{}", out.describe());
    assert!(out.stdout.contains("tmp-ok"), "{}", out.describe());
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.describe()
    );
    assert!(!b.rootfs().join("newfile").exists());
}

#[test]
fn writable_rootfs_writes_reach_the_bundle() {
    let ctx = Ctx::new();
    let id = ctx.id("rwrootfs");
    let mut b = ctx.bundle(&id);
    b.sh("echo persisted > /root/file");
    ctx.run_ok(&b, &id);
    assert_eq!(
        fs::read_to_string(b.rootfs().join("root/file")).unwrap(),
        "persisted\n"
    );
}

#[test]
fn bind_mounts_rw_and_ro() {
    let ctx = Ctx::new();
    let id = ctx.id("bind");
    let mut b = ctx.bundle(&id);
    let rw = ctx.mkdir("rw");
    let ro = ctx.mkdir("ro");
    fs::write(ro.join("hostfile"), "from-host\n").unwrap();
    b.bind(&rw, "/mnt/rw", false)
        .bind(&ro, "/mnt/ro", true)
        .sh(concat!(
            "echo from-container > /mnt/rw/out && echo rw-ok; ",
            "cat /mnt/ro/hostfile; ",
            "echo nope > /mnt/ro/new; echo ro=$?"
        ));
    let out = ctx.run(&b, &id, CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("rw-ok"), "{}", out.describe());
    assert!(out.stdout.contains("from-host"), "{}", out.describe());
    assert!(out.stdout.contains("ro=1"), "{}", out.describe());
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.describe()
    );
    assert_eq!(
        fs::read_to_string(rw.join("out")).unwrap(),
        "from-container\n"
    );
    assert!(!ro.join("new").exists());
    // The ro bind did not make the host's source read-only.
    fs::write(ro.join("after"), "x").expect("host side still writable");
    ctx.assert_clean(&b, &id);
}

#[test]
fn bind_mount_of_a_single_file() {
    let ctx = Ctx::new();
    let id = ctx.id("bindfile");
    let mut b = ctx.bundle(&id);
    let f = ctx.path("hosts");
    fs::write(&f, "127.0.0.1 berth-test\n").unwrap();
    b.bind(&f, "/etc/hosts", true).args(&["cat", "/etc/hosts"]);
    let out = ctx.run_ok(&b, &id);
    assert_eq!(out, "127.0.0.1 berth-test\n");
}

#[test]
fn tmpfs_mount_from_the_spec() {
    let ctx = Ctx::new();
    let id = ctx.id("tmpfs");
    let mut b = ctx.bundle(&id);
    b.add_mount(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "size=1m", "mode=1777"]
    }))
    .sh(concat!(
        "grep ' /scratch ' /proc/self/mountinfo; ",
        "echo data > /scratch/f && cat /scratch/f; ",
        "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null; echo dd=$?"
    ));
    let out = ctx.run_ok(&b, &id);
    assert!(out.contains("tmpfs"), "{out}");
    assert!(out.contains("\ndata\n"), "{out}");
    assert!(out.contains("dd=1"), "size=1m not enforced: {out}");
    assert!(
        !b.rootfs().join("scratch/f").exists(),
        "tmpfs wrote through"
    );
}

#[test]
fn network_namespace_has_only_loopback() {
    let ctx = Ctx::new();
    let id = ctx.id("netns");
    let mut b = ctx.bundle(&id);
    b.args(&["ls", "/sys/class/net"]);
    let out = ctx.run_ok(&b, &id);
    let ifaces: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ifaces, ["lo"], "{out}");
}

#[test]
fn no_new_privileges_is_set() {
    let ctx = Ctx::new();
    let id = ctx.id("nnp");
    let mut b = ctx.bundle(&id);
    b.set("/process/noNewPrivileges", json!(true)).args(&[
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    let out = ctx.run_ok(&b, &id);
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}
