//! Tests against the running kernel: every test uses its own cgroup (`/berth-test-<unique>/…`)
//! and a guard that destroys it whether the test passes or fails, so they run in parallel.
//! Tests that need root, a hierarchy or a controller the host lacks print why and pass.
//! Child processes are forked and only make async-signal-safe calls (no allocation) before
//! `_exit`, since the test harness is multi-threaded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::layout::{self, Controller, Layout};
use super::{relative, Cgroup, CgroupError};

const MIB: i64 = 1 << 20;

macro_rules! skip {
    ($($arg:tt)*) => {{
        println!(
            "SKIP {}: {}",
            std::thread::current().name().unwrap_or("?"),
            format!($($arg)*)
        );
        return;
    }};
}

/// The host layout, or why kernel tests cannot run here.
fn host() -> Result<&'static Layout, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root to create cgroups".into());
    }
    match layout::host() {
        Layout::V1 { mounts } if mounts.is_empty() => Err("no cgroup hierarchy mounted".into()),
        l => Ok(l),
    }
}

fn has(layout: &Layout, c: Controller) -> bool {
    match layout {
        Layout::V1 { mounts } => mounts.iter().any(|m| m.controllers.contains(c)),
        Layout::V2 { root, available } => Layout::v2_available(root, available).contains(c),
    }
}

/// The directory of cgroup `path` in the hierarchy holding `c` (v2: the only directory).
fn dir_of(layout: &Layout, c: Controller, path: &Path) -> PathBuf {
    let rel = relative(path).expect("valid path");
    match layout {
        Layout::V1 { mounts } => mounts
            .iter()
            .find(|m| m.controllers.contains(c))
            .map(|m| m.mount_point.join(&rel))
            .expect("controller mounted"),
        Layout::V2 { root, .. } => root.join(rel),
    }
}

/// Every directory `path` could have, in any hierarchy.
fn all_dirs(layout: &Layout, path: &Path) -> Vec<PathBuf> {
    let rel = relative(path).expect("valid path");
    match layout {
        Layout::V1 { mounts } => mounts.iter().map(|m| m.mount_point.join(&rel)).collect(),
        Layout::V2 { root, .. } => vec![root.join(rel)],
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Destroys the test's whole `/berth-test-<unique>` subtree on drop, pass or fail.
struct Guard {
    layout: &'static Layout,
    parent: PathBuf,
}

impl Guard {
    fn new(layout: &'static Layout) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let parent = PathBuf::from(format!(
            "/berth-test-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        Guard { layout, parent }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.parent.join(name)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        match Cgroup::open_in(self.layout, &self.parent) {
            Ok(cg) => {
                if let Err(e) = cg.destroy() {
                    eprintln!("cleanup of {}: {e}", self.parent.display());
                }
            }
            Err(CgroupError::NotFound { .. }) => {}
            Err(e) => eprintln!("cleanup of {}: {e}", self.parent.display()),
        }
    }
}

/// A forked child that waits for `start` before running its action, killed and reaped on drop.
struct Child {
    pid: Pid,
    go: libc::c_int,
    reaped: bool,
}

impl Child {
    fn spawn(action: impl FnOnce() -> i32) -> Child {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: plain pipe/fork; the child only makes async-signal-safe calls before _exit.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe");
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                libc::close(fds[1]);
                let mut b = 0u8;
                if libc::read(fds[0], (&mut b as *mut u8).cast(), 1) != 1 {
                    libc::_exit(100);
                }
                libc::_exit(action());
            }
            libc::close(fds[0]);
            Child {
                pid: Pid::from_raw(pid),
                go: fds[1],
                reaped: false,
            }
        }
    }

    fn start(&self) {
        // SAFETY: writing one byte from a valid buffer to our pipe.
        let n = unsafe { libc::write(self.go, b"g".as_ptr().cast(), 1) };
        assert_eq!(n, 1, "starting child");
    }

    fn wait(&mut self) -> WaitStatus {
        self.reaped = true;
        waitpid(self.pid, None).expect("waitpid")
    }

    /// Waits at most `limit` for the child to exit.
    fn wait_timeout(&mut self, limit: Duration) -> Option<WaitStatus> {
        let start = Instant::now();
        loop {
            match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(WaitStatus::StillAlive) => return None,
                Ok(status) => {
                    self.reaped = true;
                    return Some(status);
                }
                Err(e) => panic!("waitpid: {e}"),
            }
        }
    }

    fn state(&self) -> String {
        // /proc/PID/stat: "pid (comm) S ..."; comm may contain spaces, the state follows ')'.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_owned()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        if !self.reaped {
            let _ = waitpid(self.pid, None);
        }
        // SAFETY: closing our own pipe end.
        unsafe { libc::close(self.go) };
    }
}

