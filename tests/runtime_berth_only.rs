//! Properties berth's runtime guarantees beyond the CLI contract. Skipped
//! (with a printed reason) when `BERTH_TEST_RUNTIME` selects another
//! runtime, unless `BERTH_TEST_RUN_BERTH_ONLY=1`.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Makes `cmd`'s child hold `fd` as fd `target`, without close-on-exec.
fn pass_fd(cmd: &mut Command, fd: &impl AsRawFd, target: i32) {
    let raw = fd.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn fd_entries(listing: &str) -> Vec<u32> {
    let mut v: Vec<u32> = listing
        .split_whitespace()
        .filter_map(|e| e.parse().ok())
        .collect();
    v.sort();
    v
}

#[test]
fn inherited_fds_are_closed_before_exec() {
    if skip_unless_berth(
        "inherited_fds_are_closed_before_exec",
        "runc keeps fds only with --preserve-fds; berth must close all",
    ) {
        return;
    }
    let ctx = Ctx::new();
    let leak_file = fs::File::create(ctx.path("leaked-file")).unwrap();
    let leak_dir = fs::File::open(&ctx.dir).unwrap();

    // Foreground run.
    let id = ctx.id("fds");
    let mut b = ctx.bundle(&id);
    b.args(&["ls", "/proc/self/fd"]);
    b.write();
    let mut cmd = ctx.command(&["run", "--bundle", s(&b.dir), &id]);
    pass_fd(&mut cmd, &leak_file, 7);
    pass_fd(&mut cmd, &leak_dir, 9);
    let out = ctx.spawn(&mut cmd).wait("run", CMD_TIMEOUT);
    assert!(out.success(), "{}", out.describe());
    // 0, 1, 2 and the directory ls itself opened.
    assert_eq!(fd_entries(&out.stdout), [0, 1, 2, 3], "{}", out.describe());

    // create + start: the fds are given to `create`, which spawns init.
    let id = ctx.id("fdsc");
    let mut b = ctx.bundle(&id);
    b.args(&["ls", "/proc/self/fd"]);
    b.write();
    let mut cmd = ctx.command(&["create", "--bundle", s(&b.dir), &id]);
    pass_fd(&mut cmd, &leak_file, 7);
    pass_fd(&mut cmd, &leak_dir, 9);
    let created = ctx.spawn(&mut cmd).wait("create", CMD_TIMEOUT).ok();
    ctx.rt(&["start", &id]).ok();
    ctx.wait_status(&id, "stopped");
    let listing = created.stdout_now();
    assert_eq!(fd_entries(&listing), [0, 1, 2, 3], "{listing}");
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn cwd_through_a_leaked_fd_cannot_escape_the_rootfs() {
    if skip_unless_berth(
        "cwd_through_a_leaked_fd_cannot_escape_the_rootfs",
        "CVE-2024-21626 class; checked for berth only",
    ) {
        return;
    }
    let ctx = Ctx::new();
    let host_dir = ctx.mkdir("host-secret");
    let marker = format!("HOST_MARKER_{}", rand_hex(4));
    fs::write(host_dir.join(&marker), "secret").unwrap();
    let leak = fs::File::open(&host_dir).unwrap();

    for (i, cwd) in ["/proc/self/fd/7", "/proc/self/cwd", "/proc/1/cwd/../../.."]
        .iter()
        .enumerate()
    {
        let id = ctx.id(&format!("cwd{i}"));
        let mut b = ctx.bundle(&id);
        b.cwd(cwd).sh("ls; ls ..; readlink /proc/self/cwd");
        b.write();
        let mut cmd = ctx.command(&["run", "--bundle", s(&b.dir), &id]);
        pass_fd(&mut cmd, &leak, 7);
        let out = ctx.spawn(&mut cmd).wait("run", CMD_TIMEOUT);
        assert!(
            !out.stdout.contains(&marker) && !out.stderr.contains(&marker),
            "cwd {cwd} reached the host dir: {}",
            out.describe()
        );
        assert!(
            !out.stdout.contains(s(&host_dir)),
            "cwd {cwd} is the host dir: {}",
            out.describe()
        );
        if !out.success() {
            assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
        }
        ctx.assert_clean(&b, &id);
    }
}

const CAP_SYS_PTRACE: u32 = 19;

/// Removes CAP_SYS_PTRACE from this process's bounding, effective,
/// permitted and inheritable sets with raw syscalls only (safe between
/// fork and exit). Returns 0, or 10/11/12 for the step that failed.
unsafe fn drop_cap_sys_ptrace() -> i32 {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    if libc::prctl(
        libc::PR_CAPBSET_DROP,
        CAP_SYS_PTRACE as libc::c_ulong,
        0,
        0,
        0,
    ) != 0
    {
        return 10;
    }
    let mut hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    if libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) != 0 {
        return 11;
    }
    data[0].effective &= !(1 << CAP_SYS_PTRACE);
    data[0].permitted &= !(1 << CAP_SYS_PTRACE);
    data[0].inheritable &= !(1 << CAP_SYS_PTRACE);
    if libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) != 0 {
        return 12;
    }
    0
}

