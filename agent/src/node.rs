//! The node actor: the index of this host's containers by id and name (name conflicts are decided
//! here), creation of new containers, recovery of existing ones when the agent starts, and the feed of
//! container changes to the controller.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use protocol::messages::{
    AgentEvent, ApiError, ContainerConfig, ContainerStatus, ContainerSummary, ListOptions, Request,
};
use runtime::snapshot::Durability;

use crate::container::{Adopt, ContainerActor};
use crate::lifecycle::State;
use crate::record::Record;
use crate::{names, prepare, Shared};

struct Entry {
    name: String,
    addr: Addr<ContainerActor>,
    summary: ContainerSummary,
}

pub struct NodeActor {
    shared: Option<Arc<Shared>>,
    containers: HashMap<String, Entry>,
    /// Names taken, including those reserved by a create in progress.
    names: HashMap<String, String>,
    /// Reports to the controller, sent in order by one task so a later state never overtakes an
    /// earlier one.
    reports: Option<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
}

/// An item of the report queue.
enum Outgoing {
    Event(Box<AgentEvent>),
    /// Resolved once everything queued before it has been delivered.
    Flush(tokio::sync::oneshot::Sender<()>),
}

type Reply<T> = Result<T, ApiError>;

impl NodeActor {
    pub fn new() -> Self {
        NodeActor {
            shared: None,
            containers: HashMap::new(),
            names: HashMap::new(),
            reports: None,
        }
    }

    fn report(&self, event: AgentEvent) {
        if let Some(q) = &self.reports {
            let _ = q.send(Outgoing::Event(Box::new(event)));
        }
    }

    fn add(&mut self, record: Record, shared: &Arc<Shared>) -> Addr<ContainerActor> {
        let summary = crate::view::summary(&record, &shared.node_name);
        let (id, name) = (record.id.clone(), record.name.clone());
        let addr = ContainerActor::new(record, shared.clone()).start();
        self.names.insert(name.clone(), id.clone());
        self.containers.insert(
            id,
            Entry {
                name,
                addr: addr.clone(),
                summary,
            },
        );
        addr
    }

    /// Full id, unique id prefix, or name.
    fn resolve(&self, key: &str) -> Reply<(String, Addr<ContainerActor>)> {
        let key = key.strip_prefix('/').unwrap_or(key);
        if let Some(e) = self.containers.get(key) {
            return Ok((key.to_owned(), e.addr.clone()));
        }
        if let Some(id) = self.names.get(key) {
            if let Some(e) = self.containers.get(id) {
                return Ok((id.clone(), e.addr.clone()));
            }
        }
        let matches: Vec<&String> = self
            .containers
            .keys()
            .filter(|id| id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [id] => Ok(((*id).clone(), self.containers[*id].addr.clone())),
            [] => Err(ApiError::not_found(format!("no such container: {key}"))),
            _ => Err(ApiError::conflict(format!(
                "multiple containers match {key:?}: use more of the id"
            ))),
        }
    }

    /// Loads every container record and re-adopts running containers through their monitors.
    fn recover(&mut self, shared: &Arc<Shared>) {
        // Directories of containers removed before a crash, not yet deleted.
        let purge = shared.clone();
        tokio::task::spawn_blocking(move || prepare::purge_trash(&purge));
        let Ok(entries) = std::fs::read_dir(shared.layout.containers()) else {
            return;
        };
        // Containers whose monitor still lives keep their network leases; the rest are released.
        let mut live = std::collections::HashSet::new();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let paths = shared.layout.container(&id);
            match Record::load(&paths) {
                Ok(record) if record.state == State::Removed => {
                    if let Ok(trashed) = prepare::teardown(shared, &record, false) {
                        trashed.purge();
                    }
                }
                Ok(record) => {
                    if record.state == State::Created
                        && !record.monitor.is_some_and(crate::monitor::is_alive)
                    {
                        crate::monitor::stop_orphan(
                            &paths.socket(),
                            &paths.exit_file(),
                            &shared.layout.runtime_root(),
                            &id,
                        );
                    }
                    // After a host reboot the overlay is gone; mounting an already mounted snapshot
                    // is a no-op. A volatile layer (`--rm`) whose processes are gone cannot be
                    // mounted again, and its container is only removed.
                    let alive = record.monitor.is_some_and(crate::monitor::is_alive);
                    let mounted =
                        runtime::snapshot::Snapshot::load(&paths.snapshot()).and_then(|s| match s
                            .durability()
                        {
                            Durability::Volatile if !alive => Ok(()),
                            _ => s.mount(),
                        });
                    if let Err(e) = mounted {
                        tracing::warn!(container = %record.short_id(), "root filesystem: {e}");
                    }
                    tracing::info!(container = %record.short_id(), state = ?record.state, "recovered");
                    if alive {
                        live.insert(record.id.clone());
                    }
                    let addr = self.add(record, shared);
                    addr.do_send(Adopt);
                }
                // A create that crashed before its record was durable: nothing refers to it, but
                // its monitor may hold the container set up.
                Err(_) => {
                    let _ = runtime::Runtime::new(shared.layout.runtime_root()).delete(&id, true);
                    if let Ok(trashed) = prepare::teardown_dir(shared, &id) {
                        trashed.purge();
                    }
                }
            }
        }
        shared.network.do_send(crate::network::Reconcile(live));
    }
}