/// A value in memory shared with forked children (one leaked page).
fn shared<T>() -> &'static T {
    // SAFETY: a fresh zeroed shared anonymous page; T is an atomic, valid when zeroed.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        &*(p as *const T)
    }
}

fn sleep_forever() -> i32 {
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Child action: dirty `bytes` of fresh anonymous memory; false if it cannot be mapped.
fn touch(bytes: usize) -> bool {
    // SAFETY: writes stay within the fresh private mapping.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let p = p.cast::<u8>();
        for off in (0..bytes).step_by(4096) {
            std::ptr::write_volatile(p.add(off), 1);
        }
        true
    }
}

/// Child action: count milliseconds into `counter` forever.
fn count(counter: &AtomicU64) -> i32 {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    loop {
        counter.fetch_add(1, Ordering::Relaxed);
        // SAFETY: valid timespec; the remainder pointer may be null.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    f()
}

fn resources(mem: Option<i64>, shares: Option<u64>, pids: Option<i64>) -> LinuxResources {
    let mut b = LinuxResourcesBuilder::default();
    if let Some(m) = mem {
        b = b.memory(
            LinuxMemoryBuilder::default()
                .limit(m)
                .build()
                .expect("memory"),
        );
    }
    if let Some(s) = shares {
        b = b.cpu(LinuxCpuBuilder::default().shares(s).build().expect("cpu"));
    }
    if let Some(p) = pids {
        b = b.pids(LinuxPidsBuilder::default().limit(p).build().expect("pids"));
    }
    b.build().expect("resources")
}

/// Whether /proc/PID/cgroup puts `pid` in `path` (for v1: in the hierarchy of `c`).
fn member_of(pid: Pid, c: Option<Controller>, path: &Path) -> bool {
    let content = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let path = path.to_string_lossy();
    content.lines().any(|line| {
        let mut f = line.splitn(3, ':');
        let (_, ctls, p) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let ctl_ok = match c {
            Some(c) => ctls.split(',').any(|x| x == c.name()),
            None => ctls.is_empty(),
        };
        ctl_ok && p == path
    })
}

#[test]
fn invalid_paths_are_refused() {
    for p in ["", "/", "/./", "/berth/../etc", ".."] {
        assert!(
            matches!(relative(Path::new(p)), Err(CgroupError::InvalidPath { .. })),
            "{p:?} accepted"
        );
    }
    assert_eq!(
        relative(Path::new("/berth/./x")).expect("ok"),
        Path::new("berth/x")
    );
    assert_eq!(
        relative(Path::new("berth/x")).expect("ok"),
        Path::new("berth/x")
    );
}

#[test]
fn open_missing_is_not_found() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    let g = Guard::new(layout);
    let err = Cgroup::open_in(layout, &g.path("missing")).expect_err("opened a missing cgroup");
    assert!(matches!(err, CgroupError::NotFound { .. }), "{err}");
}