/// Errno (0 = success) of each probe of `/proc/<pid>/exe` made by a child
/// process with uid 0 but without CAP_SYS_PTRACE.
#[derive(Debug)]
struct Probe {
    open_write: i32,
    open_read: i32,
    readlink: i32,
}

fn probe_exe_without_ptrace(pid: i64) -> Probe {
    let path = CString::new(format!("/proc/{pid}/exe")).unwrap();
    let (rd, wr) = nix::unistd::pipe().unwrap();

    // SAFETY: the child only makes raw syscalls (no allocation, no locks)
    // and leaves with _exit.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => unsafe {
            match drop_cap_sys_ptrace() {
                0 => {}
                code => libc::_exit(code),
            }
            let errno = || *libc::__errno_location();
            let mut res = [0i32; 3];
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            res[0] = if fd >= 0 {
                // Never write: just report that the open worked.
                libc::close(fd);
                0
            } else {
                errno()
            };
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            res[1] = if fd >= 0 {
                libc::close(fd);
                0
            } else {
                errno()
            };
            let mut buf = [0u8; 256];
            let n = libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len());
            res[2] = if n >= 0 { 0 } else { errno() };
            let bytes = std::slice::from_raw_parts(res.as_ptr().cast::<u8>(), 12);
            libc::write(wr.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        },
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            // Bounded wait for the child.
            let deadline = Instant::now() + Duration::from_secs(20);
            let status = loop {
                match nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
                    .expect("waitpid")
                {
                    nix::sys::wait::WaitStatus::StillAlive => {
                        if Instant::now() > deadline {
                            let _ =
                                nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                            let _ = nix::sys::wait::waitpid(child, None);
                            panic!("probe child hung");
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    st => break st,
                }
            };
            assert_eq!(
                status,
                nix::sys::wait::WaitStatus::Exited(child, 0),
                "probe child failed (10: bounding drop, 11: capget, 12: capset)"
            );
            let mut f = fs::File::from(rd);
            let mut bytes = [0u8; 12];
            std::io::Read::read_exact(&mut f, &mut bytes).expect("probe results");
            let v = |i: usize| i32::from_ne_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
            Probe {
                open_write: v(0),
                open_read: v(1),
                readlink: v(2),
            }
        }
    }
}

#[test]
fn created_init_exe_is_not_reachable_without_ptrace_cve_2019_5736() {
    if skip_unless_berth(
        "created_init_exe_is_not_reachable_without_ptrace_cve_2019_5736",
        "berth's setup process must be non-dumpable",
    ) {
        return;
    }
    let ctx = Ctx::new();
    let id = ctx.id("cve");
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "600"]);
    ctx.create(&b, &id).ok();
    let st = ctx.wait_status(&id, "created");
    let pid = st["pid"].as_i64().unwrap();

    // Sanity: with all capabilities the link is readable.
    assert!(
        fs::read_link(format!("/proc/{pid}/exe")).is_ok(),
        "root with CAP_SYS_PTRACE should read the link"
    );

    let p = probe_exe_without_ptrace(pid);
    let denied = |e: i32| e == libc::EACCES || e == libc::EPERM;
    assert!(
        denied(p.open_write),
        "opening /proc/{pid}/exe for writing was not refused with EACCES/EPERM: {p:?}"
    );
    assert!(denied(p.open_read), "opening for reading: {p:?}");
    assert!(denied(p.readlink), "readlink: {p:?}");
    // Still the same, still created.
    assert_eq!(ctx.status(&id).as_deref(), Some("created"));
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_clean(&b, &id);
}

#[test]
fn berth_only_tests_announce_when_they_are_skipped() {
    // Documents the selection mechanism: this test always passes, and
    // prints which runtime the suite runs against.
    let rt = Runtime::from_env();
    eprintln!(
        "runtime under test: `{}` (berth: {})",
        rt.display(),
        rt.is_berth()
    );
}

#[test]
fn exe_probe_detects_a_non_dumpable_process() {
    // Validates the CVE-2019-5736 probe itself, with no runtime involved:
    // a forked child that made itself non-dumpable must be refused, a
    // dumpable one must not.
    for dumpable in [false, true] {
        let (ready_r, ready_w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only makes raw syscalls and never returns.
        let child = match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => unsafe {
                // Same capabilities as the probe, so that only
                // dumpability decides.
                if drop_cap_sys_ptrace() != 0 {
                    libc::_exit(1);
                }
                libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong, 0, 0, 0);
                libc::write(ready_w.as_raw_fd(), b"r".as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        drop(ready_w);
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&ready_r),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16));
        assert_eq!(n, Ok(1), "target child did not get ready");
        let p = probe_exe_without_ptrace(child.as_raw() as i64);
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        if dumpable {
            assert_eq!(p.readlink, 0, "dumpable: {p:?}");
            assert_eq!(p.open_read, 0, "dumpable: {p:?}");
            assert_eq!(p.open_write, libc::ETXTBSY, "dumpable: {p:?}");
        } else {
            assert_eq!(p.readlink, libc::EACCES, "non-dumpable: {p:?}");
            assert_eq!(p.open_read, libc::EACCES, "non-dumpable: {p:?}");
            assert_eq!(p.open_write, libc::EACCES, "non-dumpable: {p:?}");
        }
    }
}
