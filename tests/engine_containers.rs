//! Container verbs end to end through a real daemon: run, create/start, stop, kill, rm, restart,
//! pause/unpause, ps (filters, formats), logs, inspect, wait, top, stats, diff, rename, prune,
//! the `run` flags, copy-on-write isolation, restart policies, exit codes, bad inputs that leave
//! state unchanged, and live restore across a `kill -9` of the daemon.

mod engine;

use std::time::Duration;

use engine::{poll, unique, Daemon, WAIT_TIMEOUT};

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn run_prints_output_and_returns_the_exit_code() {
    let d = Daemon::with_busybox();
    let out = d.berth(&["run", "busybox", "echo", "hello"]).ok();
    assert_eq!(out.stdout, "hello\n");
    let out = d.berth(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

/// `run` lets its start overtake the container's set-up (agent/src/early_start.rs): a program
/// that ends at once may be gone, `--rm` and all, before the agent has handled the attach that
/// started it. Its output and exit code must arrive every time, also with several runs at once.
#[test]
fn a_program_that_ends_at_once_keeps_its_output_and_code() {
    let d = Daemon::with_busybox();
    // Several at once, so that the agent is slower than the monitors now and then.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..8 {
                    let out = d.berth(&[
                        "run",
                        "--rm",
                        "busybox",
                        "sh",
                        "-c",
                        "echo out; echo err >&2; exit 3",
                    ]);
                    assert_eq!(out.code, Some(3), "{}", out.describe());
                    assert_eq!(out.stdout, "out\n", "{}", out.describe());
                    assert_eq!(out.stderr, "err\n", "{}", out.describe());
                }
            });
        }
    });
    let id = d.berth(&["run", "-d", "busybox", "true"]).ok().line();
    let code = d.berth(&["wait", &id]).ok().line();
    assert_eq!(code, "0");
    assert_eq!(d.berth(&["ps", "-aq"]).ok().line(), id[..12]);
}

#[test]
fn run_detached_then_ps_stop_rm() {
    let d = Daemon::with_busybox();
    let name = unique("web");
    let id = d
        .berth(&["run", "-d", "--name", &name, "busybox", "sleep", "100"])
        .ok()
        .line();
    assert!(is_hex(&id, 64), "run -d prints the full id: {id:?}");
    let ps = d.berth(&["ps"]).ok().stdout;
    let row = ps
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name} not in ps:\n{ps}"));
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains("\"sleep 100\""), "{row}");
    assert!(row.contains("Up "), "{row}");
    assert!(row.contains("busybox"), "{row}");
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    assert_eq!(d.berth(&["ps", "-q"]).ok().line(), id[..12]);
    assert_eq!(d.berth(&["ps", "-q", "--no-trunc"]).ok().line(), id);

    assert_eq!(d.berth(&["stop", "-t", "1", &name]).ok().line(), name);
    assert_eq!(d.status(&name), "exited");
    assert_eq!(d.berth(&["ps", "-q"]).ok().stdout, "", "ps hides stopped");
    let all = d.berth(&["ps", "-a"]).ok().stdout;
    assert!(all.contains("Exited (137)"), "{all}");

    assert_eq!(d.berth(&["rm", &name]).ok().line(), name);
    assert_eq!(d.berth(&["ps", "-aq"]).ok().stdout, "");
    d.berth(&["inspect", &name]).fails(125);
}