#[test]
fn create_applies_limits_reads_back_and_updates() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    for c in [Controller::Memory, Controller::Cpu, Controller::Pids] {
        if !has(layout, c) {
            skip!("no {} controller", c.name());
        }
    }
    let g = Guard::new(layout);
    let path = g.path("limits");
    let mut res = resources(Some(64 * MIB), Some(512), Some(100));
    let mem = LinuxMemoryBuilder::default()
        .limit(64 * MIB)
        .reservation(32 * MIB)
        .build()
        .expect("memory");
    let cpu = LinuxCpuBuilder::default()
        .shares(512u64)
        .quota(50_000)
        .period(100_000u64)
        .build()
        .expect("cpu");
    res.set_memory(Some(mem));
    res.set_cpu(Some(cpu));
    res.set_devices(Some(vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .expect("deny all"),
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(200)
            .access("rwm")
            .build()
            .expect("tun"),
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::P)
            .access("rwm")
            .build()
            .expect("fifo"),
    ]));
    let cg = Cgroup::create_in(layout, &path, Some(&res)).expect("create");
    assert_eq!(cg.path(), path);

    let mem_dir = dir_of(layout, Controller::Memory, &path);
    let cpu_dir = dir_of(layout, Controller::Cpu, &path);
    let pids_dir = dir_of(layout, Controller::Pids, &path);
    assert_eq!(read(&pids_dir.join("pids.max")), "100");
    match layout {
        Layout::V1 { .. } => {
            assert_eq!(read(&mem_dir.join("memory.limit_in_bytes")), "67108864");
            assert_eq!(
                read(&mem_dir.join("memory.soft_limit_in_bytes")),
                "33554432"
            );
            let memsw = mem_dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read(&memsw), "67108864", "swap not disabled");
            } else {
                println!("no memory.memsw.limit_in_bytes: swap accounting off, not checked");
            }
            assert_eq!(read(&cpu_dir.join("cpu.shares")), "512");
            assert_eq!(read(&cpu_dir.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(&cpu_dir.join("cpu.cfs_period_us")), "100000");
            if has(layout, Controller::Devices) {
                let list = read(&dir_of(layout, Controller::Devices, &path).join("devices.list"));
                let rules: Vec<&str> = list.lines().collect();
                assert!(!rules.contains(&"a *:* rwm"), "not default-deny: {rules:?}");
                for want in ["c 1:3 rwm", "c 10:200 rwm", "c 136:* rwm", "b *:* m"] {
                    assert!(rules.contains(&want), "{want} missing from {rules:?}");
                }
            } else {
                println!("no devices hierarchy: device rules not checked");
            }
        }
        Layout::V2 { .. } => {
            assert_eq!(read(&mem_dir.join("memory.max")), "67108864");
            assert_eq!(read(&mem_dir.join("memory.low")), "33554432");
            let swap = mem_dir.join("memory.swap.max");
            if swap.exists() {
                assert_eq!(read(&swap), "0", "swap not disabled");
            }
            assert_eq!(read(&cpu_dir.join("cpu.weight")), "20");
            assert_eq!(read(&cpu_dir.join("cpu.max")), "50000 100000");
        }
    }
    let stats = cg.stats().expect("stats");
    assert_eq!(stats.memory_limit_bytes, Some(64 << 20));
    assert_eq!(stats.pids_limit, Some(100));

    // Creating again is idempotent and re-applies limits.
    let again = Cgroup::create_in(layout, &path, Some(&resources(None, None, Some(50))))
        .expect("create again");
    assert_eq!(read(&pids_dir.join("pids.max")), "50");

    // Raising memory above the current memory+swap limit (v1 ordering), unlimited pids.
    again
        .update(&resources(Some(128 * MIB), None, Some(0)))
        .expect("update");
    assert_eq!(read(&pids_dir.join("pids.max")), "max");
    let stats = again.stats().expect("stats");
    assert_eq!(stats.memory_limit_bytes, Some(128 << 20));
    assert_eq!(stats.pids_limit, None);
    if let Layout::V1 { .. } = layout {
        let memsw = mem_dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            assert_eq!(read(&memsw), "134217728");
        }
    }
    // Inconsistent swap is a typed error naming the cgroup.
    let mut bad = resources(None, None, None);
    bad.set_memory(Some(
        LinuxMemoryBuilder::default()
            .limit(64 * MIB)
            .swap(32 * MIB)
            .build()
            .expect("memory"),
    ));
    let err = again.update(&bad).expect_err("swap below limit accepted");
    assert!(matches!(err, CgroupError::InvalidResource { .. }), "{err}");
}

