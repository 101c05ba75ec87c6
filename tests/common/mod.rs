//! Shared harness for the `berth runtime` integration tests.
//!
//! The runtime under test is a command prefix: by default
//! `[CARGO_BIN_EXE_berth, "runtime"]`; `BERTH_TEST_RUNTIME` (split on
//! whitespace, e.g. `runc` or `crun`) points the suite at another OCI runtime.
//!
//! Every test owns a [`Ctx`]: a temp dir holding the `--root` state dir and
//! the bundles, a unique cgroup prefix, and the list of container ids it
//! created. Dropping the `Ctx` (also while unwinding from a failed assertion)
//! kills and force-deletes those containers, removes their cgroup dirs and
//! the temp dir. Nothing is shared between tests, so they run in parallel.
//!
//! Every runtime invocation and every wait has a deadline; nothing sleeps
//! for readiness.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Bound on one runtime invocation (create, start, a short foreground run...).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a wait for a state change or for output to appear.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The applets linked into every test rootfs, all pointing at /bin/busybox.
pub const APPLETS: &[&str] = &[
    "sh", "true", "false", "echo", "cat", "ls", "hostname", "id", "mkdir", "sleep", "dd", "grep",
    "head", "seq", "ps", "mount", "readlink", "wc", "test", "touch", "tty", "env", "pwd", "kill",
    "stat", "rm",
];

/// Docker's default capability set (14 caps), as OCI names.
pub const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `CapEff` of a process holding exactly [`DOCKER_CAPS`].
pub const DOCKER_CAPS_HEX: &str = "00000000a80425fb";

// ---------------------------------------------------------------------------
// Runtime selection
// ---------------------------------------------------------------------------

/// The command prefix that runs the runtime under test.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub argv: Vec<String>,
}

impl Runtime {
    pub fn from_env() -> Runtime {
        match std::env::var("BERTH_TEST_RUNTIME") {
            Ok(v) if !v.trim().is_empty() => Runtime {
                argv: v.split_whitespace().map(str::to_owned).collect(),
            },
            _ => Runtime {
                argv: vec![env!("CARGO_BIN_EXE_berth").to_owned(), "runtime".to_owned()],
            },
        }
    }

    /// True when the runtime under test is berth's own.
    pub fn is_berth(&self) -> bool {
        Path::new(&self.argv[0])
            .file_name()
            .is_some_and(|n| n == "berth")
    }

    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// Returns true (and prints why) when a berth-only test must be skipped
/// because another runtime is selected. `BERTH_TEST_RUN_BERTH_ONLY=1` runs
/// them anyway (used to validate the tests themselves against runc).
pub fn skip_unless_berth(test: &str, why: &str) -> bool {
    let rt = Runtime::from_env();
    if rt.is_berth() || std::env::var_os("BERTH_TEST_RUN_BERTH_ONLY").is_some_and(|v| v == "1") {
        return false;
    }
    eprintln!(
        "SKIPPED {test}: berth-only property ({why}); runtime under test is `{}`",
        rt.display()
    );
    true
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// Random lowercase hex of `n` bytes, from /dev/urandom.
pub fn rand_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `f` every few milliseconds until it returns `Some`, or panics with
/// `what` after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// The outcome of one command run to completion.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Where stdout/stderr were redirected: a detached container keeps
    /// writing there after the runtime returned.
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub what: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (showing the outputs) unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert!(self.success(), "{} failed: {}", self.what, self.describe());
        self
    }

    pub fn describe(&self) -> String {
        format!(
            "status={:?} (signal {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status.code(),
            self.status.signal(),
            self.stdout,
            self.stderr
        )
    }

    /// Re-reads the stdout file (a detached container may have written more).
    pub fn stdout_now(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr_now(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// One mount from /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub line: String,
}

/// Parses mountinfo text (of this process or read from inside a container).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let p: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                root: unescape(f.get(3)?),
                mount_point: unescape(f.get(4)?),
                fstype: p.first()?.to_string(),
                source: p.get(1).map(|s| unescape(s)).unwrap_or_default(),
                line: line.to_owned(),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn host_mounts() -> Vec<MountEntry> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo"))
}

/// The directories a cgroup path maps to under every cgroup hierarchy
/// (v1 or v2) mounted on this host.
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    host_mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| {
            let root = m.root.trim_end_matches('/');
            let abs = format!("/{rel}");
            let below = if !root.is_empty() && abs.starts_with(&format!("{root}/")) {
                abs[root.len() + 1..].to_owned()
            } else {
                rel.to_owned()
            };
            Path::new(&m.mount_point).join(below)
        })
        .collect()
}

