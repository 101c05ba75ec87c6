//! The per-container monitor (`berth-shim`) and `berth runtime exec`, end to end through the built
//! binary on the real kernel: the report line, the json-file log, the exit file, attach (pipes and
//! tty, stdin, resize), surviving the starter's death, cleanup, memory; exec's view of the container,
//! exit codes, errors and terminals.
//!
//! Every test owns a `common::Ctx` (temp dir, state root, cgroup prefix) and a [`Monitors`] guard that
//! kills the containers of its monitors and waits for the monitors to finish before the temp dir goes.

mod common;

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The monitor binary the agent starts for every container.
fn shim() -> &'static str {
    env!("CARGO_BIN_EXE_berth-shim")
}

// ---------------------------------------------------------------------------
// Monitor harness
// ---------------------------------------------------------------------------

/// One monitor's files and the pids it reported.
struct Shim {
    id: String,
    log: PathBuf,
    exit_file: PathBuf,
    socket: PathBuf,
    pid: i32,
    monitor_pid: i32,
}

/// Kills the containers of the registered monitors and waits for the monitors to exit, so nothing
/// outlives the test (declare it after the `Ctx`, so it drops first).
struct Monitors<'a> {
    ctx: &'a Ctx,
    pids: std::cell::RefCell<Vec<(String, i32)>>,
}

impl<'a> Monitors<'a> {
    fn new(ctx: &'a Ctx) -> Self {
        Monitors {
            ctx,
            pids: Default::default(),
        }
    }

    /// The paths a monitor for `id` uses, inside the test's temp dir.
    fn paths(&self, id: &str) -> (PathBuf, PathBuf, PathBuf) {
        (
            self.ctx.path(&format!("{id}.log")),
            self.ctx.path(&format!("{id}.exit")),
            self.ctx.path(&format!("{id}.sock")),
        )
    }

