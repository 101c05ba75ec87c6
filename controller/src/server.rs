//! The controller's side of every connection: accepts agents and clients, keeps the index and
//! node registry up to date from agents' reports, answers fleet requests (`info`, `ps`,
//! `create`'s placement, prunes and listings across nodes) and forwards everything that names a
//! container to the agent that owns it, relaying the answer by its shape.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::messages::{
    AgentEvent, AnswerShape, ApiError, ContainerConfig, ErrorKind, Hello, Request, Response,
    SystemInfo, VolumeRequest, PROTOCOL_VERSION,
};
use protocol::transport::{Responder, TransportConfig, TransportError};
use protocol::{Peer, Role};
use quinn::{ReadError, RecvStream, VarInt};
use tokio::sync::Notify;

use crate::index::ContainerIndex;
use crate::nodes::NodeRegistry;
use crate::scheduler::{self, ScheduleError};

/// Bound on asking the local agent for its half of `info`, so `info` never hangs on a stuck
/// agent.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// Label naming the node of a volume in a cluster of several nodes.
pub const VOLUME_NODE_LABEL: &str = "berth.node";

/// State shared by every connection task.
pub(crate) struct Shared {
    pub node_name: String,
    pub hello: Hello,
    pub transport: TransportConfig,
    pub index: Mutex<ContainerIndex>,
    pub nodes: Mutex<NodeRegistry>,
    /// Signalled whenever a node connects.
    pub changed: Notify,
}

/// Locks a mutex; a poisoned lock only means another task panicked while holding it, and the
/// index and registry stay consistent between statements, so the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Serves one incoming connection until it ends.
pub(crate) async fn on_incoming(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let peer = match Peer::accept(incoming, &shared.hello, &shared.transport).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(%remote, error = %e, "refused a connection");
            return;
        }
    };
    match peer.hello().role {
        Role::Agent => serve_agent(shared, peer).await,
        Role::Client => serve_client(shared, peer).await,
        Role::Controller => {
            tracing::warn!(%remote, "a controller connected as a peer; closing");
            peer.close("controllers do not connect to each other");
        }
    }
}

async fn serve_agent(shared: Arc<Shared>, peer: Peer) {
    let name = peer.hello().node_name.clone();
    let generation = lock(&shared.nodes).connected(&name, peer.clone());
    tracing::info!(node = %name, addr = %peer.connection().remote_address(), software = %peer.hello().software, "node connected");
    shared.changed.notify_waiters();
    let s = shared.clone();
    let n = name.clone();
    let result = peer
        .serve(move |req, resp| {
            let s = s.clone();
            let n = n.clone();
            async move { agent_request(&s, &n, req, resp).await }
        })
        .await;
    if lock(&shared.nodes).disconnected(&name, generation) {
        match result {
            Ok(()) => tracing::warn!(node = %name, "node disconnected"),
            Err(e) => tracing::warn!(node = %name, error = %e, "node connection lost"),
        }
    }
}

async fn agent_request(shared: &Shared, node: &str, req: Request, resp: Responder) {
    let answer = match req {
        Request::Report(event) => {
            apply_report(shared, node, event);
            Ok(Response::Done)
        }
        Request::Ping => Ok(Response::Pong),
        other => Err(ApiError::new(
            ErrorKind::Unsupported,
            format!("{} is not served to agents", other.verb()),
        )),
    };
    let _ = resp.reply(answer).await;
}

fn apply_report(shared: &Shared, node: &str, event: AgentEvent) {
    match event {
        AgentEvent::ContainerChanged(summary) => {
            tracing::debug!(%node, id = %summary.id, state = summary.state.as_str(), "container changed");
            lock(&shared.index).upsert(node, summary);
        }
        AgentEvent::ContainerRemoved { id } => {
            tracing::debug!(%node, %id, "container removed");
            lock(&shared.index).remove(&id);
        }
        AgentEvent::Snapshot(list) => {
            tracing::info!(%node, containers = list.len(), "node snapshot");
            lock(&shared.index).replace_node(node, list);
        }
        AgentEvent::Heartbeat(status) => lock(&shared.nodes).heartbeat(node, status),
    }
}