/// Removes a cgroup directory tree bottom-up (cgroup dirs hold only
/// kernel files, so `rmdir` is the way to remove them).
fn rmdir_cgroup_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

// ---------------------------------------------------------------------------
// Per-test context (the cleanup guard)
// ---------------------------------------------------------------------------

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Everything one test owns. Dropping it cleans up.
pub struct Ctx {
    pub rt: Runtime,
    /// Temp dir holding `state/` (the `--root`), bundles and scratch files.
    pub tmp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub root: PathBuf,
    /// Unique cgroup parent, e.g. `/berth-test-0123abcd`.
    pub cg_prefix: String,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Ctx {
    pub fn new() -> Ctx {
        let rt = Runtime::from_env();
        let tmp = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("create temp dir");
        let dir = tmp.path().canonicalize().expect("canonicalize temp dir");
        let root = dir.join("state");
        fs::create_dir(&root).expect("mkdir state root");
        Ctx {
            rt,
            tmp: Some(tmp),
            dir,
            root,
            cg_prefix: format!("/berth-test-{}", rand_hex(6)),
            ids: Default::default(),
        }
    }

    /// A fresh container id (`bt-<tag>-<hex>`), registered for cleanup.
    pub fn id(&self, tag: &str) -> String {
        let id = format!("bt-{tag}-{}", rand_hex(5));
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A fresh path inside the test's temp dir (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{name}-{}", SEQ.fetch_add(1, Ordering::Relaxed)))
    }

    /// A fresh directory inside the test's temp dir.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        fs::create_dir_all(&p).expect("mkdir");
        p
    }

