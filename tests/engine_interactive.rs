//! Sessions end to end: exec (exit codes, -e/-u/-w, -d, -i with piped stdin), run -i, start -a,
//! attach, and `-it` through a real pseudo-terminal: raw mode, window-size changes, Ctrl-P
//! Ctrl-Q detaching, re-attaching, and the container's exit code becoming the CLI's.

mod engine;

use engine::{poll, unique, Daemon, PtyProcess, WAIT_TIMEOUT};

fn running(d: &Daemon) -> String {
    let name = unique("box");
    d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"])
        .ok();
    name
}

#[test]
fn exec_runs_in_the_container_with_its_options() {
    let d = Daemon::with_busybox();
    let c = running(&d);
    assert_eq!(d.berth(&["exec", &c, "echo", "hi"]).ok().stdout, "hi\n");
    let out = d.berth(&["exec", &c, "sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert_eq!(out.code, Some(4), "{}", out.describe());
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let out = d
        .berth(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/etc",
            "-u",
            "65534",
            &c,
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)",
        ])
        .ok();
    assert_eq!(out.stdout, "1 /etc 65534\n");
    d.berth(&["exec", "-d", &c, "touch", "/tmp/from-detached"])
        .ok();
    poll("the detached exec to run", WAIT_TIMEOUT, || {
        d.berth(&["exec", &c, "test", "-f", "/tmp/from-detached"])
            .success()
            .then_some(())
    });
    let out = d
        .berth_stdin(&["exec", "-i", &c, "cat"], b"piped in\n")
        .ok();
    assert_eq!(out.stdout, "piped in\n");
    // Without -i, stdin is not forwarded: cat sees end of input at once.
    let out = d.berth_stdin(&["exec", &c, "cat"], b"ignored\n").ok();
    assert_eq!(out.stdout, "");
}

#[test]
fn exec_needs_a_running_container() {
    let d = Daemon::with_busybox();
    let name = unique("stopped");
    d.berth(&["create", "--name", &name, "busybox", "true"])
        .ok();
    let out = d.berth(&["exec", &name, "true"]).fails(125);
    assert!(out.stderr.contains(&name), "{}", out.describe());
}

#[test]
fn run_interactive_with_piped_stdin() {
    let d = Daemon::with_busybox();
    let out = d
        .berth_stdin(
            &["run", "-i", "busybox", "sh", "-c", "cat; echo done"],
            b"line one\nline two\n",
        )
        .ok();
    assert_eq!(out.stdout, "line one\nline two\ndone\n");
    let out = d.berth_stdin(
        &["run", "-i", "busybox", "sh", "-c", "read x; exit $x"],
        b"5\n",
    );
    assert_eq!(out.code, Some(5), "{}", out.describe());
}

#[test]
fn start_attach_returns_the_exit_code() {
    let d = Daemon::with_busybox();
    let name = unique("later");
    d.berth(&[
        "create",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo started; echo oops >&2; exit 4",
    ])
    .ok();
    let out = d.berth(&["start", "-a", &name]);
    assert_eq!(out.code, Some(4), "{}", out.describe());
    assert_eq!(out.stdout, "started\n");
    assert_eq!(out.stderr, "oops\n");
    d.berth(&["start", "-a", "x", "y"]).fails(125);
}

#[test]
fn attach_follows_a_running_container_to_its_end() {
    let d = Daemon::with_busybox();
    let name = unique("talker");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo ready; sleep 1; echo after-attach; exit 3",
    ])
    .ok();
    d.wait_logs(&name, "ready");
    let out = d.berth(&["attach", "--no-stdin", &name]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(out.stdout.contains("after-attach"), "{}", out.describe());
}

#[test]
fn run_it_is_a_real_terminal() {
    let d = Daemon::with_busybox();
    let mut cmd = d.command(&["run", "-it", "--rm", "busybox", "sh"]);
    cmd.env("TERM", "xterm");
    let mut p = PtyProcess::spawn(cmd, 24, 80);
    p.expect("# ");
    p.send(b"tty; echo $((6*7))\r");
    p.expect("/dev/pts/");
    p.expect("42");
    p.send(b"stty size\r");
    p.expect("24 80");
    p.resize(30, 100);
    // The resize travels on its own request; poll until the shell sees it.
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        p.send(b"stty size\r");
        std::thread::sleep(std::time::Duration::from_millis(200));
        if p.screen().contains("30 100") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new window size never reached the container; screen:\n{}",
            p.screen()
        );
    }
    // Raw mode: Ctrl-C reaches the container's terminal (interrupting `sleep`), not the CLI.
    p.send(b"sleep 30\r");
    std::thread::sleep(std::time::Duration::from_millis(300));
    p.send(b"\x03");
    p.send(b"echo after-ctrl-c\r");
    p.expect("after-ctrl-c");
    p.send(b"exit 5\r");
    let code = p.wait();
    assert_eq!(code, Some(5), "screen:\n{}", p.screen());
}

#[test]
fn detach_keys_leave_the_container_running_and_attach_comes_back() {
    let d = Daemon::with_busybox();
    let name = unique("detach");
    let mut p = PtyProcess::spawn(
        d.command(&["run", "-it", "--name", &name, "busybox", "sh"]),
        24,
        80,
    );
    p.expect("# ");
    p.send(b"echo first\r");
    p.expect("first");
    p.send(b"\x10\x11");
    assert_eq!(p.wait(), Some(0), "detaching exits 0");
    assert_eq!(d.status(&name), "running", "the container goes on");

    let mut p = PtyProcess::spawn(d.command(&["attach", &name]), 24, 80);
    p.send(b"\r");
    p.send(b"echo second-$((1+1))\r");
    p.expect("second-2");
    p.send(b"exit 3\r");
    assert_eq!(p.wait(), Some(3));
    d.wait_status(&name, "exited");

    // Custom detach keys.
    let other = unique("keys");
    let mut p = PtyProcess::spawn(
        d.command(&[
            "run",
            "-it",
            "--detach-keys",
            "ctrl-a,x",
            "--name",
            &other,
            "busybox",
            "sh",
        ]),
        24,
        80,
    );
    p.expect("# ");
    p.send(b"\x01x");
    assert_eq!(p.wait(), Some(0));
    assert_eq!(d.status(&other), "running");
}

#[test]
fn exec_it_gets_its_own_terminal() {
    let d = Daemon::with_busybox();
    let c = running(&d);
    let mut p = PtyProcess::spawn(d.command(&["exec", "-it", &c, "sh"]), 40, 120);
    p.expect("# ");
    p.send(b"stty size; tty\r");
    p.expect("40 120");
    p.expect("/dev/pts/");
    p.send(b"exit 2\r");
    let code = p.wait();
    assert_eq!(code, Some(2), "screen:\n{}", p.screen());
    assert_eq!(
        d.status(&c),
        "running",
        "exec's end does not stop the container"
    );
}

#[test]
fn without_a_tty_output_streams_stay_apart() {
    let d = Daemon::with_busybox();
    let out = d
        .berth(&["run", "busybox", "sh", "-c", "echo to-out; echo to-err >&2"])
        .ok();
    assert_eq!(out.stdout, "to-out\n");
    assert_eq!(out.stderr, "to-err\n");
    // With -t (and no terminal on our side), everything is the terminal's output.
    let out = d
        .berth(&["run", "-t", "busybox", "sh", "-c", "echo to-err >&2"])
        .ok();
    assert!(out.stdout.contains("to-err"), "{}", out.describe());
    assert_eq!(out.stderr, "");
}