#[test]
fn create_then_start_by_id_prefix() {
    let d = Daemon::with_busybox();
    let name = unique("later");
    let id = d
        .berth(&["create", "--name", &name, "busybox", "sleep", "100"])
        .ok()
        .line();
    assert!(is_hex(&id, 64), "{id}");
    assert_eq!(d.status(&name), "created");
    let all = d.berth(&["ps", "-a"]).ok().stdout;
    assert!(all.contains("Created"), "{all}");
    d.berth(&["start", &id[..10]]).ok();
    d.wait_status(&name, "running");
    // Starting a running container is refused, and it keeps running.
    d.berth(&["start", &name]).fails(125);
    assert_eq!(d.status(&name), "running");
    d.berth(&["rm", "-f", &id[..8]]).ok();
    assert_eq!(d.berth(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn rm_of_a_running_container_needs_force() {
    let d = Daemon::with_busybox();
    let name = unique("busy");
    d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "100"])
        .ok();
    let out = d.berth(&["rm", &name]).fails(125);
    assert!(out.stderr.contains(&name), "{}", out.describe());
    assert_eq!(d.status(&name), "running", "state unchanged");
    d.berth(&["rm", "-f", &name]).ok();
    d.berth(&["inspect", &name]).fails(125);
}

#[test]
fn names_are_unique() {
    let d = Daemon::with_busybox();
    let name = unique("dup");
    d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "100"])
        .ok();
    let out = d
        .berth(&["run", "-d", "--name", &name, "busybox", "sleep", "100"])
        .fails(125);
    assert!(out.stderr.contains("already in use"), "{}", out.describe());
    assert_eq!(d.berth(&["ps", "-aq"]).ok().stdout.lines().count(), 1);
    d.berth(&["run", "--name", "bad name!", "busybox", "true"])
        .fails(125);
}

#[test]
fn default_name_and_hostname() {
    let d = Daemon::with_busybox();
    let id = d
        .berth(&["run", "-d", "busybox", "sleep", "100"])
        .ok()
        .line();
    let name = d.inspect_field(&id, "{{.Name}}");
    let bare = name.trim_start_matches('/');
    let parts: Vec<&str> = bare.split('_').collect();
    assert_eq!(parts.len(), 2, "two-word name: {name}");
    assert!(parts
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase())));
    let host = d.berth(&["exec", &id, "hostname"]).ok().line();
    assert_eq!(host, id[..12]);
    let out = d.berth(&["run", "-h", "boxy", "busybox", "hostname"]).ok();
    assert_eq!(out.line(), "boxy");
}

#[test]
fn kill_sends_the_signal_and_wait_prints_the_code() {
    let d = Daemon::with_busybox();
    let name = unique("trap");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' USR1; echo ready; while true; do sleep 0.1; done",
    ])
    .ok();
    d.wait_logs(&name, "ready");
    assert_eq!(d.berth(&["kill", "-s", "USR1", &name]).ok().line(), name);
    assert_eq!(d.berth(&["wait", &name]).ok().line(), "42");
    assert_eq!(d.inspect_field(&name, "{{.State.ExitCode}}"), "42");
    // Killing a stopped container is refused.
    d.berth(&["kill", &name]).fails(125);

    let short = unique("short");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &short,
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 7",
    ])
    .ok();
    assert_eq!(d.berth(&["wait", &short]).ok().line(), "7");
}

#[test]
fn pause_and_unpause() {
    let d = Daemon::with_busybox();
    let name = unique("frozen");
    d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "100"])
        .ok();
    assert_eq!(d.berth(&["pause", &name]).ok().line(), name);
    assert_eq!(d.status(&name), "paused");
    let ps = d.berth(&["ps"]).ok().stdout;
    assert!(ps.contains("(Paused)"), "{ps}");
    d.berth(&["exec", &name, "true"]).fails(125);
    d.berth(&["pause", &name]).fails(125);
    assert_eq!(d.berth(&["unpause", &name]).ok().line(), name);
    assert_eq!(d.status(&name), "running");
    d.berth(&["unpause", &name]).fails(125);
}

#[test]
fn restart_runs_the_container_again() {
    let d = Daemon::with_busybox();
    let name = unique("again");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo boot; sleep 100",
    ])
    .ok();
    d.wait_logs(&name, "boot");
    let first = d.inspect_field(&name, "{{.State.Pid}}");
    assert_eq!(d.berth(&["restart", "-t", "1", &name]).ok().line(), name);
    assert_eq!(d.status(&name), "running");
    let second = d.inspect_field(&name, "{{.State.Pid}}");
    assert_ne!(first, second, "a new process");
    poll("two boots in the log", WAIT_TIMEOUT, || {
        let logs = d.berth(&["logs", &name]).ok().stdout;
        (logs.matches("boot").count() == 2).then_some(())
    });
    // Restart of an exited container starts it.
    d.berth(&["stop", "-t", "1", &name]).ok();
    d.berth(&["restart", &name]).ok();
    assert_eq!(d.status(&name), "running");
}