    /// `<runtime> --root <root> <args...>` as a Command (stdio not set).
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.rt.argv[0]);
        c.args(&self.rt.argv[1..]).arg("--root").arg(&self.root);
        c.args(args);
        c
    }

    /// Runs the runtime with `args` and a deadline; stdin is /dev/null and
    /// stdout/stderr go to files (so that a detached container that
    /// inherits them cannot block us).
    pub fn rt<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Out {
        self.rt_timeout(args, CMD_TIMEOUT)
    }

    pub fn rt_timeout<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], timeout: Duration) -> Out {
        let what = format!(
            "`{} --root {} {}`",
            self.rt.display(),
            self.root.display(),
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let cmd = self.command(args);
        self.output(cmd, &what, timeout)
    }

    /// Runs `cmd` to completion with stdio redirected to fresh files, killing
    /// it and failing the test after `timeout`.
    pub fn output(&self, mut cmd: Command, what: &str, timeout: Duration) -> Out {
        let child = self.spawn(&mut cmd);
        child.wait(what, timeout)
    }

    /// Spawns `cmd` with stdin /dev/null and stdout/stderr to fresh files.
    pub fn spawn(&self, cmd: &mut Command) -> Spawned {
        let stdout_path = self.path("stdout");
        let stderr_path = self.path("stderr");
        let so = fs::File::create(&stdout_path).expect("create stdout file");
        let se = fs::File::create(&stderr_path).expect("create stderr file");
        cmd.stdin(Stdio::null()).stdout(so).stderr(se);
        // Own process group, so a timeout can take down helpers too.
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Spawned {
            child,
            stdout_path,
            stderr_path,
        }
    }

    /// Generates a bundle for container `id`: rootfs with busybox, and the
    /// config.json written by the runtime's own `spec`, adjusted for tests.
    pub fn bundle(&self, id: &str) -> Bundle {
        let dir = self.mkdir(&format!("bundle-{id}"));
        let rootfs = dir.join("rootfs");
        make_rootfs(&rootfs);
        self.rt(&["spec", "--bundle", s(&dir)]).ok();
        let text = fs::read_to_string(dir.join("config.json")).expect("spec wrote config.json");
        let config: Value = serde_json::from_str(&text).expect("spec wrote valid JSON");
        let mut b = Bundle {
            dir,
            config,
            cgroups_path: format!("{}/{}", self.cg_prefix, id),
        };
        b.set("/process/terminal", json!(false));
        b.set("/root/readonly", json!(false));
        b.set("/hostname", json!("berth-test"));
        b.set("/linux/cgroupsPath", json!(b.cgroups_path.clone()));
        b.args(&["true"]);
        b
    }

    /// `state ID` parsed, or None when the runtime says it does not exist.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.rt(&["state", id]);
        if !out.success() {
            return None;
        }
        Some(serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "`state {id}` printed invalid JSON ({e}): {}",
                out.describe()
            )
        }))
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .and_then(|s| s.get("status").and_then(Value::as_str).map(str::to_owned))
    }

    /// Waits until `state ID` reports `status`.
    pub fn wait_status(&self, id: &str, status: &str) -> Value {
        poll(
            &format!("container {id} to be {status}"),
            WAIT_TIMEOUT,
            || self.state(id).filter(|s| s["status"] == status),
        )
    }

    /// `create --bundle B ID` (config written first).
    pub fn create(&self, b: &Bundle, id: &str) -> Out {
        b.write();
        self.rt(&["create", "--bundle", s(&b.dir), id])
    }

    /// `run --bundle B ID` in the foreground, bounded by `timeout`.
    pub fn run(&self, b: &Bundle, id: &str, timeout: Duration) -> Out {
        b.write();
        self.rt_timeout(&["run", "--bundle", s(&b.dir), id], timeout)
    }

    /// Runs the bundle's process in the foreground, expects exit 0 and
    /// returns its stdout.
    #[track_caller]
    pub fn run_ok(&self, b: &Bundle, id: &str) -> String {
        let out = self.run(b, id, CMD_TIMEOUT);
        assert!(
            out.success(),
            "run of {id} failed: {}\nconfig: {}",
            out.describe(),
            b.config
        );
        out.stdout
    }

    /// Asserts that nothing of container `id` is left on the host: no mount
    /// mentioning the bundle, no cgroup dir, no state dir.
    #[track_caller]
    pub fn assert_clean(&self, b: &Bundle, id: &str) {
        let bundle = b.dir.to_string_lossy().into_owned();
        let leaked: Vec<String> = host_mounts()
            .into_iter()
            .filter(|m| m.line.contains(&bundle))
            .map(|m| m.line)
            .collect();
        assert!(leaked.is_empty(), "mounts left behind: {leaked:#?}");
        // A cgroup of a process that just died may take a moment to empty.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<PathBuf> = cgroup_dirs(&b.cgroups_path)
                .into_iter()
                .filter(|d| d.exists())
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cgroup dirs left behind: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let state_dir = self.root.join(id);
        assert!(
            !state_dir.exists(),
            "state dir left behind: {}",
            state_dir.display()
        );
    }

    /// Asserts a failed command: non-zero exit, exactly one non-empty line
    /// on stderr, mentioning one of `keywords` (case-insensitive).
    #[track_caller]
    pub fn assert_error(&self, out: &Out, keywords: &[&str]) {
        assert!(
            !out.success(),
            "{} should fail: {}",
            out.what,
            out.describe()
        );
        assert!(
            out.code().is_some(),
            "{} should exit, not die by a signal: {}",
            out.what,
            out.describe()
        );
        let lines = out.stderr_lines();
        assert_eq!(
            lines.len(),
            1,
            "{} should print exactly one error line on stderr: {}",
            out.what,
            out.describe()
        );
        let l = lines[0].to_lowercase();
        assert!(
            keywords.iter().any(|k| l.contains(&k.to_lowercase())),
            "{}: error line should mention one of {keywords:?}: {:?}",
            out.what,
            lines[0]
        );
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let ids = self.ids.borrow().clone();
        for id in &ids {
            if self.root.join(id).exists() || self.quiet(&["state", id]) {
                self.quiet(&["kill", id, "KILL"]);
                self.quiet(&["delete", "--force", id]);
            }
        }
        // Any cgroup dirs of ours: the per-container ones, then the prefix.
        for d in cgroup_dirs(&self.cg_prefix) {
            if d.exists() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while d.exists() && Instant::now() < deadline {
                    rmdir_cgroup_tree(&d);
                    if d.exists() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        // Never recurse into something still mounted below the temp dir:
        // detach such mounts first, and keep the dir if that fails.
        let prefix = format!("{}/", self.dir.display());
        let mut mounted: Vec<String> = host_mounts()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(&prefix))
            .collect();
        mounted.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let mut stuck = false;
        for p in &mounted {
            if nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH).is_err() {
                stuck = true;
            }
        }
        if let Some(tmp) = self.tmp.take() {
            if stuck {
                eprintln!("leaving {} behind: mounts below it", self.dir.display());
                let _ = tmp.keep();
            } else {
                // Make everything removable (tests create read-only dirs).
                make_writable(&self.dir);
                drop(tmp);
            }
        }
    }
}

