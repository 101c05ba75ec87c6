//! Harness for the end-to-end engine tests: each test owns a `berth daemon` with its own temp
//! root and a port picked by the kernel, talks to it with the built `berth` binary, and cleans
//! everything up on drop (also when an assertion fails): the daemon is killed, containers left
//! behind are force-deleted with `berth runtime`, processes started for this root (monitors) are
//! killed by pid, mounts under the root are detached, and the directory is removed.
//!
//! Each daemon lives in a network namespace of its own (`ip netns add berth-t-<hex>`, loopback
//! up), and every command of the test enters it, so bridges, veths and nftables rules the daemon
//! makes never touch the host's network; the guard deletes the namespace, also on failure.
//!
//! Every command and every wait has a deadline; readiness is polled, never slept for.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound on one CLI invocation.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on waiting for the daemon or for a state change.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The busybox applets linked into the test image.
pub const APPLETS: &[&str] = &[
    "sh", "true", "false", "echo", "cat", "ls", "hostname", "id", "mkdir", "sleep", "grep", "head",
    "ps", "mount", "wc", "test", "touch", "tty", "env", "pwd", "kill", "stat", "rm", "seq", "stty",
    "printf", "whoami", "dd", "yes", "sync", "httpd", "wget", "ping", "nc", "ip", "ifconfig",
    "route", "cut",
];

/// A network namespace made for one test, deleted on drop.
pub struct TestNetns {
    /// Its name under /run/netns.
    pub name: String,
    file: fs::File,
}

impl TestNetns {
    /// Creates `berth-t-<hex>` with loopback up.
    pub fn new() -> TestNetns {
        let name = format!("berth-t-{}", rand_hex(5));
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add (iproute2 is needed)");
        assert!(st.success(), "ip netns add {name} failed");
        let file = fs::File::open(format!("/run/netns/{name}")).expect("open test netns");
        let ns = TestNetns { name, file };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes `cmd` run inside this namespace.
    pub fn enter(&self, cmd: &mut Command) {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: setns(2) is async-signal-safe; `fd` stays open as long as `self`, which outlives
        // every command the test spawns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Runs `f` on a thread that entered this namespace (sockets it opens live there).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsFd;
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(self.file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("enter the test netns");
                f()
            })
            .join()
            .expect("thread in the test netns")
        })
    }

    /// A command run inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        self.enter(&mut c);
        c
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The berth binary under test.
pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// Random lowercase hex of `n` bytes.
pub fn rand_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A unique name for a container or volume: `tag-<hex>`.
pub fn unique(tag: &str) -> String {
    format!("{tag}-{}", rand_hex(4))
}

/// Polls `f` until it returns `Some`, panicking with `what` after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// The outcome of one command.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics (showing the outputs) unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert!(self.success(), "{} failed:\n{}", self.what, self.describe());
        self
    }

    /// Panics unless the command failed with `code` and one line on stderr.
    #[track_caller]
    pub fn fails(self, code: i32) -> Out {
        assert_eq!(
            self.code,
            Some(code),
            "{}: expected exit {code}\n{}",
            self.what,
            self.describe()
        );
        let lines = self.stderr_lines();
        assert_eq!(
            lines.len(),
            1,
            "{}: expected one line on stderr\n{}",
            self.what,
            self.describe()
        );
        assert!(
            lines[0].starts_with("berth: "),
            "{}: error line must start with 'berth: '\n{}",
            self.what,
            self.describe()
        );
        self
    }

    pub fn describe(&self) -> String {
        format!(
            "exit={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// stdout without its trailing newline.
    pub fn line(&self) -> String {
        self.stdout.trim_end_matches('\n').to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{}", self.what, self.stdout))
    }
}

/// Runs `cmd` with stdin from `input` (or /dev/null), outputs captured through files (a
/// detached process that inherits them cannot block us), killed after `timeout`.
pub fn run_cmd(mut cmd: Command, input: Option<&[u8]>, timeout: Duration, scratch: &Path) -> Out {
    let what = format!("{cmd:?}");
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("out-{n}"));
    let err_path = scratch.join(format!("err-{n}"));
    let so = fs::File::create(&out_path).expect("create stdout file");
    let se = fs::File::create(&err_path).expect("create stderr file");
    cmd.stdout(so).stderr(se);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let Some(data) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on the process group we created for this child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "{what} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        code: status.code(),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        what,
    }
}

/// Builds a busybox root filesystem (the host's static busybox plus applet links) and tars it.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs-src");
    for d in [
        "bin",
        "etc",
        "tmp",
        "root",
        "proc",
        "sys",
        "dev",
        "var/empty",
    ] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
    }
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is needed (apt-get install busybox-static)");
    fs::copy(bb, rootfs.join("bin/busybox")).expect("copy busybox");
    for a in APPLETS {
        symlink("busybox", rootfs.join("bin").join(a)).expect("applet symlink");
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/var/empty:/bin/false\n",
    )
    .expect("passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
    fs::write(rootfs.join("etc/hello.txt"), "from the image\n").expect("hello");
    let tar = dir.join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar of the busybox rootfs failed");
    tar
}