#[test]
fn logs_keep_streams_apart_with_tail_timestamps_and_since() {
    let d = Daemon::with_busybox();
    let name = unique("talk");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        // Pauses between the writes: stdout and stderr are separate pipes, so only time orders them.
        "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three",
    ])
    .ok();
    assert_eq!(d.berth(&["wait", &name]).ok().line(), "0");
    let out = d.berth(&["logs", &name]).ok();
    assert_eq!(out.stdout, "one\nthree\n");
    assert_eq!(out.stderr, "two\n");
    let out = d.berth(&["logs", "--tail", "1", &name]).ok();
    assert_eq!(out.stdout, "three\n");
    assert_eq!(out.stderr, "");
    let out = d.berth(&["logs", "-t", &name]).ok();
    for line in out.stdout.lines() {
        let (ts, rest) = line.split_once(' ').expect("timestamp prefix");
        assert!(
            ts.len() >= 20 && ts.ends_with('Z') && ts.contains('T'),
            "{line}"
        );
        assert!(rest == "one" || rest == "three", "{line}");
    }
    let out = d.berth(&["logs", "--since", "10m", &name]).ok();
    assert_eq!(out.stdout, "one\nthree\n");
    let out = d
        .berth(&["logs", "--since", "2100-01-01T00:00:00Z", &name])
        .ok();
    assert_eq!(out.stdout, "");
}

#[test]
fn logs_follow_until_the_container_exits() {
    let d = Daemon::with_busybox();
    let name = unique("follow");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.3; done",
    ])
    .ok();
    let out = d.berth(&["logs", "-f", &name]).ok();
    assert_eq!(out.stdout, "line1\nline2\nline3\n");
}