#[test]
fn failed_create_leaves_nothing_behind() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    if !has(layout, Controller::Cpu) {
        skip!("no cpu controller");
    }
    let g = Guard::new(layout);
    // Make the parent exist so the leaf is what a failed create must remove.
    Cgroup::create_in(layout, &g.path("x"), None).expect("sibling");
    let path = g.path("bad");
    let mut res = resources(None, None, None);
    res.set_cpu(Some(
        LinuxCpuBuilder::default()
            .quota(10) // below the kernel's 1ms minimum
            .period(100_000u64)
            .build()
            .expect("cpu"),
    ));
    let err = Cgroup::create_in(layout, &path, Some(&res)).expect_err("quota 10us accepted");
    println!("expected failure: {err}");
    assert!(matches!(err, CgroupError::Write { .. }), "{err}");
    for dir in all_dirs(layout, &path) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn procs_lists_added_child_and_open_finds_it() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    let g = Guard::new(layout);
    let path = g.path("procs");
    let cg = Cgroup::create_in(layout, &path, None).expect("create");
    let child = Child::spawn(sleep_forever);
    cg.add_task(child.pid).expect("add_task");
    assert_eq!(cg.procs().expect("procs"), vec![child.pid]);
    let c = match layout {
        Layout::V1 { .. } => Some(Controller::Memory).filter(|c| has(layout, *c)),
        Layout::V2 { .. } => None,
    };
    if c.is_some() || matches!(layout, Layout::V2 { .. }) {
        assert!(member_of(child.pid, c, &path), "/proc/PID/cgroup disagrees");
    }
    let opened = Cgroup::open_in(layout, &path).expect("open");
    assert_eq!(opened.procs().expect("procs"), vec![child.pid]);
}

#[test]
fn self_join_moves_a_single_threaded_child_into_every_hierarchy() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    let g = Guard::new(layout);
    let path = g.path("selfjoin");
    let cg = Cgroup::create_in(layout, &path, None).expect("create");
    let Some(join) = cg.self_join().expect("self_join") else {
        assert!(
            matches!(layout, Layout::V2 { .. }),
            "v1 must offer a self-join"
        );
        skip!("cgroup v2 places processes only from outside");
    };
    let child = Child::spawn(move || match join.enter() {
        Ok(()) => sleep_forever(),
        Err(_) => 3,
    });
    assert!(!member_of(child.pid, Some(Controller::Memory), &path));
    child.start();
    assert!(
        wait_until(Duration::from_secs(5), || cg.procs().ok()
            == Some(vec![child.pid])),
        "the child never appeared in the cgroup"
    );
    for c in [Controller::Memory, Controller::Pids, Controller::Cpu] {
        if has(layout, c) {
            assert!(
                member_of(child.pid, Some(c), &path),
                "not in the {c:?} hierarchy"
            );
        }
    }
}

#[test]
fn freeze_and_thaw_stop_and_resume_a_child() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    if matches!(layout, Layout::V1 { .. }) && !has(layout, Controller::Freezer) {
        skip!("no freezer hierarchy");
    }
    freeze_thaw(layout);
}

fn freeze_thaw(layout: &'static Layout) {
    let g = Guard::new(layout);
    let cg = Cgroup::create_in(layout, &g.path("freeze"), None).expect("create");
    let counter: &AtomicU64 = shared();
    let child = Child::spawn(|| count(counter));
    cg.add_task(child.pid).expect("add_task");
    child.start();
    assert!(
        wait_until(Duration::from_secs(5), || counter.load(Ordering::Relaxed)
            > 2),
        "child never ran"
    );
    assert!(!cg.is_frozen().expect("is_frozen"));

    cg.freeze().expect("freeze");
    assert!(cg.is_frozen().expect("is_frozen"));
    let frozen_at = counter.load(Ordering::Relaxed);
    println!("frozen child state: {}", child.state());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        counter.load(Ordering::Relaxed),
        frozen_at,
        "frozen child made progress"
    );

    cg.thaw().expect("thaw");
    assert!(!cg.is_frozen().expect("is_frozen"));
    assert!(
        wait_until(Duration::from_secs(5), || counter.load(Ordering::Relaxed)
            > frozen_at + 2),
        "thawed child made no progress"
    );
}