/// A running `berth daemon` owned by one test.
pub struct Daemon {
    tmp: Option<tempfile::TempDir>,
    /// Temp dir of the test (scratch files, tarballs).
    pub dir: PathBuf,
    /// The daemon's `--root`.
    pub root: PathBuf,
    child: Option<Child>,
    /// The daemon's log (stderr).
    pub log: PathBuf,
    /// Listen address given to the daemon.
    pub listen: String,
    /// The network namespace the daemon and every command of the test run in.
    pub netns: TestNetns,
    /// Extra `berth daemon` flags.
    pub daemon_args: Vec<String>,
}

impl Daemon {
    /// Starts a daemon on a fresh root and waits until `berth info` answers.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// Starts a daemon with extra flags (e.g. `--bridge-subnet`).
    pub fn start_with(args: &[&str]) -> Daemon {
        Daemon::start_prepared(args, |_| {})
    }

    /// Starts a daemon with extra flags after `prepare` set up its network namespace (a
    /// pre-existing interface, say).
    pub fn start_prepared(args: &[&str], prepare: impl FnOnce(&TestNetns)) -> Daemon {
        // Short paths: unix sockets under the root must fit in sun_path (108 bytes).
        let tmp = tempfile::Builder::new()
            .prefix("be-")
            .tempdir_in("/tmp")
            .expect("create temp dir");
        let dir = tmp.path().canonicalize().expect("canonicalize");
        let root = dir.join("r");
        fs::create_dir_all(&root).expect("mkdir root");
        let mut d = Daemon {
            tmp: Some(tmp),
            log: dir.join("daemon.log"),
            dir,
            root,
            child: None,
            listen: "127.0.0.1:0".into(),
            netns: TestNetns::new(),
            daemon_args: args.iter().map(|a| a.to_string()).collect(),
        };
        prepare(&d.netns);
        d.spawn();
        d
    }

    /// A daemon whose client.toml does not exist yet: for tests of the CLI's errors.
    pub fn config(&self) -> PathBuf {
        self.root.join("client.toml")
    }