#[test]
fn inspect_shows_docker_fields() {
    let d = Daemon::with_busybox();
    let name = unique("look");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "GREETING=hi",
        "-l",
        "tier=front",
        "-m",
        "64m",
        "--restart",
        "on-failure:3",
        "-w",
        "/tmp",
        "busybox",
        "sleep",
        "100",
    ])
    .ok();
    let v = d.berth(&["inspect", &name]).ok().json();
    let c = &v.as_array().expect("a JSON array")[0];
    assert!(is_hex(c["Id"].as_str().unwrap(), 64));
    assert_eq!(c["Name"], format!("/{name}"));
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_i64().unwrap() > 0);
    assert_ne!(c["State"]["StartedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(c["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    let env: Vec<String> = serde_json::from_value(c["Config"]["Env"].clone()).unwrap();
    assert!(env.contains(&"GREETING=hi".to_string()), "{env:?}");
    assert_eq!(c["Config"]["Labels"]["tier"], "front");
    assert_eq!(c["Config"]["WorkingDir"], "/tmp");
    assert_eq!(c["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    assert_eq!(c["Path"], "sleep");
    assert_eq!(c["Args"][0], "100");
    assert_eq!(d.inspect_field(&name, "{{.State.Running}}"), "true");
    // Several containers give one array; a missing one is an error but the rest print.
    let other = unique("other");
    d.berth(&["create", "--name", &other, "busybox", "true"])
        .ok();
    let v = d.berth(&["inspect", &name, &other]).ok().json();
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let out = d.berth(&["inspect", &name, "ghost-x"]);
    assert_eq!(out.code, Some(125));
    assert!(out.stderr.contains("no such container: ghost-x"));
    assert_eq!(out.json().as_array().map(Vec::len), Some(1));
}

#[test]
fn top_stats_and_diff() {
    let d = Daemon::with_busybox();
    let name = unique("watch");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "touch /added; rm /etc/hello.txt; echo x >> /etc/passwd; exec sleep 100",
    ])
    .ok();
    let top = poll("sleep in top", WAIT_TIMEOUT, || {
        let out = d.berth(&["top", &name]).ok().stdout;
        out.contains("sleep 100").then_some(out)
    });
    assert!(top.lines().next().unwrap().contains("PID"), "{top}");

    let stats = d.berth(&["stats", "--no-stream", &name]).ok().stdout;
    let mut lines = stats.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().expect("a stats row");
    assert!(row.contains(&name) && row.contains('%'), "{row}");

    let diff = d.berth(&["diff", &name]).ok().stdout;
    let lines: Vec<&str> = diff.lines().collect();
    assert!(lines.contains(&"A /added"), "{diff}");
    assert!(lines.contains(&"D /etc/hello.txt"), "{diff}");
    assert!(lines.contains(&"C /etc/passwd"), "{diff}");
    assert!(lines.contains(&"C /etc"), "{diff}");
}

#[test]
fn rename_changes_the_name_everywhere() {
    let d = Daemon::with_busybox();
    let a = unique("a");
    let b = unique("b");
    let c = unique("c");
    d.berth(&["run", "-d", "--name", &a, "busybox", "sleep", "100"])
        .ok();
    d.berth(&["run", "-d", "--name", &c, "busybox", "sleep", "100"])
        .ok();
    d.berth(&["rename", &a, &b]).ok();
    let ps = d.berth(&["ps", "--format", "{{.Names}}"]).ok().stdout;
    assert!(ps.lines().any(|l| l == b), "{ps}");
    assert!(!ps.lines().any(|l| l == a), "{ps}");
    d.berth(&["stop", "-t", "1", &a]).fails(125);
    let out = d.berth(&["rename", &b, &c]).fails(125);
    assert!(out.stderr.contains("already in use"), "{}", out.describe());
    assert_eq!(d.inspect_field(&b, "{{.Name}}"), format!("/{b}"));
}

#[test]
fn container_prune_removes_only_stopped() {
    let d = Daemon::with_busybox();
    let live = unique("live");
    let dead = unique("dead");
    d.berth(&["run", "-d", "--name", &live, "busybox", "sleep", "100"])
        .ok();
    d.berth(&["run", "--name", &dead, "busybox", "true"]).ok();
    let dead_id = d.inspect_field(&dead, "{{.Id}}");
    let out = d.berth(&["container", "prune", "-f"]).ok().stdout;
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains(&dead_id), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let ids = d.all_ids();
    assert_eq!(ids.len(), 1);
    assert_eq!(d.status(&live), "running");
}

#[test]
fn ps_filters_limits_and_formats() {
    let d = Daemon::with_busybox();
    let up = unique("up");
    let done = unique("done");
    let failed = unique("failed");
    d.berth(&[
        "run", "-d", "--name", &up, "-l", "role=web", "busybox", "sleep", "100",
    ])
    .ok();
    d.berth(&["run", "--name", &done, "busybox", "true"]).ok();
    d.berth(&["run", "--name", &failed, "busybox", "false"]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        d.berth(&a).ok().stdout.lines().map(str::to_owned).collect()
    };
    assert_eq!(names(&[]), vec![up.clone()]);
    assert_eq!(names(&["-a"]).len(), 3);
    assert_eq!(names(&["--filter", "status=exited"]).len(), 2);
    assert_eq!(names(&["-a", "--filter", "exited=1"]), vec![failed.clone()]);
    assert_eq!(
        names(&["-a", "--filter", "label=role=web"]),
        vec![up.clone()]
    );
    assert_eq!(
        names(&["-a", "--filter", &format!("name={done}")]),
        vec![done.clone()]
    );
    assert_eq!(names(&["-l"]), vec![failed.clone()], "latest created");
    assert_eq!(names(&["-n", "2"]), vec![failed.clone(), done.clone()]);
    let json = d.berth(&["ps", "-a", "--format", "json"]).ok().stdout;
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 3);
    let row = rows.iter().find(|r| r["Names"] == up.as_str()).unwrap();
    assert_eq!(row["State"], "running");
    assert!(row["Status"].as_str().unwrap().starts_with("Up "));
    assert_eq!(row["Labels"], "role=web");
}