#[test]
fn stats_show_memory_cpu_and_pids() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    let g = Guard::new(layout);
    let cg = Cgroup::create_in(layout, &g.path("stats"), None).expect("create");
    let done: &AtomicU32 = shared();
    let child = Child::spawn(|| {
        let ok = touch(16 << 20);
        done.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
        sleep_forever()
    });
    cg.add_task(child.pid).expect("add_task");
    child.start();
    assert!(
        wait_until(Duration::from_secs(10), || done.load(Ordering::SeqCst) != 0),
        "child did not touch its memory"
    );
    assert_eq!(done.load(Ordering::SeqCst), 1, "child could not map memory");
    let s = cg.stats().expect("stats");
    println!("{s:?}");
    if has(layout, Controller::Memory) {
        let usage = s.memory_usage_bytes.expect("memory usage");
        assert!(
            usage >= 16 << 20,
            "usage {usage} below what the child touched"
        );
        assert_eq!(s.memory_limit_bytes, None);
        assert!(s.memory_inactive_file_bytes.is_some());
        assert_eq!(s.oom_kills, Some(0));
    } else {
        println!("no memory controller: memory stats not checked");
    }
    if has(layout, Controller::Pids) {
        assert_eq!(s.pids_current, Some(1));
    }
    if has(layout, Controller::Cpuacct) || matches!(layout, Layout::V2 { .. }) {
        assert!(s.cpu_usage_ns.is_some_and(|n| n > 0), "no cpu usage");
    }
}

#[test]
fn destroy_kills_everything_and_removes_all_dirs() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    let g = Guard::new(layout);
    let path = g.path("destroy");
    let res = resources(
        Some(64 * MIB).filter(|_| has(layout, Controller::Memory)),
        None,
        None,
    );
    let cg = Cgroup::create_in(layout, &path, Some(&res)).expect("create");
    // A nested cgroup with its own process: procs() sees it, destroy removes it first.
    let sub = Cgroup::create_in(layout, &path.join("sub"), None).expect("create sub");
    let mut a = Child::spawn(sleep_forever);
    let mut b = Child::spawn(sleep_forever);
    cg.add_task(a.pid).expect("add a");
    sub.add_task(b.pid).expect("add b");
    let mut procs = cg.procs().expect("procs");
    procs.sort();
    let mut want = vec![a.pid, b.pid];
    want.sort();
    assert_eq!(procs, want);
    // A paused container must be destroyable too.
    if !matches!(layout, Layout::V1 { .. }) || has(layout, Controller::Freezer) {
        cg.freeze().expect("freeze");
    }

    cg.destroy().expect("destroy");
    for child in [&mut a, &mut b] {
        let status = child
            .wait_timeout(Duration::from_secs(5))
            .expect("child survived");
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
            "{status:?}"
        );
    }
    for dir in all_dirs(layout, &path) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    let err = Cgroup::open_in(layout, &path).expect_err("opened a destroyed cgroup");
    assert!(matches!(err, CgroupError::NotFound { .. }), "{err}");
}

#[test]
fn destroy_handles_half_created_cgroup() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    let g = Guard::new(layout);
    let path = g.path("half");
    // Only one hierarchy has the directory, as after a crash part-way through create.
    let dir = &all_dirs(layout, &path)[0];
    std::fs::create_dir_all(dir).expect("mkdir");
    let cg = Cgroup::open_in(layout, &path).expect("open half-created");
    assert!(cg.procs().expect("procs").is_empty());
    cg.destroy().expect("destroy");
    assert!(!dir.exists());
}

#[test]
fn memory_limit_gets_child_oom_killed() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    if !has(layout, Controller::Memory) {
        skip!("no memory controller");
    }
    let g = Guard::new(layout);
    let cg = Cgroup::create_in(
        layout,
        &g.path("oom"),
        Some(&resources(Some(32 * MIB), None, None)),
    )
    .expect("create");
    let mut child = Child::spawn(|| if touch(256 << 20) { 0 } else { 3 });
    cg.add_task(child.pid).expect("add_task");
    child.start();
    let status = child
        .wait_timeout(Duration::from_secs(30))
        .expect("child neither finished nor got killed");
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "expected an OOM kill, got {status:?}"
    );
    let s = cg.stats().expect("stats");
    if let Some(n) = s.oom_kills {
        assert!(n >= 1, "oom_kill count {n}");
    }
}

#[test]
fn pids_limit_makes_fork_fail() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    if !has(layout, Controller::Pids) {
        skip!("no pids controller");
    }
    let g = Guard::new(layout);
    let cg = Cgroup::create_in(
        layout,
        &g.path("pids"),
        Some(&resources(None, None, Some(1))),
    )
    .expect("create");
    let mut child = Child::spawn(|| {
        // SAFETY: fork/_exit/waitpid only; the errno location is valid for this thread.
        unsafe {
            match libc::fork() {
                0 => libc::_exit(0),
                -1 => *libc::__errno_location(),
                pid => {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                    0
                }
            }
        }
    });
    cg.add_task(child.pid).expect("add_task");
    child.start();
    let status = child.wait();
    assert_eq!(
        status,
        WaitStatus::Exited(child.pid, libc::EAGAIN),
        "fork was not refused with EAGAIN"
    );
}

