//! One actor per container. It owns the container's lifecycle state machine, its record on disk, its
//! monitor (and through it the process and log), and its restart policy; everything it holds is
//! released in one place ([`ContainerActor::release`]) in reverse order of acquisition. Blocking work
//! runs off the actor and comes back as a future, so the mailbox never blocks.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use nix::sys::signal::Signal;
use protocol::messages::{
    ApiError, ContainerInspect, ContainerStats, ContainerSummary, NetworkMode, RestartPolicy,
    TopResult,
};
use tokio::sync::oneshot;

use crate::layout::ContainerPaths;
use crate::lifecycle::{Event, State};
use crate::monitor;
use crate::network::{self, state::Endpoint};
use crate::node::{Changed, Removed};
use crate::record::{now_nanos, Record};
use crate::Shared;

/// Default grace period of `stop`.
const DEFAULT_STOP_TIMEOUT: u32 = 10;
/// First restart delay; doubled after each restart (Docker's policy), capped at a minute.
const RESTART_BACKOFF: Duration = Duration::from_millis(100);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(60);

pub struct ContainerActor {
    record: Record,
    paths: ContainerPaths,
    shared: Arc<Shared>,
    /// Notified with the exit code when the main process ends.
    exit_waiters: Vec<oneshot::Sender<i64>>,
    /// Bumped at each start so a stale exit notification is ignored.
    generation: u64,
    /// A restart by policy is in flight (setting up the network and the monitor takes a moment).
    restarting: bool,
    /// `stop`s that arrived during that restart, resumed when it is done.
    restart_waiters: Vec<oneshot::Sender<()>>,
    /// An `rm -f` killed the container and removes it once it exited (not `--rm`'s own removal).
    removing: bool,
    /// The START a queued `start` sent during the set-up ([`crate::early_start`]), for that start.
    early_release: Option<crate::early_start::Release>,
}

type Reply<T> = Result<T, ApiError>;

/// A monitor just started, with the network endpoint set up for it.
struct Launched {
    started: monitor::Started,
    endpoint: Option<Endpoint>,
}