#[test]
fn run_flags_reach_the_container() {
    let d = Daemon::with_busybox();
    let envfile = d.path("env");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\nOVERRIDE=file\n").unwrap();
    let out = d
        .berth(&[
            "run",
            "--env-file",
            envfile.to_str().unwrap(),
            "-e",
            "OVERRIDE=flag",
            "-e",
            "PLAIN=1",
            "-w",
            "/tmp",
            "busybox",
            "sh",
            "-c",
            "echo $FROM_FILE $OVERRIDE $PLAIN; pwd",
        ])
        .ok();
    assert_eq!(out.stdout, "yes flag 1\n/tmp\n");
    let out = d
        .berth(&["run", "-u", "65534:65534", "busybox", "id", "-u"])
        .ok();
    assert_eq!(out.line(), "65534");
    let out = d
        .berth(&[
            "run",
            "--entrypoint",
            "echo",
            "busybox",
            "from",
            "entrypoint",
        ])
        .ok();
    assert_eq!(out.line(), "from entrypoint");
    let out = d.berth(&["run", "--read-only", "busybox", "touch", "/x"]);
    assert_ne!(out.code, Some(0), "read-only root: {}", out.describe());
    let out = d
        .berth(&[
            "run",
            "--read-only",
            "--tmpfs",
            "/scratch",
            "busybox",
            "touch",
            "/scratch/x",
        ])
        .ok();
    assert_eq!(out.stdout, "");
    let out = d
        .berth(&[
            "run",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    assert_eq!(out.line(), "lo");
    let caps = |args: &[&str]| -> String {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "grep", "CapEff", "/proc/self/status"]);
        d.berth(&a).ok().stdout
    };
    assert!(
        caps(&[]).contains("00000000a80425fb"),
        "Docker's 14 capabilities"
    );
    assert!(!caps(&["--cap-drop", "ALL"]).contains("a80425fb"));
    assert!(caps(&["--cap-drop", "ALL"]).contains("0000000000000000"));
    let out = d
        .berth(&[
            "run",
            "--pids-limit",
            "20",
            "-m",
            "32m",
            "--cpus",
            "0.5",
            "busybox",
            "true",
        ])
        .ok();
    assert_eq!(out.stdout, "");
    let name = unique("ports");
    d.berth(&[
        "create",
        "--name",
        &name,
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1::53/udp",
        "busybox",
        "true",
    ])
    .ok();
    let v = d.berth(&["inspect", &name]).ok().json();
    let pb = &v[0]["HostConfig"]["PortBindings"];
    assert_eq!(pb["80/tcp"][0]["HostPort"], "8080");
    assert_eq!(pb["53/udp"][0]["HostIp"], "127.0.0.1");
    let stop = unique("stopsig");
    d.berth(&[
        "create",
        "--name",
        &stop,
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "3",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(d.inspect_field(&stop, "{{.Config.StopSignal}}"), "SIGUSR1");
    assert_eq!(d.inspect_field(&stop, "{{.Config.StopTimeout}}"), "3");
}

#[test]
fn stop_uses_the_stop_signal_then_kills() {
    let d = Daemon::with_busybox();
    let polite = unique("polite");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &polite,
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 11' USR1; echo ready; while true; do sleep 0.1; done",
    ])
    .ok();
    d.wait_logs(&polite, "ready");
    d.berth(&["stop", &polite]).ok();
    assert_eq!(d.inspect_field(&polite, "{{.State.ExitCode}}"), "11");

    let stubborn = unique("stubborn");
    d.berth(&["run", "-d", "--name", &stubborn, "busybox", "sleep", "100"])
        .ok();
    let started = std::time::Instant::now();
    d.berth(&["stop", "-t", "1", &stubborn]).ok();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(d.inspect_field(&stubborn, "{{.State.ExitCode}}"), "137");
}