async fn serve_client(shared: Arc<Shared>, peer: Peer) {
    let who = peer.hello().node_name.clone();
    tracing::debug!(client = %who, addr = %peer.connection().remote_address(), "client connected");
    let s = shared.clone();
    let result = peer
        .serve(move |req, resp| {
            let s = s.clone();
            async move { client_request(s, req, resp).await }
        })
        .await;
    if let Err(e) = result {
        tracing::debug!(client = %who, error = %e, "client connection ended");
    }
}

/// Maps a failure to reach or use an agent to what the client is told.
fn node_error(node: &str, e: TransportError) -> ApiError {
    match e {
        TransportError::Api(api) => api,
        TransportError::Connection(c) => ApiError::new(
            ErrorKind::Unavailable,
            format!("node {node} is unavailable: {c}"),
        ),
        other => ApiError::internal(format!("node {node}: {other}")),
    }
}

fn unavailable(node: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("node {node} is unavailable: not connected"),
    )
}

fn connected_peer(shared: &Shared, node: &str) -> Result<Peer, ApiError> {
    lock(&shared.nodes)
        .peer(node)
        .ok_or_else(|| unavailable(node))
}

async fn client_request(shared: Arc<Shared>, req: Request, resp: Responder) {
    let verb = req.verb();
    tracing::debug!(verb, "client request");
    let result = dispatch(&shared, req, resp).await;
    if let Err(e) = result {
        tracing::debug!(verb, error = %e, "answer not delivered");
    }
}

async fn dispatch(shared: &Shared, req: Request, resp: Responder) -> Result<(), TransportError> {
    if req.container().is_some() {
        return container_request(shared, req, resp).await;
    }
    match req {
        Request::Info => resp.reply(info(shared).await).await,
        Request::Ping => resp.reply(Ok(Response::Pong)).await,
        Request::List(opts) => {
            let rows = lock(&shared.index).list(&opts);
            resp.reply(rows.map(Response::Containers)).await
        }
        Request::Create(cfg) => resp.reply(create(shared, cfg).await).await,
        Request::Report(_) => {
            resp.reply(Err(ApiError::new(
                ErrorKind::Forbidden,
                "only agents report container state",
            )))
            .await
        }
        req @ Request::ContainerPrune { .. } => {
            let answer = fan_out(shared, &req).await.map(merge_pruned);
            if let Ok(Response::Pruned { deleted, .. }) = &answer {
                let mut ix = lock(&shared.index);
                for id in deleted {
                    ix.remove(id);
                }
            }
            resp.reply(answer).await
        }
        req @ Request::ListImages { .. } => {
            let answer = fan_out(shared, &req).await.map(|all| {
                let mut images = Vec::new();
                for (_, r) in all {
                    if let Ok(Response::Images(mut v)) = r {
                        images.append(&mut v);
                    }
                }
                Response::Images(images)
            });
            resp.reply(answer).await
        }
        Request::Volume(v) => volume_request(shared, v, resp).await,
        // Networks are per node in this version: served by the single node.
        req @ Request::Network(_) => {
            let answer = match only_node(shared) {
                Ok((node, peer)) => peer.request(&req).await.map_err(|e| node_error(&node, e)),
                Err(e) => Err(e),
            };
            resp.reply(answer).await
        }
        req @ (Request::ImportImage(_)
        | Request::LoadImage
        | Request::SaveImages { .. }
        | Request::Events { .. }
        | Request::Pull(_)
        | Request::Push(_)
        | Request::Login { .. }) => match only_node(shared) {
            Ok((node, peer)) => relay_bytes(&peer, &node, &req, resp).await,
            Err(e) => resp.reply(Err(e)).await,
        },
        req @ (Request::RemoveImage { .. }
        | Request::TagImage { .. }
        | Request::InspectImage { .. }
        | Request::ImageHistory { .. }
        | Request::ImagePrune { .. }) => match only_node(shared) {
            Ok((node, peer)) => {
                let answer = peer.request(&req).await.map_err(|e| node_error(&node, e));
                resp.reply(answer).await
            }
            Err(e) => resp.reply(Err(e)).await,
        },
        other => {
            resp.reply(Err(ApiError::new(
                ErrorKind::Unsupported,
                format!("{} is not supported by the controller", other.verb()),
            )))
            .await
        }
    }
}