/// Starts the monitor of container `id` (the spare, or a new one) on a blocking thread at once:
/// a new one is waited for until its exec, which must not stall a mailbox. It waits for
/// [`monitor::Pending::go`] before it reads the bundle, so it may start before the bundle is ready.
pub fn start_monitor(
    shared: Arc<Shared>,
    id: String,
    tty: bool,
    stdin: bool,
) -> impl std::future::Future<Output = Result<monitor::Pending, String>> {
    let started = tokio::task::spawn_blocking(move || {
        let paths = shared.layout.container(&id);
        let runtime_root = shared.layout.runtime_root();
        let (log, exit_file, socket) = (paths.log(), paths.exit_file(), paths.socket());
        shared.spare.take(monitor::Launch {
            shim: &shared.shim,
            runtime_root: &runtime_root,
            container: runtime::monitor::args::ContainerArgs {
                bundle: &paths.dir,
                id: &id,
                log: &log,
                exit_file: &exit_file,
                socket: &socket,
                tty,
                stdin,
                // Always held: the program execs only on `release`, after any attach has connected.
                hold: true,
            },
        })
    });
    async move { started.await.map_err(|e| format!("start monitor: {e}"))? }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

impl ContainerActor {
    pub fn new(record: Record, shared: Arc<Shared>) -> Self {
        let paths = shared.layout.container(&record.id);
        ContainerActor {
            record,
            paths,
            shared,
            exit_waiters: Vec::new(),
            generation: 0,
            restarting: false,
            removing: false,
            restart_waiters: Vec::new(),
            early_release: None,
        }
    }

    fn name(&self) -> &str {
        &self.record.name
    }

    /// Persists the record durably (two fsyncs) on a blocking thread, then tells the node (and
    /// through it the controller). The mailbox waits meanwhile (`ctx.wait`), so no later message
    /// sees a state that is not on disk yet; `then` runs with the outcome once it is, before any
    /// other message. A record that is not fsynced (a `--rm` container's, [`Record::is_durable`])
    /// is written here, like `live.json` ([`Self::commit_live`]): the container's exit, which
    /// often follows its start within a millisecond, does not queue behind a blocking thread.
    fn commit(
        &mut self,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Reply<()>, &mut Context<Self>) + 'static,
    ) {
        if !self.record.is_durable() {
            let saved = self
                .record
                .save(&self.paths)
                .map_err(|e| internal("persist container state", e));
            if saved.is_ok() {
                self.announce();
            }
            then(self, saved, ctx);
            return;
        }
        let (record, paths) = (self.record.clone(), self.paths.clone());
        let save = async move {
            tokio::task::spawn_blocking(move || record.save(&paths))
                .await
                .map_err(|e| internal("persist container state", e))?
                .map_err(|e| internal("persist container state", e))
        };
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(save).map(move |saved, act, ctx| {
                if saved.is_ok() {
                    act.announce();
                }
                then(act, saved, ctx);
            }),
        );
    }

    /// Pauses or unpauses through the cgroup freezer, which waits for the kernel, on a blocking
    /// thread with the mailbox held; then records the new state.
    fn freezer(&mut self, ctx: &mut Context<Self>, event: Event) -> ResponseFuture<Reply<()>> {
        if let Err(e) = self.record.state.next(event, &self.record.name) {
            let e = ApiError::from(e);
            return Box::pin(async move { Err(e) });
        }
        let (rt, id) = (self.runtime(), self.record.id.clone());
        let pause = event == Event::Pause;
        let what = if pause { "pause" } else { "unpause" };
        let (tx, rx) = oneshot::channel();
        let frozen = async move {
            tokio::task::spawn_blocking(move || if pause { rt.pause(&id) } else { rt.resume(&id) })
                .await
                .map_err(|e| internal(what, e))?
                .map_err(|e| internal(what, e))
        };
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(frozen).map(move |res, act, ctx| {
                match res.and_then(|()| act.transition(event)) {
                    Ok(()) => act.commit(ctx, move |_, saved, _| {
                        let _ = tx.send(saved);
                    }),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            }),
        );
        Box::pin(async move { rx.await.unwrap_or_else(|e| Err(internal(what, e))) })
    }

    /// [`Self::commit`] as a handler's answer.
    fn commit_reply(&mut self, ctx: &mut Context<Self>) -> ResponseFuture<Reply<()>> {
        let (tx, rx) = oneshot::channel();
        self.commit(ctx, move |_, saved, _| {
            let _ = tx.send(saved);
        });
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|e| Err(internal("persist container state", e)))
        })
    }

    /// [`Self::commit`] where only a failure's log line follows.
    fn commit_logged(&mut self, ctx: &mut Context<Self>) {
        self.commit(ctx, |act, saved, _| {
            if let Err(e) = saved {
                tracing::error!(container = %act.record.short_id(), "{}", e.message);
            }
        });
    }

    /// Persists which processes serve the container (no state changed, so no fsync: see
    /// [`Record::save_live`]), then tells the node.
    fn commit_live(&mut self) -> Reply<()> {
        self.record
            .save_live(&self.paths)
            .map_err(|e| internal("persist container processes", e))?;
        self.announce();
        Ok(())
    }

    fn announce(&self) {
        self.shared.node.do_send(Changed(crate::view::summary(
            &self.record,
            &self.shared.node_name,
        )));
    }

    fn transition(&mut self, event: Event) -> Reply<()> {
        self.record.state = self.record.state.next(event, &self.record.name)?;
        Ok(())
    }

    fn runtime(&self) -> runtime::Runtime {
        runtime::Runtime::new(self.shared.layout.runtime_root())
    }

    /// Watches the monitor; its exit is the container's exit.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        let Some(monitor) = self.record.monitor else {
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(monitor::wait_exit(monitor))
                .map(move |(), act, ctx| act.on_exit(generation, ctx, None)),
        );
    }

    /// Applies the exit the monitor recorded. `finishing` is the monitor when it may still be
    /// cleaning up (it recorded the exit, then closed its clients, and has not exited yet).
    fn on_exit(&mut self, generation: u64, ctx: &mut Context<Self>, finishing: Option<(i32, u64)>) {
        if generation != self.generation || !self.record.state.is_running() {
            return;
        }
        let info = monitor::read_exit(&self.paths.exit_file()).unwrap_or(monitor::ExitInfo {
            exit_code: 255,
            oom_killed: false,
            finished_at: now_nanos(),
        });
        self.record.exit_code = info.exit_code;
        self.record.oom_killed = info.oom_killed;
        self.record.finished_at = info.finished_at;
        self.record.pid = None;
        self.record.monitor = None;
        self.release_network();
        let _ = self.transition(Event::Exit);
        let auto_remove = self.record.config.auto_remove && !self.removing;
        tracing::info!(container = %self.record.short_id(), code = info.exit_code, "exited");
        let waiters = std::mem::take(&mut self.exit_waiters);
        let code = info.exit_code;
        if auto_remove {
            // A container removed on exit is not worth an fsync: if the agent dies before the
            // removal ends, the restarted agent finds it running with its monitor gone and applies
            // this exit (and removal) again.
            self.announce();
            // As Docker's --rm: anonymous volumes go with the container, and waiters (`run --rm`)
            // hear the exit code once it is gone. The mailbox waits meanwhile.
            let released = self.release(true, finishing);
            ctx.wait(
                actix::fut::wrap_future::<_, Self>(released).map(move |(), _, ctx| {
                    for w in waiters {
                        let _ = w.send(code);
                    }
                    ctx.stop();
                }),
            );
            return;
        }
        // Waiters hear the exit once it is on disk.
        self.commit(ctx, move |act, saved, ctx| {
            if let Err(e) = saved {
                tracing::error!(container = %act.record.short_id(), "{}", e.message);
            }
            for w in waiters {
                let _ = w.send(code);
            }
            act.maybe_restart(ctx);
        });
    }

    fn maybe_restart(&mut self, ctx: &mut Context<Self>) {
        let r = &self.record;
        let restart = match r.config.restart_policy {
            RestartPolicy::No => false,
            RestartPolicy::Always => !r.manually_stopped,
            RestartPolicy::UnlessStopped => !r.manually_stopped,
            RestartPolicy::OnFailure { max_retries } => {
                r.exit_code != 0 && max_retries.is_none_or(|m| r.restart_count < m)
            }
        };
        if !restart {
            return;
        }
        let delay = RESTART_BACKOFF
            .saturating_mul(1u32 << self.record.restart_count.min(10))
            .min(RESTART_BACKOFF_MAX);
        ctx.run_later(delay, |act, ctx| {
            if act.record.state != State::Exited || act.record.manually_stopped {
                return;
            }
            act.restarting = true;
            let started = Self::started(act.start(ctx));
            ctx.spawn(actix::fut::wrap_future::<_, Self>(started).map(|res, act, _| {
                act.restarting = false;
                for w in act.restart_waiters.drain(..) {
                    let _ = w.send(());
                }
                if let Err(e) = res {
                    tracing::warn!(container = %act.record.short_id(), "restart failed: {}", e.message);
                }
            }));
        });
    }

    /// The monitor, if one is alive for this container.
    fn live_monitor(&self) -> Option<(i32, u64)> {
        self.record.monitor.filter(|m| monitor::is_alive(*m))
    }

    /// What the network actor must set up before the container's init exists: its namespace,
    /// address and published ports (bridge networks only).
    fn network_request(&self) -> Option<network::Attach> {
        let config = &self.record.config;
        matches!(config.network, NetworkMode::Bridge | NetworkMode::Named(_)).then(|| {
            network::Attach {
                id: self.record.id.clone(),
                name: self.record.name.clone(),
                hostname: self.record.hostname.clone(),
                network: config.network.clone(),
                ports: config.ports.clone(),
            }
        })
    }

    /// Gives the network leases back (a no-op without any).
    fn release_network(&mut self) {
        self.record.network = None;
        if self.network_request().is_some() {
            self.shared
                .network
                .do_send(network::Detach(self.record.id.clone()));
        }
    }

    /// Sets up the container's network, then lets a monitor set the container up and hold it before
    /// exec (`pending`, started while `create` prepared the bundle, or one started now). A port
    /// conflict fails here, before any container process exists.
    fn launch_monitor(
        &self,
        pending: Option<monitor::Pending>,
        early: Option<Arc<crate::early_start::Slot>>,
    ) -> impl std::future::Future<Output = Result<Launched, String>> {
        let attach = self.network_request();
        let shared = self.shared.clone();
        let id = self.record.id.clone();
        let (tty, stdin) = (self.record.config.tty, self.record.config.open_stdin);
        let (socket, exit_file) = (self.paths.socket(), self.paths.exit_file());
        let stale_exit = exit_file.clone();
        // Sends the START of a start queued meanwhile, which the monitor holds until it is ready.
        let early_start = async move {
            let Some(slot) = early else {
                return;
            };
            slot.requested().await;
            let (tx, rx) = oneshot::channel();
            slot.set_release(rx);
            tokio::spawn(async move {
                let _ = tx.send(monitor::release(&socket, &exit_file).await);
            });
        };
        // Nothing happens until the future is polled: a start may drop it unpolled.
        async move {
            let _ = std::fs::remove_file(&stale_exit);
            let pending = match pending {
                Some(p) => p,
                None => start_monitor(shared.clone(), id.clone(), tty, stdin).await?,
            };
            let endpoint = match attach {
                Some(a) => Some(
                    shared
                        .network
                        .send(a)
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.message)?,
                ),
                None => None,
            };
            let started = pending.go(early_start).await;
            if started.is_err() && endpoint.is_some() {
                shared.network.do_send(network::Detach(id.clone()));
            }
            started.map(|started| Launched { started, endpoint })
        }
    }

    fn adopt_monitor(&mut self, launched: Launched, ctx: &mut Context<Self>) {
        let started = launched.started;
        self.record.network = launched.endpoint;
        self.record.pid = Some(started.pid);
        self.record.monitor = Some((started.monitor_pid, started.monitor_start));
        self.watch(ctx);
    }

    /// Releases the held container (launching its monitor first if there is none) and records that
    /// it runs. The answer comes on the returned channel, which outlives the actor: a `--rm`
    /// container whose program ended at once is removed right after its start is recorded.
    fn start(&mut self, ctx: &mut Context<Self>) -> oneshot::Receiver<Reply<()>> {
        let (tx, rx) = oneshot::channel();
        let early = self.early_release.take();
        if let Err(e) = self.record.state.next(Event::Start, &self.record.name) {
            let _ = tx.send(Err(e.into()));
            return rx;
        }
        let launch = match self.live_monitor() {
            Some(_) => None,
            None => Some(self.launch_monitor(None, None)),
        };
        let (socket, exit_file) = (self.paths.socket(), self.paths.exit_file());
        let work = async move {
            // A START sent during the set-up released the container of the monitor it adopted
            // (which may have exited since). Only if it failed (the socket was not bound yet, say)
            // is the start made here.
            if let Some(early) = early {
                if matches!(early.await, Ok(Ok(()))) {
                    return Ok(None);
                }
            }
            let started = match launch {
                Some(l) => Some(l.await?),
                None => None,
            };
            monitor::release(&socket, &exit_file)
                .await
                .map(|()| started)
        };
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(work).map(move |res, act, ctx| {
                let started = match res {
                    Ok(started) => started,
                    Err(e) => {
                        let _ = tx.send(Err(ApiError::new(
                            protocol::messages::ErrorKind::Internal,
                            format!("cannot start container {}: {e}", act.record.name),
                        )));
                        return;
                    }
                };
                if let Some(started) = started {
                    act.adopt_monitor(started, ctx);
                }
                if let Err(e) = act.transition(Event::Start) {
                    let _ = tx.send(Err(e));
                    return;
                }
                if act.restarting {
                    act.record.restart_count += 1;
                }
                act.record.started_at = now_nanos();
                act.record.manually_stopped = false;
                act.record.oom_killed = false;
                act.commit(ctx, move |act, saved, ctx| {
                    let recorded = saved.is_ok();
                    let _ = tx.send(saved);
                    // A program that ended before we got here had its exit ignored (the
                    // container was not yet running): apply it now.
                    if recorded && act.live_monitor().is_none() {
                        act.generation += 1;
                        let g = act.generation;
                        act.on_exit(g, ctx, None);
                    }
                });
            }),
        );
        rx
    }

    /// What a start's channel yields; an actor gone before answering was removed.
    async fn started(rx: oneshot::Receiver<Reply<()>>) -> Reply<()> {
        rx.await
            .unwrap_or_else(|_| Err(ApiError::not_found("the container was removed")))
    }

    /// Marks the container removed and releases what it holds, in reverse order of acquisition:
    /// its process (already gone), network leases at once; then, on a blocking thread, runtime
    /// state, root filesystem, anonymous volumes (with `volumes`) and its directory (moved to the
    /// trash); then the node forgets it; last, unwaited, the trash is deleted, since a large upper
    /// dir takes long. With `finishing`, a monitor that may still be removing the runtime state,
    /// the agent's own removal of it waits for that monitor's exit and comes last.
    fn release(
        &mut self,
        volumes: bool,
        finishing: Option<(i32, u64)>,
    ) -> impl std::future::Future<Output = ()> + 'static {
        let first = self.record.state != State::Removed;
        if first {
            self.release_network();
            self.record.state = State::Removed;
        }
        let (shared, record, rt) = (self.shared.clone(), self.record.clone(), self.runtime());
        let after_monitor = finishing.map(|m| (m, self.runtime(), self.record.id.clone()));
        async move {
            if !first {
                return;
            }
            let id = record.id.clone();
            let node = shared.node.clone();
            let cleanup = tokio::task::spawn_blocking(move || {
                if finishing.is_none() {
                    let _ = rt.delete(&record.id, true);
                }
                crate::prepare::teardown(&shared, &record, volumes)
                    .inspect_err(|e| tracing::warn!(container = %record.short_id(), "cleanup: {e}"))
                    .ok()
            });
            let trashed = cleanup.await.unwrap_or_else(|e| {
                tracing::error!(container = %id, "cleanup: {e}");
                None
            });
            node.do_send(Removed(id));
            if let Some(trashed) = trashed {
                tokio::task::spawn_blocking(move || trashed.purge());
            }
            if let Some((monitor, rt, id)) = after_monitor {
                // Whatever the monitor left (it may have died before its clean-up).
                tokio::spawn(async move {
                    monitor::wait_exit(monitor).await;
                    let _ = tokio::task::spawn_blocking(move || rt.delete(&id, true)).await;
                });
            }
        }
    }

    /// Records a start the agent made but did not live to record (it stopped between releasing
    /// the container and committing). When it started is lost; its creation is the closest time
    /// known.
    fn recover_start(&mut self) -> bool {
        if self.record.state != State::Created || self.transition(Event::Start).is_err() {
            return false;
        }
        self.record.started_at = self.record.created;
        true
    }

    fn signal(&self, sig: Signal) -> Reply<()> {
        self.runtime()
            .kill(&self.record.id, sig, false)
            .map_err(|e| internal(&format!("signal container {}", self.record.name), e))
    }
}