#[test]
fn changes_never_reach_the_image() {
    let d = Daemon::with_busybox();
    d.berth(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo changed > /etc/hello.txt; rm /bin/true",
    ])
    .ok();
    let out = d.berth(&["run", "busybox", "cat", "/etc/hello.txt"]).ok();
    assert_eq!(out.stdout, "from the image\n");
    d.berth(&["run", "busybox", "true"]).ok();
}

#[test]
fn mount_points_the_image_lacks_stay_out_of_the_writable_layer() {
    // The test image has /proc, /sys, /dev and /etc but no /etc/hostname, hosts or resolv.conf.
    let d = Daemon::with_busybox();
    let id = d
        .berth(&["run", "-d", "busybox", "sleep", "60"])
        .ok()
        .line();
    let out = d.berth(&["exec", &id, "cat", "/etc/hostname"]).ok();
    assert_eq!(out.stdout.trim(), &id[..12]);
    let upper = d.root.join("containers").join(&id).join("fs").join("upper");
    let entries: Vec<_> = std::fs::read_dir(&upper)
        .expect("the container's writable layer")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(entries.is_empty(), "written by the runtime: {entries:?}");
    d.berth(&["rm", "-f", &id]).ok();
}

#[test]
fn rm_flag_removes_after_exit_and_keeps_the_code() {
    let d = Daemon::with_busybox();
    let name = unique("gone");
    let out = d.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo bye; exit 6",
    ]);
    assert_eq!(out.code, Some(6), "{}", out.describe());
    assert_eq!(out.stdout, "bye\n");
    poll("the --rm container to disappear", WAIT_TIMEOUT, || {
        (!d.berth(&["ps", "-a", "--format", "{{.Names}}"])
            .ok()
            .stdout
            .contains(&name))
        .then_some(())
    });
    // The removal is answered while the monitor may still clean up; its runtime state goes too.
    let runtime = d.root.join("runtime");
    poll(
        "the --rm container's runtime state to go",
        WAIT_TIMEOUT,
        || {
            std::fs::read_dir(&runtime)
                .expect("runtime root")
                .next()
                .is_none()
                .then_some(())
        },
    );
    let name = unique("gone-d");
    d.berth(&["run", "-d", "--rm", "--name", &name, "busybox", "true"])
        .ok();
    poll(
        "the detached --rm container to disappear",
        WAIT_TIMEOUT,
        || d.berth(&["inspect", &name]).code.ne(&Some(0)).then_some(()),
    );
    // `rm -f` of a running --rm container: one removal, answered, nothing left.
    let name = unique("gone-f");
    let id = d
        .berth(&[
            "run", "-d", "--rm", "--name", &name, "busybox", "sleep", "60",
        ])
        .ok()
        .line();
    assert_eq!(d.berth(&["rm", "-f", &name]).ok().line(), name);
    assert_ne!(d.berth(&["inspect", &name]).code, Some(0));
    assert!(
        !d.root.join("containers").join(&id).exists(),
        "the container's directory is gone"
    );
    // Its files are deleted after the answer, from the trash.
    poll("the trash to be emptied", WAIT_TIMEOUT, || {
        std::fs::read_dir(d.root.join("trash"))
            .map_or(true, |mut entries| entries.next().is_none())
            .then_some(())
    });
}

#[test]
fn commands_that_cannot_run_exit_126_or_127() {
    let d = Daemon::with_busybox();
    let out = d.berth(&["run", "busybox", "no-such-command"]);
    assert_eq!(out.code, Some(127), "{}", out.describe());
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.describe());
    let out = d.berth(&["run", "busybox", "/etc/hello.txt"]);
    assert_eq!(out.code, Some(126), "{}", out.describe());
    let name = unique("exec127");
    d.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "100"])
        .ok();
    let out = d.berth(&["exec", &name, "no-such-command"]);
    assert!(
        matches!(out.code, Some(126) | Some(127)),
        "{}",
        out.describe()
    );
}