#[test]
fn update_can_add_cpuset_to_a_running_container() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    if !has(layout, Controller::Cpuset) {
        skip!("no cpuset controller");
    }
    let g = Guard::new(layout);
    let path = g.path("cpuset");
    let cg = Cgroup::create_in(layout, &path, None).expect("create");
    let child = Child::spawn(sleep_forever);
    cg.add_task(child.pid).expect("add_task");
    let mut res = resources(None, None, None);
    res.set_cpu(Some(
        LinuxCpuBuilder::default().cpus("0").build().expect("cpu"),
    ));
    cg.update(&res).expect("update cpuset");
    let dir = dir_of(layout, Controller::Cpuset, &path);
    assert_eq!(read(&dir.join("cpuset.cpus")), "0");
    let c = matches!(layout, Layout::V1 { .. }).then_some(Controller::Cpuset);
    assert!(
        member_of(child.pid, c, &path),
        "child not in the cpuset cgroup"
    );
    // A new container asking for a cpuset gets one from the start.
    let other = g.path("cpuset2");
    let cg2 = Cgroup::create_in(layout, &other, Some(&res)).expect("create with cpuset");
    let child2 = Child::spawn(sleep_forever);
    cg2.add_task(child2.pid).expect("add_task with cpuset");
    assert!(member_of(child2.pid, c, &other));
}