impl Default for NodeActor {
    fn default() -> Self {
        Self::new()
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;
}

/// Hands the node its shared context (which holds the node's own address) and recovers containers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Init(pub Arc<Shared>);

impl Handler<Init> for NodeActor {
    type Result = ();
    fn handle(&mut self, msg: Init, _: &mut Context<Self>) {
        self.recover(&msg.0);
        self.shared = Some(msg.0);
    }
}

/// The controller connection to report changes to; sends a full snapshot at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connected(pub protocol::transport::Peer);

impl Handler<Connected> for NodeActor {
    type Result = ();
    fn handle(&mut self, msg: Connected, _: &mut Context<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let peer = msg.0;
        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                match item {
                    Outgoing::Event(event) => {
                        if let Err(e) = peer.request(&Request::Report(*event)).await {
                            tracing::debug!("report to controller: {e}");
                        }
                    }
                    Outgoing::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        self.reports = Some(tx);
        let all = self
            .containers
            .values()
            .map(|e| e.summary.clone())
            .collect();
        self.report(AgentEvent::Snapshot(all));
    }
}

/// Resolves once every change reported so far has reached the controller, so a verb is answered
/// only after the controller's view (what `ps` reads) includes its effect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for NodeActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(q) = &self.reports {
            let _ = q.send(Outgoing::Flush(tx));
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// A container's state changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changed(pub ContainerSummary);

impl Handler<Changed> for NodeActor {
    type Result = ();
    fn handle(&mut self, msg: Changed, _: &mut Context<Self>) {
        let summary = msg.0;
        if let Some(e) = self.containers.get_mut(&summary.id) {
            if e.summary == summary {
                // Only the processes changed (a monitor recorded): the controller's copy is current.
                return;
            }
            let name = summary
                .names
                .first()
                .map(|n| n.trim_start_matches('/').to_owned());
            if let Some(name) = name.filter(|n| *n != e.name) {
                self.names.remove(&e.name);
                self.names.insert(name.clone(), summary.id.clone());
                e.name = name;
            }
            e.summary = summary.clone();
        }
        self.report(AgentEvent::ContainerChanged(summary));
    }
}

/// A container is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Removed(pub String);

impl Handler<Removed> for NodeActor {
    type Result = ();
    fn handle(&mut self, msg: Removed, _: &mut Context<Self>) {
        if let Some(e) = self.containers.remove(&msg.0) {
            self.names.remove(&e.name);
        }
        self.report(AgentEvent::ContainerRemoved { id: msg.0 });
    }
}

#[derive(Message)]
#[rtype(result = "Reply<(String, Addr<ContainerActor>)>")]
pub struct Resolve(pub String);

impl Handler<Resolve> for NodeActor {
    type Result = Reply<(String, Addr<ContainerActor>)>;
    fn handle(&mut self, msg: Resolve, _: &mut Context<Self>) -> Self::Result {
        self.resolve(&msg.0)
    }
}

#[derive(Message)]
#[rtype(result = "Reply<String>")]
pub struct Create(pub ContainerConfig);

impl Handler<Create> for NodeActor {
    type Result = ResponseActFuture<Self, Reply<String>>;
    fn handle(&mut self, msg: Create, _: &mut Context<Self>) -> Self::Result {
        let Some(shared) = self.shared.clone() else {
            return Box::pin(actix::fut::ready(Err(ApiError::internal(
                "agent is starting",
            ))));
        };
        let name = match &msg.0.name {
            Some(n) if !names::is_valid(n) => {
                return Box::pin(actix::fut::ready(Err(ApiError::invalid(format!(
                    "invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )))))
            }
            Some(n) => {
                if let Some(id) = self.names.get(n) {
                    return Box::pin(actix::fut::ready(Err(ApiError::conflict(format!(
                        "the container name \"/{n}\" is already in use by container {id}: remove or rename that container"
                    )))));
                }
                n.clone()
            }
            None => names::generate(|n| self.names.contains_key(n)),
        };
        let id = names::random_hex(32);
        self.names.insert(name.clone(), id.clone());
        let config = msg.0;
        // The monitor (the spare, or one started now) is handed its container on one blocking
        // thread while the bundle is prepared on another, and waits until the bundle is ready.
        // Without a monitor, the container actor starts one later.
        let monitor = crate::container::start_monitor(
            shared.clone(),
            id.clone(),
            config.tty,
            config.open_stdin,
        );
        let prepared = {
            let shared = shared.clone();
            let (id, name) = (id.clone(), name.clone());
            tokio::task::spawn_blocking(move || prepare::create(&shared, &id, &name, config))
        };
        let work = async move {
            let built = prepared
                .await
                .map_err(|e| ApiError::internal(format!("create: {e}")))?;
            let monitor = monitor.await.ok();
            built.map(|built| (built, monitor))
        };
        Box::pin(
            actix::fut::wrap_future::<_, Self>(work).then(move |res, act, _| {
                let (built, monitor) = match res {
                    Ok(built) => built,
                    Err(e) => {
                        act.names.remove(&name);
                        return actix::fut::ready(Err(e)).boxed_local();
                    }
                };
                let summary = crate::view::summary(&built.record, &shared.node_name);
                let addr = act.add(built.record.clone(), &shared);
                // Its first message, so whatever the caller sends next waits for it. The monitor
                // sets the container up while the records are made durable; `create` is answered
                // once they are.
                addr.do_send(crate::container::Prepare(monitor));
                act.report(AgentEvent::ContainerChanged(summary));
                let persist = async move {
                    tokio::task::spawn_blocking(move || prepare::persist(&shared, &built))
                        .await
                        .map_err(|e| ApiError::internal(format!("create: {e}")))?
                };
                actix::fut::wrap_future::<_, Self>(persist)
                    .map(move |res, _, _| match res {
                        Ok(()) => Ok(id),
                        Err(e) => {
                            addr.do_send(crate::container::Discard);
                            Err(e)
                        }
                    })
                    .boxed_local()
            }),
        )
    }
}

#[derive(Message)]
#[rtype(result = "Vec<ContainerSummary>")]
pub struct List(pub ListOptions);

impl Handler<List> for NodeActor {
    type Result = Vec<ContainerSummary>;
    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        let mut all: Vec<ContainerSummary> = self
            .containers
            .values()
            .map(|e| e.summary.clone())
            .filter(|s| {
                msg.0.all || matches!(s.state, ContainerStatus::Running | ContainerStatus::Paused)
            })
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.created));
        if let Some(n) = msg.0.limit {
            all.truncate(n as usize);
        }
        all
    }
}

/// Ids of the containers in a given state (for prune).
#[derive(Message)]
#[rtype(result = "Vec<(String, Addr<ContainerActor>)>")]
pub struct Stopped;

impl Handler<Stopped> for NodeActor {
    type Result = Vec<(String, Addr<ContainerActor>)>;
    fn handle(&mut self, _: Stopped, _: &mut Context<Self>) -> Self::Result {
        self.containers
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.summary.state,
                    ContainerStatus::Exited | ContainerStatus::Created
                )
            })
            .map(|(id, e)| (id.clone(), e.addr.clone()))
            .collect()
    }
}

/// Renames a container, refusing a name in use.
#[derive(Message)]
#[rtype(result = "Reply<Addr<ContainerActor>>")]
pub struct ReserveName {
    pub id: String,
    pub new_name: String,
}

impl Handler<ReserveName> for NodeActor {
    type Result = Reply<Addr<ContainerActor>>;
    fn handle(&mut self, msg: ReserveName, _: &mut Context<Self>) -> Self::Result {
        if !names::is_valid(&msg.new_name) {
            return Err(ApiError::invalid(format!(
                "invalid container name {:?}",
                msg.new_name
            )));
        }
        if let Some(other) = self.names.get(&msg.new_name) {
            if *other != msg.id {
                return Err(ApiError::conflict(format!(
                    "the container name \"/{}\" is already in use by container {other}",
                    msg.new_name
                )));
            }
        }
        let e = self
            .containers
            .get(&msg.id)
            .ok_or_else(|| ApiError::not_found(format!("no such container: {}", msg.id)))?;
        Ok(e.addr.clone())
    }
}

/// Container counts for `info`.
#[derive(MessageResponse, Default)]
pub struct Counts {
    pub total: u64,
    pub running: u64,
    pub paused: u64,
    pub stopped: u64,
}

#[derive(Message)]
#[rtype(result = "Counts")]
pub struct Count;

impl Handler<Count> for NodeActor {
    type Result = Counts;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> Counts {
        let mut c = Counts {
            total: self.containers.len() as u64,
            ..Default::default()
        };
        for e in self.containers.values() {
            match e.summary.state {
                ContainerStatus::Running => c.running += 1,
                ContainerStatus::Paused => c.paused += 1,
                _ => c.stopped += 1,
            }
        }
        c
    }
}