#[test]
fn restart_policies() {
    let d = Daemon::with_busybox();
    let flaky = unique("flaky");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &flaky,
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 1",
    ])
    .ok();
    poll(
        "on-failure:2 to give up after 2 restarts",
        Duration::from_secs(60),
        || {
            let st = d
                .berth(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{.RestartCount}}",
                    &flaky,
                ])
                .ok();
            (st.line() == "exited 2").then_some(())
        },
    );
    assert_eq!(
        d.berth(&["logs", &flaky])
            .ok()
            .stdout
            .matches("try")
            .count(),
        3
    );

    let fine = unique("fine");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &fine,
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(d.berth(&["wait", &fine]).ok().line(), "0");
    assert_eq!(d.inspect_field(&fine, "{{.RestartCount}}"), "0");

    let always = unique("always");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &always,
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 0.2",
    ])
    .ok();
    poll(
        "always to restart at least twice",
        Duration::from_secs(60),
        || {
            let n: u32 = d.inspect_field(&always, "{{.RestartCount}}").parse().ok()?;
            (n >= 2).then_some(())
        },
    );
    // An explicit stop wins over the policy.
    d.berth(&["stop", "-t", "1", &always]).ok();
    assert_eq!(d.status(&always), "exited");
    let n = d.inspect_field(&always, "{{.RestartCount}}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.status(&always),
        "exited",
        "stopped by the user stays stopped"
    );
    assert_eq!(d.inspect_field(&always, "{{.RestartCount}}"), n);
}

#[test]
fn live_restore_after_kill_9() {
    let mut d = Daemon::with_busybox();
    let live = unique("live");
    let brief = unique("brief");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &live,
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done",
    ])
    .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        &brief,
        "busybox",
        "sh",
        "-c",
        "sleep 1.5; echo finishing; exit 9",
    ])
    .ok();
    d.wait_logs(&live, "tick3");
    let live_pid: i32 = d.inspect_field(&live, "{{.State.Pid}}").parse().unwrap();
    let brief_pid: i32 = d.inspect_field(&brief, "{{.State.Pid}}").parse().unwrap();
    let before = d.berth(&["logs", &live]).ok().stdout.lines().count();

    d.kill9();
    // While the daemon is down: the container keeps running, the other one exits.
    poll(
        "the brief container to exit while the daemon is down",
        WAIT_TIMEOUT,
        || (!std::path::Path::new(&format!("/proc/{brief_pid}")).exists()).then_some(()),
    );
    assert!(
        std::path::Path::new(&format!("/proc/{live_pid}")).exists(),
        "containers survive the daemon"
    );
    // A removal the crash interrupted left its directory in the trash.
    let leftover = d.root.join("trash").join("interrupted-removal");
    std::fs::create_dir_all(leftover.join("fs/upper/etc")).unwrap();
    std::fs::write(
        leftover.join("fs/upper/etc/passwd"),
        "root:x:0:0::/:/bin/sh\n",
    )
    .unwrap();
    d.restart();
    poll(
        "the restarted agent to empty the trash",
        WAIT_TIMEOUT,
        || (!leftover.exists()).then_some(()),
    );

    assert_eq!(d.status(&live), "running");
    assert_eq!(
        d.inspect_field(&live, "{{.State.Pid}}"),
        live_pid.to_string()
    );
    let ps = d.berth(&["ps", "--format", "{{.Names}}"]).ok().stdout;
    assert!(ps.lines().any(|l| l == live), "{ps}");
    let after = d.berth(&["logs", &live]).ok().stdout.lines().count();
    assert!(
        after > before + 5,
        "logs written while the daemon was down: {before} -> {after}"
    );
    assert_eq!(d.status(&brief), "exited");
    assert_eq!(d.inspect_field(&brief, "{{.State.ExitCode}}"), "9");
    assert!(d.berth(&["logs", &brief]).ok().stdout.contains("finishing"));
    d.berth(&["stop", "-t", "1", &live]).ok();
    assert_eq!(d.status(&live), "exited");
}