/// v2 code on a real cgroup2 mount: the hybrid host's (mostly controller-less) unified mount or
/// a v2 host's root. Limits are exercised only for controllers the mount offers.
#[test]
fn v2_backend_on_cgroup2_mount() {
    if let Err(why) = host() {
        skip!("{why}");
    }
    let Some(root) = layout::cgroup2_mount() else {
        skip!("no cgroup2 mount on this host");
    };
    let layout: &'static Layout = Box::leak(Box::new(Layout::v2(root.clone())));
    let g = Guard::new(layout);
    let path = g.path("v2");
    let offered: Vec<&str> = [Controller::Memory, Controller::Cpu, Controller::Pids]
        .into_iter()
        .filter(|c| has(layout, *c))
        .map(Controller::name)
        .collect();
    println!("cgroup2 at {} offers {offered:?}", root.display());

    // Limits for an absent controller are a typed error and create nothing.
    if !has(layout, Controller::Memory) {
        println!(
            "SKIP v2 memory limits: memory controller absent on {}",
            root.display()
        );
        let err = Cgroup::create_in(layout, &path, Some(&resources(Some(64 * MIB), None, None)))
            .expect_err("memory limit without memory controller");
        assert!(
            matches!(
                err,
                CgroupError::ControllerUnavailable {
                    controller: "memory",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!root.join(relative(&path).expect("rel")).exists());
    }
    if !has(layout, Controller::Pids) {
        println!(
            "SKIP v2 pids limits: pids controller absent on {}",
            root.display()
        );
    }
    if !has(layout, Controller::Cpu) {
        println!(
            "SKIP v2 cpu limits: cpu controller absent on {}",
            root.display()
        );
    }
    let res = resources(
        Some(64 * MIB).filter(|_| has(layout, Controller::Memory)),
        Some(512).filter(|_| has(layout, Controller::Cpu)),
        Some(20).filter(|_| has(layout, Controller::Pids)),
    );
    let cg = Cgroup::create_in(layout, &path, Some(&res)).expect("create");
    let dir = cg.v2_dir().expect("v2").to_path_buf();
    assert_eq!(dir, root.join(relative(&path).expect("rel")));
    if has(layout, Controller::Memory) {
        assert_eq!(read(&dir.join("memory.max")), "67108864");
    }
    if has(layout, Controller::Cpu) {
        assert_eq!(read(&dir.join("cpu.weight")), "20");
    }
    if has(layout, Controller::Pids) {
        assert_eq!(read(&dir.join("pids.max")), "20");
    }

    let counter: &AtomicU64 = shared();
    let mut child = Child::spawn(|| count(counter));
    cg.add_task(child.pid).expect("add_task");
    child.start();
    assert_eq!(cg.procs().expect("procs"), vec![child.pid]);
    assert!(
        member_of(child.pid, None, &path),
        "/proc/PID/cgroup disagrees"
    );
    assert!(wait_until(Duration::from_secs(5), || counter
        .load(Ordering::Relaxed)
        > 2));

    cg.freeze().expect("freeze");
    assert!(cg.is_frozen().expect("is_frozen"));
    assert_eq!(read(&dir.join("cgroup.freeze")), "1");
    let at = counter.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        counter.load(Ordering::Relaxed),
        at,
        "frozen child made progress"
    );
    cg.thaw().expect("thaw");
    assert!(!cg.is_frozen().expect("is_frozen"));
    assert!(wait_until(Duration::from_secs(5), || counter
        .load(Ordering::Relaxed)
        > at + 2));

    let s = cg.stats().expect("stats");
    println!("v2 stats: {s:?}");
    assert!(s.cpu_usage_ns.is_some(), "cpu.stat is core in v2");
    assert_eq!(
        s.memory_usage_bytes.is_some(),
        has(layout, Controller::Memory)
    );

    // Nested cgroup, frozen parent: cgroup.kill takes the subtree down.
    let sub = Cgroup::create_in(layout, &path.join("sub"), None).expect("sub");
    let mut b = Child::spawn(sleep_forever);
    sub.add_task(b.pid).expect("add b");
    cg.freeze().expect("freeze");
    let opened = Cgroup::open_in(layout, &path).expect("open");
    opened.destroy().expect("destroy");
    for c in [&mut child, &mut b] {
        let status = c
            .wait_timeout(Duration::from_secs(5))
            .expect("child survived");
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
            "{status:?}"
        );
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// Cost of the container start/stop path: create (typical limits) + add_task + destroy.
#[test]
fn timing_create_add_task_destroy() {
    let layout = match host() {
        Ok(l) => l,
        Err(why) => skip!("{why}"),
    };
    let g = Guard::new(layout);
    let res = resources(
        Some(256 * MIB).filter(|_| has(layout, Controller::Memory)),
        Some(512).filter(|_| has(layout, Controller::Cpu)),
        Some(512).filter(|_| has(layout, Controller::Pids)),
    );
    const N: u32 = 20;
    let (mut create, mut add, mut destroy) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for i in 0..N {
        let mut child = Child::spawn(sleep_forever);
        let path = g.path(&format!("t{i}"));
        let t0 = Instant::now();
        let cg = Cgroup::create_in(layout, &path, Some(&res)).expect("create");
        let t1 = Instant::now();
        cg.add_task(child.pid).expect("add_task");
        let t2 = Instant::now();
        cg.destroy().expect("destroy");
        let t3 = Instant::now();
        create += t1 - t0;
        add += t2 - t1;
        destroy += t3 - t2;
        let status = child.wait();
        assert!(matches!(
            status,
            WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ));
    }
    println!(
        "TIMING ({:?}, avg of {N}): create {:?} + add_task {:?} + destroy {:?} = {:?}",
        super::hierarchy(),
        create / N,
        add / N,
        destroy / N,
        (create + add + destroy) / N
    );
}

/// The kill path for kernels without `cgroup.kill` (before 5.14): freeze, SIGKILL, thaw.
#[test]
fn freeze_kill_thaw_fallback_empties_the_cgroup() {
    let layout: &'static Layout = match host() {
        Err(why) => skip!("{why}"),
        Ok(l @ Layout::V2 { .. }) => l,
        Ok(Layout::V1 { .. }) => match layout::cgroup2_mount() {
            Some(root) => Box::leak(Box::new(Layout::v2(root))),
            None => layout::host(),
        },
    };
    let g = Guard::new(layout);
    let cg = Cgroup::create_in(layout, &g.path("fallback"), None).expect("create");
    let mut child = Child::spawn(sleep_forever);
    cg.add_task(child.pid).expect("add_task");
    cg.freeze_kill_thaw().expect("freeze, kill, thaw");
    cg.wait_empty().expect("empty");
    let status = child
        .wait_timeout(Duration::from_secs(5))
        .expect("child survived");
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{status:?}"
    );
    assert!(!cg.is_frozen().expect("is_frozen"), "left frozen");
}