    fn spawn(&mut self) {
        let _ = fs::remove_file(self.config());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        let mut cmd = Command::new(berth_bin());
        cmd.arg("daemon")
            .arg("--root")
            .arg(&self.root)
            .arg("--listen")
            .arg(&self.listen)
            .args(&self.daemon_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .process_group(0);
        self.netns.enter(&mut cmd);
        self.child = Some(cmd.spawn().expect("spawn berth daemon"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!(
                        "berth daemon exited early ({st}):\n{}",
                        fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            if self.config().exists()
                && self.try_berth(&["info"], Duration::from_secs(10)).success()
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "berth daemon not ready after {WAIT_TIMEOUT:?}:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the daemon with SIGKILL (containers keep running) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits (bounded) for it to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("berth daemon ignored SIGTERM for {WAIT_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again on the same root (after [`Daemon::kill9`] or
    /// [`Daemon::terminate`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "daemon still running");
        self.spawn();
    }

    /// `berth --config <root>/client.toml ARGS...` as a Command.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--config").arg(self.config()).args(args);
        c.env_remove("BERTH_CONFIG");
        self.netns.enter(&mut c);
        c
    }

    fn try_berth(&self, args: &[&str], timeout: Duration) -> Out {
        run_cmd(self.command(args), None, timeout, &self.dir)
    }

    /// Runs the CLI to completion.
    pub fn berth(&self, args: &[&str]) -> Out {
        run_cmd(self.command(args), None, CMD_TIMEOUT, &self.dir)
    }

    /// Runs the CLI with `input` on stdin.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        run_cmd(self.command(args), Some(input), CMD_TIMEOUT, &self.dir)
    }

    /// Runs the CLI with a deadline of its own.
    pub fn berth_timeout(&self, args: &[&str], timeout: Duration) -> Out {
        run_cmd(self.command(args), None, timeout, &self.dir)
    }

    /// Imports the busybox rootfs as `name` (e.g. "busybox:latest").
    pub fn import_busybox(&self, name: &str) -> String {
        let tar = self.dir.join("busybox.tar");
        let tar = if tar.exists() {
            tar
        } else {
            busybox_tarball(&self.dir)
        };
        let out = self
            .berth(&["import", tar.to_str().expect("utf-8 path"), name])
            .ok();
        let id = out.line();
        assert!(id.starts_with("sha256:"), "import printed {id:?}");
        id
    }

    /// A fresh daemon with busybox imported as `busybox`.
    pub fn with_busybox() -> Daemon {
        let d = Daemon::start();
        d.import_busybox("busybox");
        d
    }

    /// `inspect -f TEMPLATE NAME`, trimmed.
    pub fn inspect_field(&self, name: &str, template: &str) -> String {
        self.berth(&["inspect", "-f", template, name]).ok().line()
    }

    /// The container's state (`.State.Status`).
    pub fn status(&self, name: &str) -> String {
        self.inspect_field(name, "{{.State.Status}}")
    }

    /// Polls until the container's status is `want`.
    pub fn wait_status(&self, name: &str, want: &str) {
        poll(&format!("{name} to be {want}"), WAIT_TIMEOUT, || {
            let out = self.berth(&["inspect", "-f", "{{.State.Status}}", name]);
            (out.success() && out.line() == want).then_some(())
        })
    }

    /// Polls until `berth logs NAME` contains `needle`.
    pub fn wait_logs(&self, name: &str, needle: &str) -> String {
        poll(
            &format!("{needle:?} in the logs of {name}"),
            WAIT_TIMEOUT,
            || {
                let out = self.berth(&["logs", name]);
                let all = format!("{}{}", out.stdout, out.stderr);
                all.contains(needle).then_some(all)
            },
        )
    }

    /// The containers' ids from `ps -aq --no-trunc`.
    pub fn all_ids(&self) -> Vec<String> {
        self.berth(&["ps", "-aq", "--no-trunc"])
            .ok()
            .stdout
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A fresh scratch path in the test dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{name}-{}", SEQ.fetch_add(1, Ordering::Relaxed)))
    }

    fn cleanup(&mut self) {
        self.kill9();
        let rt_root = self.root.join("runtime");
        if rt_root.exists() {
            let mut list = Command::new(berth_bin());
            list.arg("runtime")
                .arg("--root")
                .arg(&rt_root)
                .args(["list", "-q"]);
            let out = run_cmd(list, None, CMD_TIMEOUT, &self.dir);
            for id in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
                let mut del = Command::new(berth_bin());
                del.arg("runtime").arg("--root").arg(&rt_root).args([
                    "delete",
                    "--force",
                    id.trim(),
                ]);
                let _ = run_cmd(del, None, CMD_TIMEOUT, &self.dir);
            }
        }
        kill_processes_mentioning(&self.root);
        unmount_under(&self.root);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.cleanup();
        if let Some(tmp) = self.tmp.take() {
            if tmp.close().is_err() {
                // Something is still mounted or busy: try once more after a lazy unmount.
                unmount_under(&self.root);
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// Kills (by pid) every process whose command line mentions `root`: the monitors our daemon
/// started for its containers.
fn kill_processes_mentioning(root: &Path) {
    let needle = root.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(&needle) {
            // SAFETY: kill(2) on a pid of a process started for this test's root.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every mount at or below `root`, deepest first.
pub fn unmount_under(root: &Path) {
    let prefix = root.to_string_lossy().into_owned();
    for _ in 0..3 {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(unescape_mount))
            .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            if let Ok(c) = std::ffi::CString::new(p) {
                // SAFETY: umount2 with a NUL-terminated path.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// A process driven through a pseudo-terminal, as a user at a terminal would: the CLI's stdin,
/// stdout and stderr are the pty's slave and it is the session leader with it as controlling
/// terminal.
pub struct PtyProcess {
    child: Child,
    master: fs::File,
    output: Arc<Mutex<Vec<u8>>>,
}

impl PtyProcess {
    /// Spawns `cmd` on a new pty of `rows` x `cols`.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> PtyProcess {
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let slave: std::os::fd::OwnedFd = pty.slave;
        let master: fs::File = fs::File::from(pty.master);
        let s_in = slave.try_clone().expect("dup slave");
        let s_out = slave.try_clone().expect("dup slave");
        cmd.stdin(Stdio::from(s_in))
            .stdout(Stdio::from(s_out))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let mut answerer = master.try_clone().expect("dup master");
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // Answer cursor-position queries (ESC [ 6 n) as a terminal would: a
                        // shell that asks (busybox ash does) waits for the reply.
                        if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
                            let _ = answerer.write_all(b"\x1b[1;1R");
                        }
                        sink.lock()
                            .expect("pty buffer")
                            .extend_from_slice(&buf[..n]);
                    }
                }
            }
        });
        PtyProcess {
            child,
            master,
            output,
        }
    }

    /// Types `bytes` at the terminal.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to pty");
        self.master.flush().expect("flush pty");
    }

    /// Everything the terminal showed so far.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("pty buffer")).into_owned()
    }

    /// Waits until the terminal shows `needle`.
    pub fn expect(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {WAIT_TIMEOUT:?} waiting for {needle:?} on the terminal; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets the terminal's size (the CLI gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: TIOCSWINSZ reads one winsize from a struct we own.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ failed");
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + CMD_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "process on the pty did not exit within {CMD_TIMEOUT:?}; screen:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PtyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