impl Ctx {
    /// Runs a cleanup command with a short deadline, ignoring failures.
    fn quiet(&self, args: &[&str]) -> bool {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return st.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

fn make_writable(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755));
            make_writable(&e.path());
        }
    }
}

/// A spawned process with stdio redirected to files.
pub struct Spawned {
    pub child: std::process::Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Spawned {
    /// Waits for the process; after `timeout` kills its process group and
    /// fails the test.
    pub fn wait(mut self, what: &str, timeout: Duration) -> Out {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(st) => break st,
                None if Instant::now() >= deadline => {
                    let pgid = self.child.id() as i32;
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{what} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        fs::read_to_string(&self.stdout_path).unwrap_or_default(),
                        fs::read_to_string(&self.stderr_path).unwrap_or_default()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        Out {
            status,
            stdout: fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr_path).unwrap_or_default(),
            stdout_path: self.stdout_path.clone(),
            stderr_path: self.stderr_path.clone(),
            what: what.to_owned(),
        }
    }

    pub fn stdout_now(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr_now(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Reap (and if still running, kill) so no zombie outlives the test.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Populates `rootfs` with the host's static busybox and applet symlinks.
pub fn make_rootfs(rootfs: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static must be installed (/bin/busybox)");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs dir");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    for a in APPLETS {
        std::os::unix::fs::symlink("/bin/busybox", rootfs.join("bin").join(a))
            .expect("symlink applet");
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
}

// ---------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------

/// A bundle directory and its config, edited as JSON.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    pub cgroups_path: String,
}

impl Bundle {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Writes config.json (done by `Ctx::create`/`Ctx::run`).
    pub fn write(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .expect("write config.json");
    }

    /// Sets the value at a JSON pointer, creating objects on the way.
    pub fn set(&mut self, pointer: &str, v: Value) -> &mut Self {
        let mut cur = &mut self.config;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, p) in parts.iter().enumerate() {
            if !cur.is_object() {
                *cur = json!({});
            }
            let obj = cur.as_object_mut().unwrap();
            if i == parts.len() - 1 {
                obj.insert((*p).to_owned(), v);
                return self;
            }
            cur = obj.entry((*p).to_owned()).or_insert_with(|| json!({}));
        }
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    pub fn env(&mut self, env: &[&str]) -> &mut Self {
        self.set("/process/env", json!(env))
    }

    pub fn cwd(&mut self, cwd: &str) -> &mut Self {
        self.set("/process/cwd", json!(cwd))
    }

    pub fn hostname(&mut self, h: &str) -> &mut Self {
        self.set("/hostname", json!(h))
    }

    pub fn terminal(&mut self, t: bool) -> &mut Self {
        self.set("/process/terminal", json!(t))
    }

    pub fn readonly(&mut self, ro: bool) -> &mut Self {
        self.set("/root/readonly", json!(ro))
    }

    pub fn user(&mut self, uid: u32, gid: u32, additional: &[u32]) -> &mut Self {
        self.set(
            "/process/user",
            json!({"uid": uid, "gid": gid, "additionalGids": additional}),
        )
    }

    /// Same caps in bounding/effective/permitted; inheritable/ambient empty.
    pub fn caps(&mut self, caps: &[&str]) -> &mut Self {
        self.set(
            "/process/capabilities",
            json!({
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": [], "ambient": []
            }),
        )
    }

    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        let mounts = self.config["mounts"]
            .as_array_mut()
            .expect("spec has mounts");
        mounts.push(m);
        self
    }

    pub fn bind(&mut self, host: &Path, dest: &str, ro: bool) -> &mut Self {
        let mut opts = vec!["rbind"];
        if ro {
            opts.push("ro");
        }
        self.add_mount(json!({
            "destination": dest, "type": "bind",
            "source": host.to_string_lossy(), "options": opts
        }))
    }

    pub fn resources(&mut self, key: &str, v: Value) -> &mut Self {
        self.set(&format!("/linux/resources/{key}"), v)
    }

    pub fn seccomp(&mut self, v: Value) -> &mut Self {
        self.set("/linux/seccomp", v)
    }

    pub fn rlimits(&mut self, v: Value) -> &mut Self {
        self.set("/process/rlimits", v)
    }
}

/// A path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