/// What `kill -9` of the daemon can leave between the steps of a start, each written as the agent
/// would have left it, and what the restarted agent makes of it.
#[test]
fn a_restart_finishes_what_a_crash_interrupted_between_create_and_start() {
    let mut d = Daemon::with_busybox();
    let containers = d.root.join("containers");
    let record = |id: &str| containers.join(id);
    let set_state = |id: &str, from: &str, to: &str| {
        let path = record(id).join("state.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let needle = format!("\"state\": \"{from}\"");
        assert!(text.contains(&needle), "{text}");
        std::fs::write(
            &path,
            text.replace(&needle, &format!("\"state\": \"{to}\"")),
        )
        .unwrap();
    };

    // 1. Set up by its monitor, which the agent died before recording: the held container is
    //    ended, and the container stays created and starts normally.
    let held = unique("held");
    let held_id = d
        .berth(&["create", "--name", &held, "busybox", "echo", "started late"])
        .ok()
        .line();
    // 2. Released and running, the start not recorded.
    let running = unique("running");
    let running_id = d
        .berth(&["run", "-d", "--name", &running, "busybox", "sleep", "60"])
        .ok()
        .line();
    // 3. Released, ran and exited while the agent was down, the start not recorded.
    let ended = unique("ended");
    let ended_id = d
        .berth(&[
            "run", "-d", "--name", &ended, "busybox", "sh", "-c", "exit 3",
        ])
        .ok()
        .line();
    d.wait_status(&ended, "exited");
    d.wait_status(&held, "created");
    // `create` answers before the monitor has set the container up; its record comes after.
    let held_monitor = poll(
        "the held container's monitor to be recorded",
        WAIT_TIMEOUT,
        || {
            let live = std::fs::read_to_string(record(&held_id).join("live.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&live).ok()?;
            v["monitor"][0].as_i64().map(|pid| pid as i32)
        },
    );

    d.kill9();
    std::fs::remove_file(record(&held_id).join("live.json")).unwrap();
    set_state(&running_id, "running", "created");
    set_state(&ended_id, "exited", "created");
    d.restart();

    assert_eq!(d.status(&held), "created");
    poll("the lost monitor to be gone", WAIT_TIMEOUT, || {
        (!std::path::Path::new(&format!("/proc/{held_monitor}")).exists()).then_some(())
    });
    let out = d.berth(&["start", "-a", &held]).ok();
    assert_eq!(out.stdout, "started late\n");

    assert_eq!(d.status(&running), "running");
    assert_ne!(
        d.inspect_field(&running, "{{.State.StartedAt}}"),
        "0001-01-01T00:00:00Z"
    );
    d.berth(&["stop", "-t", "1", &running]).ok();
    assert_eq!(d.status(&running), "exited");

    assert_eq!(d.status(&ended), "exited");
    assert_eq!(d.inspect_field(&ended, "{{.State.ExitCode}}"), "3");
}

/// The daemon's children running `berth-shim --spare` (the spare monitor's first process).
fn spare_monitors(daemon: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{daemon}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"--spare"))
        })
        .collect()
}

/// A spare monitor that died while it waited is not handed a container: the create starts a
/// monitor of its own, and a new spare takes the dead one's place.
#[test]
fn a_dead_spare_monitor_is_replaced_and_costs_no_create() {
    let d = Daemon::with_busybox();
    let pid = d.pid().expect("daemon pid");
    let first = poll("a spare monitor", WAIT_TIMEOUT, || {
        spare_monitors(pid).first().copied()
    });
    // SAFETY: kill of a process this test's daemon started.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    poll("the spare to die", WAIT_TIMEOUT, || {
        (!spare_monitors(pid).contains(&first)).then_some(())
    });
    let out = d
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "spared",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "spared");
    poll("a new spare monitor", WAIT_TIMEOUT, || {
        spare_monitors(pid).into_iter().find(|p| *p != first)
    });
}