/// The single connected node, for verbs that do not name one (image verbs, events, pull, push,
/// login); with several nodes they need one named, which this version has no syntax for.
fn only_node(shared: &Shared) -> Result<(String, Peer), ApiError> {
    let mut peers = lock(&shared.nodes).connected_peers();
    match peers.len() {
        0 => Err(ApiError::new(
            ErrorKind::Unavailable,
            "no node is connected to the controller",
        )),
        1 => Ok(peers.remove(0)),
        n => Err(ApiError::invalid(format!(
            "the cluster has {n} nodes: run this on a single-node cluster or against a node's own daemon"
        ))),
    }
}

async fn info(shared: &Shared) -> Result<Response, ApiError> {
    let local = lock(&shared.nodes).peer(&shared.node_name);
    let mut info = SystemInfo::default();
    if let Some(peer) = local {
        match tokio::time::timeout(INFO_TIMEOUT, peer.request(&Request::Info)).await {
            Ok(Ok(Response::Info(i))) => info = *i,
            Ok(Ok(_)) => tracing::warn!("local agent answered info with something else"),
            Ok(Err(e)) => tracing::debug!(error = %e, "local agent has no info"),
            Err(_) => tracing::warn!("local agent did not answer info in time"),
        }
    }
    if info.name.is_empty() {
        info.name = shared.node_name.clone();
    }
    if info.kernel_version.is_empty() {
        info.kernel_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
    }
    if info.operating_system.is_empty() {
        info.operating_system = std::env::consts::OS.to_string();
    }
    if info.architecture.is_empty() {
        info.architecture = std::env::consts::ARCH.to_string();
    }
    if info.ncpu == 0 {
        info.ncpu = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(0);
    }
    info.server_version = env!("CARGO_PKG_VERSION").to_string();
    info.protocol_version = PROTOCOL_VERSION;
    {
        use protocol::messages::ContainerStatus as S;
        let ix = lock(&shared.index);
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        for c in ix.all() {
            match c.state {
                S::Running | S::Restarting => running += 1,
                S::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        info.containers = ix.len() as u64;
        info.containers_running = running;
        info.containers_paused = paused;
        info.containers_stopped = stopped;
        let nodes = lock(&shared.nodes);
        info.nodes = nodes.statuses(|n| {
            ix.on_node(n)
                .filter(|c| matches!(c.state, S::Running | S::Paused | S::Restarting))
                .count() as u64
        });
    }
    Ok(Response::Info(Box::new(info)))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_new_name(shared: &Shared, name: &str, except_id: Option<&str>) -> Result<(), ApiError> {
    let name = name.strip_prefix('/').unwrap_or(name);
    if !valid_name(name) {
        return Err(ApiError::invalid(format!(
            "invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if let Some(c) = lock(&shared.index).by_name(name) {
        if Some(c.id.as_str()) != except_id {
            return Err(ApiError::conflict(format!(
                "the container name \"/{name}\" is already in use by container \"{}\": remove or rename that container to reuse the name",
                c.id
            )));
        }
    }
    Ok(())
}

async fn create(shared: &Shared, cfg: Box<ContainerConfig>) -> Result<Response, ApiError> {
    if let Some(name) = &cfg.name {
        check_new_name(shared, name, None)?;
    }
    let node = {
        let ix = lock(&shared.index);
        let snapshots = lock(&shared.nodes).snapshots(|n| ix.on_node(n).count() as u64);
        scheduler::schedule(&snapshots, &cfg).map_err(|e| match e {
            ScheduleError::NoSuchNode(_) => ApiError::not_found(e.to_string()),
            ScheduleError::BadConstraint(_) => ApiError::invalid(e.to_string()),
            _ => ApiError::new(ErrorKind::Unavailable, e.to_string()),
        })?
    };
    let peer = connected_peer(shared, &node.0)?;
    let req = Request::Create(cfg);
    let answer = peer
        .request(&req)
        .await
        .map_err(|e| node_error(&node.0, e))?;
    if let (Response::Created { id, .. }, Request::Create(cfg)) = (&answer, &req) {
        tracing::info!(node = %node, %id, image = %cfg.image, "container created");
        lock(&shared.index).note_created(&node.0, id, cfg, now_secs());
    }
    Ok(answer)
}

async fn container_request(
    shared: &Shared,
    req: Request,
    resp: Responder,
) -> Result<(), TransportError> {
    let what = req.container().unwrap_or_default().to_string();
    let routed = {
        let ix = lock(&shared.index);
        ix.resolve(&what).map(|c| (c.id.clone(), c.node.clone()))
    };
    let (id, node) = match routed {
        Ok(r) => r,
        Err(e) => return resp.reply(Err(e)).await,
    };
    if let Request::Rename { new_name, .. } = &req {
        if let Err(e) = check_new_name(shared, new_name, Some(&id)) {
            return resp.reply(Err(e)).await;
        }
    }
    let peer = match connected_peer(shared, &node) {
        Ok(p) => p,
        Err(e) => return resp.reply(Err(e)).await,
    };
    match req.answer_shape() {
        AnswerShape::Single => {
            let answer = peer.request(&req).await.map_err(|e| node_error(&node, e));
            if answer.is_ok() {
                match &req {
                    Request::Remove { .. } => {
                        tracing::info!(%node, %id, "container removed");
                        lock(&shared.index).remove(&id);
                    }
                    Request::Rename { new_name, .. } => {
                        lock(&shared.index).rename(&id, new_name);
                    }
                    _ => {}
                }
            }
            resp.reply(answer).await
        }
        AnswerShape::Stream | AnswerShape::Raw | AnswerShape::Upload | AnswerShape::Download => {
            relay_bytes(&peer, &node, &req, resp).await
        }
    }
}

/// Sends `req` to every connected node at once; the answers by node. Fails only when no node is
/// connected or every node failed (with the first failure).
async fn fan_out(
    shared: &Shared,
    req: &Request,
) -> Result<Vec<(String, Result<Response, ApiError>)>, ApiError> {
    let peers = lock(&shared.nodes).connected_peers();
    if peers.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "no node is connected to the controller",
        ));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (node, peer) in peers {
        let req = req.clone();
        tasks.spawn(async move {
            let r = peer.request(&req).await.map_err(|e| node_error(&node, e));
            (node, r)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(pair) => out.push(pair),
            Err(e) => out.push((
                String::new(),
                Err(ApiError::internal(format!("fan-out task failed: {e}"))),
            )),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if out.iter().all(|(_, r)| r.is_err()) {
        if let Some((_, Err(e))) = out.into_iter().next() {
            return Err(e);
        }
        return Err(ApiError::internal("no answer from any node"));
    }
    Ok(out)
}

fn merge_pruned(all: Vec<(String, Result<Response, ApiError>)>) -> Response {
    let mut deleted = Vec::new();
    let mut space = 0u64;
    for (_, r) in all {
        if let Ok(Response::Pruned {
            deleted: mut d,
            space_reclaimed,
        }) = r
        {
            deleted.append(&mut d);
            space = space.saturating_add(space_reclaimed);
        }
    }
    Response::Pruned {
        deleted,
        space_reclaimed: space,
    }
}

/// Volume verbs: listings and prunes go to every node; create goes to the only node, or with
/// several nodes to the one named by the `berth.node` label; inspect and remove go to the only
/// node, or to the first node that has the volume.
async fn volume_request(
    shared: &Shared,
    v: VolumeRequest,
    resp: Responder,
) -> Result<(), TransportError> {
    let req = Request::Volume(v.clone());
    let answer = match &v {
        VolumeRequest::List { .. } => fan_out(shared, &req).await.map(|all| {
            let mut volumes = Vec::new();
            let mut warnings = Vec::new();
            for (node, r) in all {
                match r {
                    Ok(Response::Volumes {
                        volumes: mut vs,
                        warnings: mut ws,
                    }) => {
                        volumes.append(&mut vs);
                        warnings.append(&mut ws);
                    }
                    Ok(_) => warnings.push(format!("node {node}: unexpected answer")),
                    Err(e) => warnings.push(format!("node {node}: {e}")),
                }
            }
            Response::Volumes { volumes, warnings }
        }),
        VolumeRequest::Prune { .. } => fan_out(shared, &req).await.map(merge_pruned),
        VolumeRequest::Create { labels, .. } => {
            let target = match labels.get(VOLUME_NODE_LABEL) {
                Some(node) => connected_peer(shared, node).map(|p| (node.clone(), p)),
                None => only_node(shared).map_err(|e| {
                    if e.kind == ErrorKind::InvalidArgument {
                        ApiError::invalid(format!(
                            "several nodes: name the volume's node with --label {VOLUME_NODE_LABEL}=NODE"
                        ))
                    } else {
                        e
                    }
                }),
            };
            match target {
                Ok((node, peer)) => peer.request(&req).await.map_err(|e| node_error(&node, e)),
                Err(e) => Err(e),
            }
        }
        VolumeRequest::Inspect { name } | VolumeRequest::Remove { name, .. } => {
            let peers = lock(&shared.nodes).connected_peers();
            let mut last = Err(ApiError::new(
                ErrorKind::Unavailable,
                "no node is connected to the controller",
            ));
            for (node, peer) in peers {
                last = peer.request(&req).await.map_err(|e| node_error(&node, e));
                match &last {
                    Err(e) if e.kind == ErrorKind::NotFound => continue,
                    _ => break,
                }
            }
            if let Err(e) = &last {
                if e.kind == ErrorKind::NotFound {
                    last = Err(ApiError::not_found(format!("no such volume: {name}")));
                }
            }
            last
        }
    };
    resp.reply(answer).await
}

async fn read_opt(r: Option<&mut RecvStream>, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Forwards `req` to `peer` and relays the bytes of both directions unchanged: the agent's
/// answer frames (or raw session chunks) to the client, and the client's raw bytes (stdin,
/// upload body) to the agent. A finish is relayed as a finish and a reset as a reset with its
/// code, so "stdin closed" and "caller went away" stay distinct; the client stopping its read
/// side stops the agent's stream too.
async fn relay_bytes(
    peer: &Peer,
    node: &str,
    req: &Request,
    resp: Responder,
) -> Result<(), TransportError> {
    let (mut asend, mut arecv) = match peer.open(req).await {
        Ok(s) => s,
        Err(e) => return resp.reply(Err(node_error(node, e))).await,
    };
    let (mut csend, mut crecv) = resp.into_streams();
    if crecv.is_none() {
        let _ = asend.finish();
    }
    let mut down = vec![0u8; 64 * 1024];
    let mut up = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            r = arecv.read(&mut down) => match r {
                Ok(Some(n)) => {
                    if csend.write_all(&down[..n]).await.is_err() {
                        let _ = arecv.stop(VarInt::from_u32(0));
                        let _ = asend.reset(VarInt::from_u32(0));
                        break;
                    }
                }
                Ok(None) => {
                    let _ = csend.finish();
                    break;
                }
                Err(ReadError::Reset(code)) => {
                    let _ = csend.reset(code);
                    break;
                }
                Err(e) => {
                    tracing::debug!(%node, error = %e, "relay: agent side failed");
                    let _ = csend.reset(VarInt::from_u32(0));
                    break;
                }
            },
            r = read_opt(crecv.as_mut(), &mut up) => match r {
                Ok(Some(n)) => {
                    if asend.write_all(&up[..n]).await.is_err() {
                        crecv = None;
                    }
                }
                Ok(None) => {
                    let _ = asend.finish();
                    crecv = None;
                }
                Err(ReadError::Reset(code)) => {
                    let _ = asend.reset(code);
                    crecv = None;
                }
                Err(_) => {
                    let _ = asend.reset(VarInt::from_u32(0));
                    crecv = None;
                }
            },
            _ = csend.stopped() => {
                let _ = arecv.stop(VarInt::from_u32(0));
                let _ = asend.reset(VarInt::from_u32(0));
                break;
            }
        }
    }
    Ok(())
}