impl Actor for ContainerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.watch(ctx);
    }
}

/// Re-adopts a container after the agent restarted: if its monitor is gone, the exit it recorded
/// meanwhile is applied; a start the agent made but did not record is recorded now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt;

impl Handler<Adopt> for ContainerActor {
    type Result = ();
    fn handle(&mut self, _: Adopt, ctx: &mut Context<Self>) {
        if self.record.monitor.is_some_and(monitor::is_alive) {
            // Released if its init no longer runs the monitor's binary (unknown is not released).
            let released = self
                .record
                .pid
                .is_some_and(|pid| monitor::runs_binary(pid, &self.shared.shim) == Some(false));
            if released && self.recover_start() {
                self.commit_logged(ctx);
            }
            return;
        }
        if self
            .record
            .state
            .ended_while_away(self.paths.exit_file().exists())
        {
            self.recover_start();
            self.generation += 1;
            let g = self.generation;
            self.on_exit(g, ctx, None);
        }
    }
}

/// Sets a new container up under a held monitor, so an attach can connect before it starts. A
/// failure is not fatal: the container stays created and `start` reports the problem. The node
/// answers `create` without waiting for this; the container's later messages (the attach, the
/// start) wait in its mailbox until the monitor is up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Prepare(pub Option<monitor::Pending>);

