//! `create`: clone the init into its namespaces and cgroup, wait until it is set up, record it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::{plan, Runtime};
use crate::bundle::Bundle;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::init::{self, ConsoleTarget, StartSignal};
use crate::state::{Record, StateDir};
use crate::sync::{self, Channel, Msg};

/// runc's create flags.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    /// A network namespace made ahead ([`crate::network::netns::fresh`]) that no process uses
    /// yet. When the spec asks for a new network namespace, the init joins this one instead, so
    /// the clone does not pay for making it.
    pub network_namespace: Option<Arc<OwnedFd>>,
}

/// Which caller is launching: `create` waits on the exec fifo, `run` starts over the channel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Launch {
    Create,
    Run { foreground: bool },
}

/// A set-up container whose init waits for start.
pub(super) struct Launched {
    pub dir: StateDir,
    pub record: Record,
    pub chan: Channel,
    pub pty_master: Option<OwnedFd>,
    pub cleanup: Cleanup,
}

/// Undoes a partial create on every error path: kills and reaps the init, removes the cgroup and the
/// state directory, so a failed create leaves nothing behind.
pub(super) struct Cleanup {
    dir: Option<StateDir>,
    cgroup: Option<Cgroup>,
    child: Option<Pid>,
}

impl Cleanup {
    pub fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.child = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.child.take() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup after failed create: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

impl Runtime {
    /// Creates a container whose init waits for `start`.
    pub fn create(&self, opts: &CreateOptions) -> Result<Record> {
        let mut launched = self.launch(opts, Bundle::load(&opts.bundle)?, Launch::Create)?;
        launched.cleanup.disarm();
        Ok(launched.record)
    }

    pub(super) fn launch(
        &self,
        opts: &CreateOptions,
        bundle: Bundle,
        mode: Launch,
    ) -> Result<Launched> {
        let dir = StateDir::new(&self.root, &opts.id)?;
        if dir.path.exists() {
            return Err(Error::AlreadyExists(opts.id.clone()));
        }

        let console = match (&opts.console_socket, mode) {
            (Some(path), _) => ConsoleTarget::Socket(
                crate::unix_socket::connect(path)
                    .map_err(|e| Error::io(format!("console socket {}", path.display()), e))?
                    .into(),
            ),
            (None, Launch::Run { foreground: true }) => ConsoleTarget::Parent,
            (None, _) => ConsoleTarget::None,
        };
        // The fifo's directory fd is filled in once the directory exists.
        let start_placeholder = StartSignal::Channel;
        let (mut plan, mut namespaces) =
            plan::build(&bundle, start_placeholder, console, opts.preserve_fds)?;
        if let Some(made) = &opts.network_namespace {
            if namespaces.clone.contains(CloneFlags::CLONE_NEWNET) {
                let fd = made
                    .try_clone()
                    .map_err(|e| Error::io("duplicate the network namespace made ahead", e))?;
                namespaces.clone.remove(CloneFlags::CLONE_NEWNET);
                plan.join.push((CloneFlags::CLONE_NEWNET, fd));
            }
        }
        let cgroup_path = plan::cgroup_path(&bundle.spec, &opts.id);

        dir.create()?;
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroup: None,
            child: None,
        };
        if mode == Launch::Create {
            nix::unistd::mkfifo(&dir.fifo(), Mode::from_bits_truncate(0o600))
                .map_err(|e| Error::io(format!("mkfifo {}", dir.fifo().display()), e))?;
            let dirfd = nix::fcntl::open(
                &dir.path,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io(format!("open {}", dir.path.display()), e))?;
            plan.start = StartSignal::ExecFifo(dirfd);
        }
        let resources = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref());
        let cgroup = Cgroup::create(&cgroup_path, resources)?;
        let self_join = cgroup.self_join();
        cleanup.cgroup = Some(cgroup);
        plan.cgroup = self_join?;
        let joins_itself = plan.cgroup.is_some();

        let (parent, child) = sync::pair().map_err(|e| Error::io("socketpair", e))?;
        if let Some(pidns) = &namespaces.join_pid {
            nix::sched::setns(pidns.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| Error::io("join pid namespace", e))?;
        }
        let pid = clone_init(namespaces.clone)?;
        if pid.as_raw() == 0 {
            drop(parent);
            init::run(&plan, &child);
        }
        drop(child);
        drop(plan);
        cleanup.child = Some(pid);
        if let Some(cgroup) = cleanup.cgroup.as_ref().filter(|_| !joins_itself) {
            cgroup.add_task(pid)?;
        }

        parent
            .send(&Msg::Setup)
            .map_err(|e| Error::Init(format!("init did not take the setup message: {e}")))?;
        let mut pty_master = None;
        loop {
            match parent.recv().map_err(|e| Error::io("read from init", e))? {
                Some((Msg::Ready, _)) => break,
                Some((Msg::PtyMaster, fd)) => pty_master = fd,
                Some((Msg::Error(text), _)) => return Err(Error::Init(text)),
                Some((other, _)) => {
                    return Err(Error::Init(format!(
                        "unexpected message from init: {other:?}"
                    )))
                }
                None => return Err(Error::Init("init exited during setup".into())),
            }
        }

        let record = Record {
            id: opts.id.clone(),
            pid: pid.as_raw(),
            pid_start_time: crate::proc::start_time(pid)
                .ok_or_else(|| Error::Init("init exited during setup".into()))?,
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            cgroup_path,
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        };
        dir.save(&record)?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        Ok(Launched {
            dir,
            record,
            chan: parent,
            pty_master,
            cleanup,
        })
    }
}

/// clone(2) with fork semantics (no new stack: the child continues on a copy of ours) plus the
/// namespaces to create. The caller must be single-threaded.
pub(super) fn clone_init(flags: nix::sched::CloneFlags) -> Result<Pid> {
    // SAFETY: with a null stack clone behaves like fork; this process has one thread, so the child's
    // copy of the address space (allocator included) is consistent.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if ret < 0 {
        return Err(Error::io(
            "clone container init",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(Pid::from_raw(ret as i32))
}

/// Writes the pid file atomically, as runc does.
pub(super) fn write_pid_file(path: &std::path::Path, pid: Pid) -> Result<()> {
    let tmp = path.with_extension("tmp-berth");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("write pid file {}", path.display()), e))
}
