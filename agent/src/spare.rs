//! One monitor started ahead of need. A monitor's exec, loading and double fork take about as long
//! as the bundle's preparation, and on a busy host they compete with it for the CPU; a spare that
//! has done all that already only needs its command line. Each use starts the next spare in the
//! background, at idle CPU priority, so that it never slows a container being set up (the spare
//! takes the normal priority itself before it waits for its container).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::monitor::{self, Launch, Pending};

/// The slot for the one spare, shared by every create and start of the node.
pub struct SpareMonitor {
    shim: PathBuf,
    runtime_root: PathBuf,
    slot: Mutex<Option<Pending>>,
    /// A spare is being started, so another is not.
    filling: AtomicBool,
}

impl SpareMonitor {
    pub fn new(shim: PathBuf, runtime_root: PathBuf) -> Arc<Self> {
        Arc::new(SpareMonitor {
            shim,
            runtime_root,
            slot: Mutex::new(None),
            filling: AtomicBool::new(false),
        })
    }

    /// A monitor for `l`: the spare if one waits, else one started now (it blocks until its
    /// exec). Either way the next spare starts in the background.
    pub fn take(self: &Arc<Self>, l: Launch<'_>) -> Result<Pending, String> {
        let spare = self.slot().take();
        self.refill();
        if let Some(mut p) = spare {
            if p.is_waiting() {
                return Ok(p.assign(&l));
            }
        }
        monitor::spawn(l)
    }

    /// Starts a spare on a blocking thread unless one waits or is on its way.
    pub fn refill(self: &Arc<Self>) {
        if self.slot().is_some() || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            match at_idle_priority(|| monitor::spawn_spare(&this.shim, &this.runtime_root)) {
                Ok(p) => *this.slot() = Some(p),
                Err(e) => tracing::warn!("no spare monitor: {e}"),
            }
            this.filling.store(false, Ordering::Release);
        });
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `f` with the calling thread at idle CPU priority (SCHED_IDLE), which the processes it
/// starts inherit, then restores the thread's own.
fn at_idle_priority<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain syscalls on the calling thread with a valid parameter block.
    let policy = unsafe { libc::sched_getscheduler(0) };
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above; `param` is a valid out-parameter.
    let known = policy >= 0 && unsafe { libc::sched_getparam(0, &mut param) } == 0;
    let idle = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above.
    let lowered = known && unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) } == 0;
    let out = f();
    // SAFETY: as above, restoring what was read.
    if lowered && unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        tracing::warn!(
            "restore a blocking thread's CPU priority: {}",
            std::io::Error::last_os_error()
        );
    }
    out
}