impl Handler<Prepare> for ContainerActor {
    type Result = ();
    fn handle(&mut self, msg: Prepare, ctx: &mut Context<Self>) {
        if self.live_monitor().is_some() {
            return;
        }
        let slot = self.shared.early.open(&self.record.id);
        let launch = self.launch_monitor(msg.0, Some(slot.clone()));
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(launch).map(move |res, act, ctx| {
                act.shared.early.close(&act.record.id);
                act.early_release = slot.take_release();
                match res {
                    Ok(started) => {
                        act.adopt_monitor(started, ctx);
                        if let Err(e) = act.commit_live() {
                            tracing::warn!(container = %act.record.short_id(), "{}", e.message);
                        }
                    }
                    Err(e) => {
                        tracing::info!(container = %act.record.short_id(), "not prepared: {e}");
                    }
                }
            }),
        );
    }
}

/// Removes a container whose record could not be made durable, so its `create` failed. It runs
/// after [`Prepare`] (which holds the mailbox), so a monitor set up meanwhile goes with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Discard;

impl Handler<Discard> for ContainerActor {
    type Result = ();
    fn handle(&mut self, _: Discard, ctx: &mut Context<Self>) {
        let released = self.release(true, None);
        ctx.wait(actix::fut::wrap_future::<_, Self>(released).map(|(), _, ctx| ctx.stop()));
    }
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct Start;

impl Handler<Start> for ContainerActor {
    type Result = ResponseFuture<Reply<()>>;
    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) -> Self::Result {
        self.record.restart_count = 0;
        Box::pin(Self::started(self.start(ctx)))
    }
}