    fn argv(&self, b: &Bundle, id: &str, extra: &[&str]) -> (Vec<String>, [PathBuf; 3]) {
        let (log, exit, sock) = self.paths(id);
        let mut argv: Vec<String> = [
            "--runtime-root",
            s(&self.ctx.root),
            "--bundle",
            s(&b.dir),
            "--id",
            id,
            "--log",
            s(&log),
            "--exit-file",
            s(&exit),
            "--socket",
            s(&sock),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        argv.extend(extra.iter().map(|a| a.to_string()));
        (argv, [log, exit, sock])
    }

    /// Runs `berth-shim` for the bundle and returns the report, panicking on an error report.
    fn start(&self, b: &Bundle, id: &str, extra: &[&str]) -> Shim {
        b.write();
        let (argv, [log, exit_file, socket]) = self.argv(b, id, extra);
        let (report, status) = run_shim(&argv);
        assert!(
            status == Some(0) && report.get("error").is_none(),
            "shim failed (status {status:?}): {report}"
        );
        self.adopt(id, &report, log, exit_file, socket)
    }

    fn adopt(
        &self,
        id: &str,
        report: &Value,
        log: PathBuf,
        exit_file: PathBuf,
        socket: PathBuf,
    ) -> Shim {
        let pid = report["pid"].as_i64().expect("report has pid") as i32;
        let monitor_pid = report["monitor_pid"]
            .as_i64()
            .expect("report has monitor_pid") as i32;
        self.pids.borrow_mut().push((id.to_owned(), monitor_pid));
        Shim {
            id: id.to_owned(),
            log,
            exit_file,
            socket,
            pid,
            monitor_pid,
        }
    }
}

impl Drop for Monitors<'_> {
    fn drop(&mut self) {
        for (id, pid) in self.pids.borrow().iter() {
            if alive(*pid) {
                let _ = self
                    .ctx
                    .command(&["kill", id, "KILL"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = Instant::now() + WAIT_TIMEOUT;
        for (_, pid) in self.pids.borrow().iter() {
            while alive(*pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(*pid) {
                // SAFETY: kill with a pid we started; a last resort so the test does not leak it.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
        }
    }
}

/// Runs `berth-shim <argv>` with stdout on a pipe, reads the report until EOF (bounded), returns the
/// parsed line and the exit status.
fn run_shim(argv: &[String]) -> (Value, Option<i32>) {
    let child = Command::new(shim())
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth-shim");
    read_report(child)
}

/// As [`run_shim`] for `--wait-for-go`: `before_go` runs while the monitor waits, then it gets its
/// byte, as the agent does once the bundle is ready.
fn run_shim_after(argv: &[String], before_go: impl FnOnce()) -> (Value, Option<i32>) {
    let mut child = Command::new(shim())
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth-shim");
    let mut go = child.stdin.take().expect("stdin pipe");
    before_go();
    go.write_all(b"\n").expect("write the go byte");
    drop(go);
    read_report(child)
}

fn read_report(mut child: std::process::Child) -> (Value, Option<i32>) {
    let mut stdout = child.stdout.take().expect("stdout pipe");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let Ok(text) = rx.recv_timeout(CMD_TIMEOUT) else {
        let _ = child.kill();
        panic!("berth-shim did not report within {CMD_TIMEOUT:?}");
    };
    let status = child.wait().expect("wait for berth-shim");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(
        text.matches('\n').count(),
        1,
        "the report is exactly one line: {text:?} (stderr {stderr:?})"
    );
    let report: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("report {text:?} is not JSON: {e}"));
    (report, status.code())
}

/// Whether `pid` runs (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// The log's entries, each checked to be a json-file object with a valid time.
fn log_entries(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only whole lines: the monitor may be writing the next one.
    let whole = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    whole
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}"));
            assert!(v["log"].is_string(), "{l}");
            assert!(v["stream"] == "stdout" || v["stream"] == "stderr", "{l}");
            let time = v["time"].as_str().unwrap_or_else(|| panic!("no time: {l}"));
            assert_rfc3339_nano(time);
            v
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS.fffffffffZ`, with a plausible year.
fn assert_rfc3339_nano(t: &str) {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = b.len() == 30
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..29)
        && b[29] == b'Z'
        && t[..4]
            .parse::<u32>()
            .is_ok_and(|y| (2020..3000).contains(&y));
    assert!(ok, "not an RFC 3339 time with nanoseconds: {t:?}");
}

/// (stream, text) of every entry.
fn lines(entries: &[Value]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|v| {
            (
                v["stream"].as_str().unwrap_or_default().to_owned(),
                v["log"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn wait_exit_file(shim: &Shim) -> Value {
    let text = poll(
        &format!("the exit file of {}", shim.id),
        WAIT_TIMEOUT,
        || std::fs::read_to_string(&shim.exit_file).ok(),
    );
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("exit file {text:?}: {e}"));
    assert_rfc3339_nano(v["finished_at"].as_str().expect("finished_at"));
    assert!(v["oom_killed"].is_boolean(), "{v}");
    v
}

fn wait_monitor_gone(shim: &Shim) {
    poll(
        &format!("monitor {} to exit", shim.monitor_pid),
        WAIT_TIMEOUT,
        || (!alive(shim.monitor_pid)).then_some(()),
    );
}

// ---------------------------------------------------------------------------
// Attach client
// ---------------------------------------------------------------------------

struct Attach {
    sock: UnixStream,
    /// The stream byte of every frame received.
    streams: Vec<u8>,
    /// Bytes received per stream (index 1 stdout, 2 stderr).
    out: [Vec<u8>; 3],
    pending: Vec<u8>,
    eof: bool,
}

impl Attach {
    fn connect(path: &Path) -> Attach {
        let sock =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Attach {
            sock,
            streams: Vec::new(),
            out: Default::default(),
            pending: Vec::new(),
            eof: false,
        }
    }

    fn send(&mut self, stream: u8, payload: &[u8]) {
        let mut frame = vec![stream, 0, 0, 0];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        self.sock.write_all(&frame).expect("send frame");
    }

    fn stdin(&mut self, data: &str) {
        self.send(0, data.as_bytes());
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        let mut p = rows.to_be_bytes().to_vec();
        p.extend_from_slice(&cols.to_be_bytes());
        self.send(3, &p);
    }

    fn close_stdin(&mut self) {
        self.send(4, &[]);
    }

    /// Everything received on `stream`.
    fn bytes(&self, stream: u8) -> &[u8] {
        &self.out[stream as usize]
    }

    /// Everything received on `stream`, as text.
    fn text(&self, stream: u8) -> String {
        String::from_utf8_lossy(self.bytes(stream)).into_owned()
    }

    /// Reads frames until `done` holds (or EOF, or the deadline: both fail the test).
    fn until(&mut self, what: &str, done: impl Fn(&Attach) -> bool) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while !done(self) {
            let tail = |s: u8| {
                let b = self.bytes(s);
                String::from_utf8_lossy(&b[b.len().saturating_sub(300)..]).into_owned()
            };
            assert!(
                !self.eof,
                "attach stream ended before {what}; got stdout ...{:?} stderr ...{:?}",
                tail(1),
                tail(2)
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got stdout ...{:?} stderr ...{:?}",
                tail(1),
                tail(2)
            );
            self.read_some();
        }
    }

    /// Reads until the monitor closes the connection.
    fn until_eof(&mut self) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while !self.eof {
            assert!(
                Instant::now() < deadline,
                "the monitor kept the attach socket open"
            );
            self.read_some();
        }
    }

    fn read_some(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        match self.sock.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => self.eof = true,
            Err(e) => panic!("read attach socket: {e}"),
        }
        while self.pending.len() >= 8 {
            let h = &self.pending[..8];
            assert!(
                h[1..4] == [0, 0, 0] && (h[0] == 1 || h[0] == 2),
                "bad frame header {h:?}"
            );
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.pending.len() < 8 + len {
                break;
            }
            let stream = h[0];
            self.out[stream as usize].extend_from_slice(&self.pending[8..8 + len]);
            self.pending.drain(..8 + len);
            self.streams.push(stream);
        }
    }
}

// ---------------------------------------------------------------------------
// Monitor tests
// ---------------------------------------------------------------------------

#[test]
fn log_has_both_streams_and_exit_file_the_code() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mlog");
    let mut b = ctx.bundle(&id);
    b.sh("echo out1; echo err1 >&2; echo out2; printf partial; exit 3");
    let shim = mons.start(&b, &id, &[]);
    assert!(shim.pid > 1 && shim.monitor_pid > 1 && shim.pid != shim.monitor_pid);

    let exit = wait_exit_file(&shim);
    assert_eq!(exit["exit_code"], 3, "{exit}");
    assert!(exit["signal"].is_null(), "{exit}");
    assert_eq!(exit["oom_killed"], false, "{exit}");

    let entries = log_entries(&shim.log);
    let got = lines(&entries);
    let of = |stream: &str| -> Vec<String> {
        got.iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, l)| l.clone())
            .collect()
    };
    assert_eq!(of("stdout"), ["out1\n", "out2\n", "partial"], "{got:?}");
    assert_eq!(of("stderr"), ["err1\n"], "{got:?}");
    let times: Vec<&str> = entries.iter().filter_map(|v| v["time"].as_str()).collect();
    let stdout_times: Vec<&str> = entries
        .iter()
        .filter(|v| v["stream"] == "stdout")
        .filter_map(|v| v["time"].as_str())
        .collect();
    assert!(stdout_times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        times
            .iter()
            .all(|t| *t <= exit["finished_at"].as_str().unwrap()),
        "log times after finished_at: {times:?} {exit}"
    );

    // The monitor removes its socket and the runtime state, then exits.
    wait_monitor_gone(&shim);
    assert!(!shim.socket.exists(), "attach socket left behind");
    ctx.assert_clean(&b, &id);
}

#[test]
fn wait_for_go_sets_up_only_after_the_byte_and_nothing_when_called_off() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);

    // The agent gave up on the container before it was ready: end of input, no byte.
    let id = ctx.id("mgo0");
    let mut b = ctx.bundle(&id);
    b.sh("echo never");
    b.write();
    let (argv, [log, _, socket]) = mons.argv(&b, &id, &["--wait-for-go"]);
    let (report, status) = run_shim(&argv);
    assert_eq!(status, Some(1), "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("called off"), "{report}");
    assert!(!log.exists() && !socket.exists(), "nothing was set up");
    ctx.assert_clean(&b, &id);

    // The bundle is written while the monitor already runs and waits; the byte lets it go on.
    let id = ctx.id("mgo1");
    let mut b = ctx.bundle(&id);
    b.sh("echo went; exit 7");
    let (argv, [log, exit_file, socket]) = mons.argv(&b, &id, &["--wait-for-go"]);
    let (report, status) = run_shim_after(&argv, || b.write());
    assert_eq!(status, Some(0), "{report}");
    let shim = mons.adopt(&id, &report, log, exit_file, socket);
    assert_eq!(wait_exit_file(&shim)["exit_code"], 7);
    assert_eq!(
        lines(&log_entries(&shim.log)),
        [("stdout".to_owned(), "went\n".to_owned())]
    );
    wait_monitor_gone(&shim);
    ctx.assert_clean(&b, &id);
}

/// Runs `berth-shim --spare --runtime-root ROOT`, which detaches and then reads the rest of its
/// command line on stdin, as the agent's spare monitor does.
fn run_spare(ctx: &Ctx, launch: &[u8]) -> (Value, Option<i32>) {
    let mut child = Command::new(shim())
        .args(["--spare", "--runtime-root", s(&ctx.root)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth-shim --spare");
    let mut stdin = child.stdin.take().expect("stdin pipe");
    stdin.write_all(launch).expect("write the launch");
    drop(stdin);
    read_report(child)
}

#[test]
fn a_spare_runs_the_container_its_launch_names_and_refuses_a_bad_launch() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);

    let id = ctx.id("mspare");
    let mut b = ctx.bundle(&id);
    b.sh("echo spared; exit 5");
    b.write();
    let (argv, [log, exit_file, socket]) = mons.argv(&b, &id, &[]);
    // Without the runtime root, which the spare has on its command line.
    assert_eq!(argv[0], "--runtime-root");
    let argv: Vec<std::ffi::OsString> = argv.into_iter().skip(2).map(Into::into).collect();
    let (report, status) = run_spare(&ctx, &runtime::monitor::args::encode(&argv));
    assert_eq!(status, Some(0), "{report}");
    let shim = mons.adopt(&id, &report, log, exit_file, socket);
    assert_eq!(wait_exit_file(&shim)["exit_code"], 5);
    assert_eq!(
        lines(&log_entries(&shim.log)),
        [("stdout".to_owned(), "spared\n".to_owned())]
    );
    wait_monitor_gone(&shim);
    ctx.assert_clean(&b, &id);

    // No container after all (end of input), a launch cut short, an unknown flag: one line each.
    for (launch, error) in [
        (&b""[..], "called off"),
        (b"--id\0abc", "cut short"),
        (b"--bogus\0", "unknown argument"),
    ] {
        let (report, status) = run_spare(&ctx, launch);
        assert_eq!(status, Some(1), "{report}");
        let text = report["error"].as_str().unwrap_or_default();
        assert!(text.contains(error), "{report}");
    }
}

/// The exit record says when the kernel's OOM killer ended the container (docker's OOMKilled).
#[test]
fn an_oom_killed_container_is_recorded_as_such() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("moom");
    let mut b = ctx.bundle(&id);
    b.resources(
        "memory",
        serde_json::json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}),
    )
    .args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    let shim = mons.start(&b, &id, &[]);
    let exit = wait_exit_file(&shim);
    assert_eq!(exit["exit_code"], 137, "{exit}");
    assert_eq!(exit["oom_killed"], true, "{exit}");
    wait_monitor_gone(&shim);
    ctx.assert_clean(&b, &id);
}

#[test]
fn shim_error_is_one_json_line_and_nonzero() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("merr");
    let mut b = ctx.bundle(&id);
    b.args(&["/no/such/program"]);
    b.write();
    let (argv, [_, exit_file, socket]) = mons.argv(&b, &id, &[]);
    let (report, status) = run_shim(&argv);
    assert_ne!(status, Some(0), "{report}");
    let error = report["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(error.contains("/no/such/program"), "{error}");
    assert!(!exit_file.exists() && !socket.exists());
    ctx.assert_clean(&b, &id);

    // --tty must agree with the bundle.
    b.args(&["true"]);
    b.write();
    let (argv, _) = mons.argv(&b, &id, &["--tty"]);
    let (report, status) = run_shim(&argv);
    assert_ne!(status, Some(0), "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains("terminal"),
        "{report}"
    );
}

#[test]
fn monitor_outlives_its_starter_and_records_a_kill() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mlive");
    let mut b = ctx.bundle(&id);
    b.sh("i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done");
    b.write();
    let (argv, [log, exit_file, socket]) = mons.argv(&b, &id, &[]);
    // The "agent": a shell that starts the shim and stays; it and its whole process group die by
    // SIGKILL, as in a daemon crash.
    let report_path = ctx.path("report");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("\"$@\" > \"$REPORT\"; exec sleep 600")
        .arg("agent")
        .arg(shim())
        .args(&argv)
        .env("REPORT", &report_path);
    let agent = ctx.spawn(&mut cmd);
    let text = poll("the shim's report", CMD_TIMEOUT, || {
        std::fs::read_to_string(&report_path)
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    let report: Value = serde_json::from_str(text.trim()).expect("report JSON");
    let shim = mons.adopt(&id, &report, log, exit_file, socket);
    let agent_pid = agent.child.id() as i32;
    // SAFETY: signals a process group we created (Ctx::spawn puts the child in its own group).
    assert_eq!(unsafe { libc::kill(-agent_pid, libc::SIGKILL) }, 0);
    drop(agent);

    // The log keeps growing with the agent gone, and SIGTERM/SIGHUP/SIGINT to the monitor change
    // nothing.
    let grows = |from: usize| {
        poll("the log to keep growing", WAIT_TIMEOUT, || {
            let n = log_entries(&shim.log).len();
            (n >= from + 5).then_some(n)
        })
    };
    let n = grows(0);
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGPIPE] {
        // SAFETY: signals the monitor this test started.
        unsafe { libc::kill(shim.monitor_pid, sig) };
    }
    let n2 = grows(n);
    assert!(alive(shim.monitor_pid) && alive(shim.pid));
    // A restarted agent re-adopts the container through the socket.
    let mut a = Attach::connect(&shim.socket);
    a.until("live output after re-adoption", |a| {
        a.text(1).contains("tick")
    });
    assert_eq!(ctx.status(&id).as_deref(), Some("running"));
    let ticks: Vec<String> = log_entries(&shim.log)
        .iter()
        .map(|v| v["log"].as_str().unwrap_or_default().to_owned())
        .collect();
    for (i, t) in ticks.iter().enumerate().take(n2) {
        assert_eq!(t, &format!("tick {i}\n"), "no line lost or reordered");
    }

    // The agent stops containers through the runtime.
    ctx.rt(&["kill", &id, "KILL"]).ok();
    let exit = wait_exit_file(&shim);
    assert_eq!(exit["exit_code"], 137, "{exit}");
    assert_eq!(exit["signal"], 9, "{exit}");
    wait_monitor_gone(&shim);
    ctx.assert_clean(&b, &id);
}

#[test]
fn attach_pipes_output_to_every_client_and_stdin_to_cat() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mcat");
    let mut b = ctx.bundle(&id);
    b.sh("cat; echo bye >&2; exit 4");
    let shim = mons.start(&b, &id, &["--stdin"]);
    let mut a = Attach::connect(&shim.socket);
    let mut watcher = Attach::connect(&shim.socket);

    a.stdin("hello\n");
    a.until("cat's echo", |a| a.text(1).contains("hello\n"));
    watcher.until("the echo on a second client", |w| {
        w.text(1).contains("hello\n")
    });
    // A large input goes through too (more than a pipe buffer).
    let big: String = (0..20_000).map(|i| format!("{i}\n")).collect();
    a.stdin(&big);
    a.until("the large echo", |a| a.text(1).contains("19999\n"));
    assert_eq!(a.text(1), format!("hello\n{big}"));

    a.close_stdin();
    a.until("stderr after stdin closed", |a| a.text(2).contains("bye\n"));
    a.until_eof();
    watcher.until_eof();
    assert_eq!(watcher.text(2), "bye\n");
    let exit = wait_exit_file(&shim);
    assert_eq!(exit["exit_code"], 4, "{exit}");
    let got = lines(&log_entries(&shim.log));
    assert_eq!(got.first().map(|l| l.1.as_str()), Some("hello\n"));
    assert_eq!(got.last(), Some(&("stderr".to_owned(), "bye\n".to_owned())));
    wait_monitor_gone(&shim);
    ctx.assert_clean(&b, &id);
}

#[test]
fn a_stalled_client_is_dropped_and_the_container_not_slowed() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mslow");
    let mut b = ctx.bundle(&id);
    b.sh("read go; seq 1 200000; echo done");
    let shim = mons.start(&b, &id, &["--stdin"]);
    // One client never reads; another drives the container and reads everything.
    let mut stalled = Attach::connect(&shim.socket);
    let mut reader = Attach::connect(&shim.socket);
    reader.stdin("go\n");
    reader.until("all the output", |a| a.bytes(1).ends_with(b"done\n"));
    let exit = wait_exit_file(&shim);
    assert_eq!(exit["exit_code"], 0, "{exit}");
    let entries = log_entries(&shim.log);
    assert_eq!(entries.len(), 200_001, "the log has every line");
    assert_eq!(entries[199_999]["log"], "200000\n");
    // The stalled client was cut off (it got a prefix, then end of stream), not waited for.
    stalled.until_eof();
    let got = stalled.bytes(1);
    assert!(
        got.len() < reader.bytes(1).len(),
        "the stalled client got everything"
    );
    assert!(
        reader.bytes(1).starts_with(got),
        "the stalled client's stream has no holes"
    );
    wait_monitor_gone(&shim);
}

#[test]
fn attach_without_stdin_gets_dev_null() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mnull");
    let mut b = ctx.bundle(&id);
    b.sh("cat; echo cat-done");
    let shim = mons.start(&b, &id, &[]);
    let exit = wait_exit_file(&shim);
    assert_eq!(exit["exit_code"], 0, "{exit}");
    assert_eq!(
        lines(&log_entries(&shim.log)),
        [("stdout".into(), "cat-done\n".into())]
    );

    // The container starts with default signal handling, whatever the agent or the monitor had
    // (grep itself, not under a shell, which ignores some signals for its children).
    let id = ctx.id("msig");
    let mut b = ctx.bundle(&id);
    b.args(&["grep", "-E", "SigIgn|SigBlk", "/proc/self/status"]);
    let shim = mons.start(&b, &id, &[]);
    assert_eq!(wait_exit_file(&shim)["exit_code"], 0);
    assert_eq!(
        lines(&log_entries(&shim.log)),
        [
            ("stdout".into(), "SigBlk:\t0000000000000000\n".into()),
            ("stdout".into(), "SigIgn:\t0000000000000000\n".into()),
        ]
    );
}

#[test]
fn attach_tty_stdin_and_resize() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mtty");
    let mut b = ctx.bundle(&id);
    std::os::unix::fs::symlink("/bin/busybox", b.rootfs().join("bin/stty")).unwrap();
    b.terminal(true).args(&["sh"]);
    let shim = mons.start(&b, &id, &["--tty", "--stdin"]);
    let mut a = Attach::connect(&shim.socket);
    a.resize(33, 111);
    a.stdin("tty; stty size; echo done-$((40+2))\n");
    a.until("the shell's answer", |a| a.text(1).contains("done-42"));
    let out = a.text(1);
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("33 111"), "{out:?}");
    assert!(a.streams.iter().all(|s| *s == 1), "a tty is one stream");

    a.resize(20, 70);
    a.stdin("stty size\n");
    a.until("the new size", |a| a.text(1).contains("20 70"));
    a.stdin("exit 5\n");
    a.until_eof();
    let exit = wait_exit_file(&shim);
    assert_eq!(exit["exit_code"], 5, "{exit}");
    let logged: String = lines(&log_entries(&shim.log))
        .into_iter()
        .map(|(stream, l)| {
            assert_eq!(stream, "stdout");
            l
        })
        .collect();
    assert!(logged.contains("33 111\r\n"), "{logged:?}");
    wait_monitor_gone(&shim);
    ctx.assert_clean(&b, &id);
}

#[test]
fn a_one_shot_resize_lands_even_when_output_to_it_fails() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mrsz");
    let mut b = ctx.bundle(&id);
    std::os::unix::fs::symlink("/bin/busybox", b.rootfs().join("bin/stty")).unwrap();
    b.terminal(true)
        .args(&["sh", "-c", "while :; do stty size; sleep 0.01; done"]);
    let shim = mons.start(&b, &id, &["--tty", "--stdin"]);
    let mut watcher = Attach::connect(&shim.socket);
    let signal = |sig| {
        // SAFETY: kill(2) with a pid we started and a plain signal number.
        assert_eq!(unsafe { libc::kill(shim.monitor_pid, sig) }, 0, "kill");
    };
    for i in 0..3u16 {
        let (rows, cols) = (10 + i, 50 + i);
        // The agent's resize: connect, write one frame, close at once. Output reaches that client
        // too; with the monitor stopped, the frame, the close and more output are all waiting
        // when it resumes, so the output to the client fails (EPIPE) before its frame is read.
        let mut once = Attach::connect(&shim.socket);
        once.until("output on the resize client", |a| !a.bytes(1).is_empty());
        signal(libc::SIGSTOP);
        once.resize(rows, cols);
        drop(once);
        std::thread::sleep(Duration::from_millis(50));
        watcher.out[1].clear();
        signal(libc::SIGCONT);
        let want = format!("{rows} {cols}\r\n");
        watcher.until(&format!("the size {rows}x{cols}"), |a| {
            a.text(1).contains(&want)
        });
    }
}

#[test]
fn tty_cat_sees_client_input_and_eof() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let id = ctx.id("mtcat");
    let mut b = ctx.bundle(&id);
    b.terminal(true).args(&["cat"]);
    let shim = mons.start(&b, &id, &["--tty", "--stdin"]);
    let mut a = Attach::connect(&shim.socket);
    a.stdin("ping\n");
    // The terminal echoes the line and cat repeats it.
    a.until("cat's copy", |a| a.text(1).matches("ping\r\n").count() == 2);
    a.close_stdin();
    a.until_eof();
    assert_eq!(wait_exit_file(&shim)["exit_code"], 0);
}

#[test]
fn monitor_memory_with_ten_containers() {
    let ctx = Ctx::new();
    let mons = Monitors::new(&ctx);
    let mut shims = Vec::new();
    for i in 0..10 {
        let id = ctx.id(&format!("mmem{i}"));
        let mut b = ctx.bundle(&id);
        b.sh("echo up; exec sleep 600");
        shims.push(mons.start(&b, &id, &["--stdin"]));
    }
    for shim in &shims {
        poll("the container's first line", WAIT_TIMEOUT, || {
            (!log_entries(&shim.log).is_empty()).then_some(())
        });
    }
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in smaps_rollup"))
    };
    let (mut rss, mut pss) = (0, 0);
    for shim in &shims {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", shim.monitor_pid))
            .expect("read smaps_rollup");
        rss += field(&rollup, "Rss:");
        pss += field(&rollup, "Pss:");
    }
    let n = shims.len() as u64;
    eprintln!(
        "monitor memory ({}): RSS {} kB, PSS {} kB per monitor with {n} alive",
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        rss / n,
        pss / n
    );
    // A generous bound for the debug build; the release figure is in the report.
    assert!(pss / n < 8 * 1024, "PSS {} kB per monitor", pss / n);
    for shim in &shims {
        ctx.rt(&["kill", &shim.id, "KILL"]).ok();
    }
    for shim in &shims {
        assert_eq!(wait_exit_file(shim)["exit_code"], 137);
    }
}

// ---------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------

/// A detached container running `sleep`, with Docker's capabilities.
fn running(ctx: &Ctx, tag: &str) -> (Bundle, String) {
    let id = ctx.id(tag);
    let mut b = ctx.bundle(&id);
    b.caps(DOCKER_CAPS)
        .hostname("exec-host")
        .args(&["sleep", "600"]);
    b.write();
    ctx.rt(&["run", "--detach", "--bundle", s(&b.dir), &id])
        .ok();
    ctx.wait_status(&id, "running");
    (b, id)
}

#[test]
fn exec_sees_the_containers_namespaces_and_capabilities() {
    let ctx = Ctx::new();
    let (_b, id) = running(&ctx, "exec");
    let out = ctx
        .rt(&[
            "exec",
            &id,
            "sh",
            "-c",
            "echo $$; hostname; cat /proc/self/status | grep CapEff; cat /proc/1/cmdline",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.describe());
    let pid: u32 = lines[0].parse().expect("a pid");
    assert!(
        pid > 1 && pid < 100,
        "pid {pid} is not one of the container's"
    );
    assert_eq!(lines[1], "exec-host");
    assert_eq!(lines[2].split_whitespace().nth(1), Some(DOCKER_CAPS_HEX));
    assert_eq!(
        lines[3], "sleep\u{0}600\u{0}",
        "pid 1 is the container's init"
    );
    // Default signal handling, whatever the runtime process had (Rust ignores SIGPIPE).
    let out = ctx
        .rt(&[
            "exec",
            &id,
            "grep",
            "-E",
            "SigIgn|SigBlk",
            "/proc/self/status",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );

    // The init's own view agrees: same capabilities, the exec'd process in its cgroup.
    let state = ctx.state(&id).expect("state");
    let init = state["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    assert!(status.contains(&format!("CapEff:\t{DOCKER_CAPS_HEX}")));

    let pid_file = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        s(&pid_file),
        &id,
        "sleep",
        "600",
    ])
    .ok();
    let host_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ps = ctx.rt(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&host_pid), "{pids:?} lacks {host_pid}");
    assert!(pids.contains(&(init as i32)));
}

#[test]
fn exec_options_env_cwd_user() {
    let ctx = Ctx::new();
    let (_b, id) = running(&ctx, "exopt");
    let out = ctx
        .rt(&[
            "exec",
            "--cwd",
            "/tmp",
            "-e",
            "FOO=bar",
            "-e",
            "PATH=/bin",
            "-u",
            "1000:1001",
            &id,
            "sh",
            "-c",
            "pwd; echo $FOO $PATH; id -u; id -g",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "/tmp\nbar /bin\n1000\n1001\n",
        "{}",
        out.describe()
    );

    let process = ctx.path("process.json");
    std::fs::write(
        &process,
        r#"{"args":["sh","-c","echo from-file $X; exit 6"],"env":["X=1","PATH=/bin"],"cwd":"/","user":{"uid":0,"gid":0}}"#,
    )
    .unwrap();
    let out = ctx.rt(&["exec", "--process", s(&process), &id]);
    assert_eq!(out.code(), Some(6), "{}", out.describe());
    assert_eq!(out.stdout, "from-file 1\n");
}

#[test]
fn exec_exit_codes_and_errors() {
    let ctx = Ctx::new();
    let (b, id) = running(&ctx, "excode");
    assert_eq!(ctx.rt(&["exec", &id, "sh", "-c", "exit 7"]).code(), Some(7));
    assert_eq!(
        ctx.rt(&["exec", &id, "sh", "-c", "kill -9 $$"]).code(),
        Some(137)
    );
    assert_eq!(
        ctx.rt(&["exec", &id, "sh", "-c", "kill -TERM $$"]).code(),
        Some(143)
    );
    ctx.assert_error(
        &ctx.rt(&["exec", &id, "no-such-binary"]),
        &["no-such-binary"],
    );
    ctx.assert_error(
        &ctx.rt(&["exec", &id, "--cwd", "/nonexistent", "true"]),
        &["nonexistent"],
    );
    ctx.assert_error(
        &ctx.rt(&["exec", "bt-unknown-x", "true"]),
        &["no such container"],
    );
    ctx.assert_error(&ctx.rt(&["exec", &id]), &["command"]);
    // Nothing of the failed execs is left in the container.
    let ps = ctx.rt(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(pids.len(), 1, "{pids:?}");

    ctx.rt(&["kill", &id, "KILL"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.assert_error(&ctx.rt(&["exec", &id, "true"]), &["stopped"]);
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
}

/// Accepts one connection and receives the fd it carries.
fn receive_master(listener: UnixListener) -> OwnedFd {
    let (stream, _) = listener.accept().expect("accept console socket");
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let msg = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed this fd for us.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd on the console socket");
}

/// Reads the pty master until `want` appears (EIO/EOF or the deadline fail).
fn read_master_until(master: &OwnedFd, want: &str) -> String {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let mut out = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if text.contains(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out reading the pty; got {text:?}"
        );
        let mut fds = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16));
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => {
                panic!("pty closed before {want:?}; got {text:?}")
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

#[test]
fn exec_with_tty_and_console_socket() {
    let ctx = Ctx::new();
    let (_b, id) = running(&ctx, "extty");
    for detach in [true, false] {
        let sock = ctx.path("console.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let receiver = std::thread::spawn(move || receive_master(listener));
        let mut args = vec!["exec", "-t", "--console-socket", s(&sock)];
        if detach {
            args.push("-d");
        }
        args.extend([
            id.as_str(),
            "sh",
            "-c",
            "tty; test -t 0 && test -t 1 && echo tty-ok; read x; echo got-$x",
        ]);
        let runner = ctx.spawn(&mut ctx.command(&args));
        let master = receiver.join().expect("console socket receiver");
        assert!(nix::unistd::isatty(&master).unwrap_or(false));
        let text = read_master_until(&master, "tty-ok");
        assert!(text.contains("/dev/pts/"), "{text:?}");
        nix::unistd::write(&master, b"abc\n").unwrap();
        read_master_until(&master, "got-abc");
        let out = runner.wait("exec -t", CMD_TIMEOUT);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
    }
}