#[derive(Message, Clone, Copy)]
#[rtype(result = "Reply<()>")]
pub struct Stop {
    pub timeout: Option<u32>,
    /// Send this signal first (default: the configured stop signal, else SIGTERM).
    pub signal: Option<Signal>,
}

impl Handler<Stop> for ContainerActor {
    type Result = ResponseFuture<Reply<()>>;
    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) -> Self::Result {
        if self.restarting {
            // Stop what the restart is starting, once it has started.
            let (tx, rx) = oneshot::channel();
            self.restart_waiters.push(tx);
            let me = ctx.address();
            return Box::pin(async move {
                let _ = rx.await;
                me.send(msg).await.map_err(|e| internal("stop", e))?
            });
        }
        self.record.manually_stopped = true;
        if !self.record.state.is_running() {
            // Docker: stopping a stopped container succeeds.
            return self.commit_reply(ctx);
        }
        let sig = msg.signal.unwrap_or_else(|| self.stop_signal());
        let timeout = msg
            .timeout
            .or(self.record.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        self.exit_waiters.push(tx1);
        self.exit_waiters.push(tx2);
        if self.record.state == State::Paused {
            let _ = self.runtime().resume(&self.record.id);
        }
        let first = self.signal(sig);
        let runtime_root = self.shared.layout.runtime_root();
        let id = self.record.id.clone();
        let wait = async move {
            if first.is_ok()
                && tokio::time::timeout(Duration::from_secs(timeout.into()), rx1)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            let _ = runtime::Runtime::new(runtime_root).kill(&id, Signal::SIGKILL, true);
            tokio::time::timeout(Duration::from_secs(30), rx2)
                .await
                .map(|_| ())
                .map_err(|_| {
                    ApiError::internal(format!("container {id} did not die after SIGKILL"))
                })
        };
        Box::pin(wait)
    }
}

impl ContainerActor {
    fn stop_signal(&self) -> Signal {
        self.record
            .config
            .stop_signal
            .as_deref()
            .or(self.record.image_stop_signal.as_deref())
            .and_then(|s| runtime::signal::parse(s).ok())
            .unwrap_or(Signal::SIGTERM)
    }
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct Kill {
    pub signal: Signal,
}

impl Handler<Kill> for ContainerActor {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Kill, _: &mut Context<Self>) -> Reply<()> {
        if !self.record.state.is_running() {
            return Err(ApiError::not_running(format!(
                "container {} is not running",
                self.record.name
            )));
        }
        if msg.signal == Signal::SIGKILL {
            self.record.manually_stopped = true;
        }
        self.signal(msg.signal)
    }
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct Pause;

impl Handler<Pause> for ContainerActor {
    type Result = ResponseFuture<Reply<()>>;
    fn handle(&mut self, _: Pause, ctx: &mut Context<Self>) -> Self::Result {
        self.freezer(ctx, Event::Pause)
    }
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct Unpause;

impl Handler<Unpause> for ContainerActor {
    type Result = ResponseFuture<Reply<()>>;
    fn handle(&mut self, _: Unpause, ctx: &mut Context<Self>) -> Self::Result {
        self.freezer(ctx, Event::Unpause)
    }
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct Remove {
    pub force: bool,
    pub volumes: bool,
}

impl Handler<Remove> for ContainerActor {
    type Result = ResponseActFuture<Self, Reply<()>>;
    fn handle(&mut self, msg: Remove, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self
            .record
            .state
            .next(Event::Remove { force: msg.force }, &self.record.name)
        {
            return Box::pin(actix::fut::ready(Err(e.into())));
        }
        let exited = if self.record.state.is_running() {
            self.record.manually_stopped = true;
            self.removing = true;
            let (tx, rx) = oneshot::channel();
            self.exit_waiters.push(tx);
            let _ = self.runtime().kill(&self.record.id, Signal::SIGKILL, true);
            Some(rx)
        } else {
            None
        };
        let wait = async move {
            if let Some(rx) = exited {
                let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
            }
        };
        Box::pin(
            actix::fut::wrap_future::<_, Self>(wait)
                .then(move |(), act, _| {
                    // `--rm` takes the anonymous volumes along whoever removes the container.
                    let volumes = msg.volumes || act.record.config.auto_remove;
                    actix::fut::wrap_future(act.release(volumes, None))
                })
                .map(|(), _, ctx| {
                    ctx.stop();
                    Ok(())
                }),
        )
    }
}

#[derive(Message)]
#[rtype(result = "Reply<i64>")]
pub struct Wait;

/// An attach session's output ended. The monitor closes its clients once it has recorded the
/// exit, then removes the runtime state and exits: a `--rm` container is removed from here, and
/// `run --rm` does not wait for the monitor's clean-up and exit too.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OutputEnded;

impl Handler<OutputEnded> for ContainerActor {
    type Result = ();
    fn handle(&mut self, _: OutputEnded, ctx: &mut Context<Self>) {
        let Some(monitor) = self.record.monitor else {
            return;
        };
        // Without an exit file the session ended for another reason (the monitor died, or
        // dropped this client): the monitor's exit decides, as always.
        if self.record.config.auto_remove
            && !self.removing
            && self.record.state.is_running()
            && self.paths.exit_file().exists()
        {
            self.on_exit(self.generation, ctx, Some(monitor));
        }
    }
}

// Waiting futures are not tied to the actor's context (ResponseFuture), so an actor that stops right
// after the exit (`--rm`) still delivers the exit code to its waiters.
impl Handler<Wait> for ContainerActor {
    type Result = ResponseFuture<Reply<i64>>;
    fn handle(&mut self, _: Wait, _: &mut Context<Self>) -> Self::Result {
        if self.record.state == State::Exited {
            let code = self.record.exit_code;
            return Box::pin(async move { Ok(code) });
        }
        let (tx, rx) = oneshot::channel();
        self.exit_waiters.push(tx);
        Box::pin(async move {
            rx.await
                .map_err(|_| ApiError::not_found("container was removed while waiting"))
        })
    }
}

#[derive(Message)]
#[rtype(result = "Reply<ContainerInspect>")]
pub struct Inspect;

impl Handler<Inspect> for ContainerActor {
    type Result = Reply<ContainerInspect>;
    fn handle(&mut self, _: Inspect, _: &mut Context<Self>) -> Self::Result {
        Ok(crate::view::inspect(&self.record, &self.shared.node_name))
    }
}

#[derive(Message)]
#[rtype(result = "Reply<ContainerSummary>")]
pub struct Summary;

impl Handler<Summary> for ContainerActor {
    type Result = Reply<ContainerSummary>;
    fn handle(&mut self, _: Summary, _: &mut Context<Self>) -> Self::Result {
        Ok(crate::view::summary(&self.record, &self.shared.node_name))
    }
}

/// What a reader of the container's output needs: the log file and whether more may come.
#[derive(Debug, Clone)]
pub struct OutputInfo {
    pub log: std::path::PathBuf,
    pub socket: std::path::PathBuf,
    pub running: bool,
    pub paused: bool,
    /// Running, or created with its monitor holding it: an attach now misses nothing.
    pub attachable: bool,
    pub tty: bool,
    pub id: String,
}

#[derive(Message)]
#[rtype(result = "Reply<OutputInfo>")]
pub struct Output;

impl Handler<Output> for ContainerActor {
    type Result = Reply<OutputInfo>;
    fn handle(&mut self, _: Output, _: &mut Context<Self>) -> Self::Result {
        Ok(OutputInfo {
            log: self.paths.log(),
            socket: self.paths.socket(),
            running: self.record.state.is_running(),
            paused: self.record.state == State::Paused,
            attachable: self.record.state.is_running()
                || (self.record.state == State::Created && self.live_monitor().is_some()),
            tty: self.record.config.tty,
            id: self.record.id.clone(),
        })
    }
}

#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct Rename {
    pub new_name: String,
}

impl Handler<Rename> for ContainerActor {
    type Result = ResponseFuture<Reply<()>>;
    fn handle(&mut self, msg: Rename, ctx: &mut Context<Self>) -> Self::Result {
        self.record.name = msg.new_name;
        self.commit_reply(ctx)
    }
}

#[derive(Message)]
#[rtype(result = "Reply<TopResult>")]
pub struct Top {
    pub ps_args: Option<String>,
}

impl Handler<Top> for ContainerActor {
    type Result = ResponseActFuture<Self, Reply<TopResult>>;
    fn handle(&mut self, msg: Top, _: &mut Context<Self>) -> Self::Result {
        if !self.record.state.is_running() {
            let e = ApiError::not_running(format!("container {} is not running", self.name()));
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let pids = self.runtime().pids(&self.record.id);
        Box::pin(actix::fut::wrap_future(async move {
            let pids = pids.map_err(|e| internal("list processes", e))?;
            crate::top::run(&pids, msg.ps_args.as_deref()).await
        }))
    }
}

#[derive(Message)]
#[rtype(result = "Reply<ContainerStats>")]
pub struct Stats;

impl Handler<Stats> for ContainerActor {
    type Result = Reply<ContainerStats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        crate::top::stats(&self.record, &self.shared.layout.runtime_root())
    }
}

#[derive(Message)]
#[rtype(result = "Reply<Vec<protocol::messages::FilesystemChange>>")]
pub struct Diff;

impl Handler<Diff> for ContainerActor {
    type Result = ResponseActFuture<Self, Reply<Vec<protocol::messages::FilesystemChange>>>;
    fn handle(&mut self, _: Diff, _: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        let record = self.record.clone();
        Box::pin(actix::fut::wrap_future(async move {
            tokio::task::spawn_blocking(move || crate::prepare::diff(&shared, &record))
                .await
                .map_err(|e| internal("diff", e))?
        }))
    }
}

/// A copy of the container's record, for work on its file system (commit, export, cp) that runs
/// outside the actor.
#[derive(Message)]
#[rtype(result = "Record")]
pub struct RecordCopy;

impl Handler<RecordCopy> for ContainerActor {
    type Result = actix::MessageResult<RecordCopy>;
    fn handle(&mut self, _: RecordCopy, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.record.clone())
    }
}

/// `network connect`/`disconnect` changed the container's interfaces.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct NetworkChanged(pub Endpoint);

impl Handler<NetworkChanged> for ContainerActor {
    type Result = ResponseFuture<Reply<()>>;
    fn handle(&mut self, msg: NetworkChanged, ctx: &mut Context<Self>) -> Self::Result {
        self.record.network = Some(msg.0);
        self.commit_reply(ctx)
    }
}
