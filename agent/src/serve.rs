//! The agent's side of the protocol: each request the controller opens on the agent's connection is
//! routed to the node actor or to the container's actor, and the answer is written back in the shape
//! the request expects (single, streamed, raw).

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use protocol::messages::{
    ApiError, AttachOptions, ErrorKind, ExecConfig, ListOptions, LogsOptions, NetworkRequest,
    Request, Response, SessionHeader, SystemInfo,
};
use protocol::transport::Responder;

use crate::container::{self, ContainerActor};
use crate::filesystem;
use crate::images;
use crate::logs::LogReader;
use crate::network;
use crate::node;
use crate::registry;
use crate::session;
use crate::storage;
use crate::Shared;

type Reply<T> = Result<T, ApiError>;

/// How often `logs -f` looks for new output.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

fn mailbox(e: actix::MailboxError) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("agent actor unavailable: {e}"),
    )
}

async fn resolve(shared: &Shared, key: &str) -> Reply<(String, Addr<ContainerActor>)> {
    shared
        .node
        .send(node::Resolve(key.to_owned()))
        .await
        .map_err(mailbox)?
}

/// Starts a container; a start queued while its monitor still sets it up overtakes the set-up
/// ([`crate::early_start`]).
async fn start(shared: &Shared, key: &str) -> Reply<Reply<()>> {
    let (id, addr) = resolve(shared, key).await?;
    let started = addr.send(container::Start);
    shared.early.request(&id);
    started.await.map_err(|_| removed(key))
}

async fn ask<M>(shared: &Shared, key: &str, msg: M) -> Reply<M::Result>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    ContainerActor: actix::Handler<M>,
{
    let (_, addr) = resolve(shared, key).await?;
    addr.send(msg).await.map_err(|_| removed(key))
}

/// A container actor's mailbox closes only when its container is gone (removed meanwhile).
fn removed(key: &str) -> ApiError {
    ApiError::not_found(format!("no such container: {key}"))
}

/// Answers one request.
pub async fn handle(shared: Arc<Shared>, req: Request, responder: Responder) {
    match req {
        Request::Logs { container, options } => {
            logs(&shared, &container, options, responder).await;
        }
        Request::Attach { container, options } => {
            attach(&shared, &container, options, responder).await
        }
        Request::Exec { container, config } => exec(&shared, &container, config, responder).await,
        Request::ImportImage(req) => storage::import(shared.clone(), req, responder).await,
        Request::Pull(req) => registry::pull(shared.clone(), req, responder).await,
        Request::Push(req) => registry::push(shared.clone(), req, responder).await,
        Request::LoadImage => images::load(shared.clone(), responder).await,
        Request::SaveImages { images: names } => {
            images::save(shared.clone(), names, responder).await
        }
        Request::Export { container } => {
            filesystem::export(shared.clone(), &container, responder).await
        }
        Request::CopyFrom { container, path } => {
            filesystem::copy_from(shared.clone(), &container, &path, responder).await
        }
        Request::CopyTo {
            container,
            path,
            into_dir_only,
        } => filesystem::copy_to(shared.clone(), &container, &path, into_dir_only, responder).await,
        other => {
            let result = single(&shared, other).await;
            // The controller hears of the change before the caller does.
            let _ = shared.node.send(node::Flush).await;
            let _ = responder.reply(result).await;
        }
    }
}

async fn single(shared: &Arc<Shared>, req: Request) -> Reply<Response> {
    let done = |r: Reply<()>| r.map(|()| Response::Done);
    match req {
        Request::Ping => Ok(Response::Pong),
        Request::Info => info(shared).await,
        Request::Create(mut cfg) => {
            if let protocol::messages::NetworkMode::Named(n) = &cfg.network {
                shared
                    .network
                    .send(network::Exists(n.clone()))
                    .await
                    .map_err(mailbox)??;
            }
            // Credentials are used for the pull and never stored with the container.
            let auth = cfg.registry_auth.take();
            let pulled = registry::ensure_image(shared, &cfg.image, cfg.pull, auth).await?;
            let id = shared
                .node
                .send(node::Create(*cfg))
                .await
                .map_err(mailbox)??;
            Ok(Response::Created {
                id,
                warnings: Vec::new(),
                pulled,
            })
        }
        Request::Login { registry, auth } => registry::login(shared, registry, auth).await,
        Request::Start { container } => done(start(shared, &container).await?),
        Request::Stop { container, timeout } => {
            ask(
                shared,
                &container,
                container::Stop {
                    timeout,
                    signal: None,
                },
            )
            .await??;
            settle_network(shared).await
        }
        Request::Restart { container, timeout } => {
            let (_, addr) = resolve(shared, &container).await?;
            addr.send(container::Stop {
                timeout,
                signal: None,
            })
            .await
            .map_err(|_| removed(&container))??;
            done(
                addr.send(container::Start)
                    .await
                    .map_err(|_| removed(&container))?,
            )
        }
        Request::Kill { container, signal } => {
            let signal = match signal {
                Some(s) => runtime::signal::parse(&s).map_err(ApiError::invalid)?,
                None => nix::sys::signal::Signal::SIGKILL,
            };
            done(ask(shared, &container, container::Kill { signal }).await?)
        }
        Request::Remove {
            container,
            force,
            volumes,
        } => {
            ask(shared, &container, container::Remove { force, volumes }).await??;
            settle_network(shared).await
        }
        Request::Pause { container } => done(ask(shared, &container, container::Pause).await?),
        Request::Unpause { container } => done(ask(shared, &container, container::Unpause).await?),
        Request::List(opts) => list(shared, opts).await,
        Request::Inspect { container } => Ok(Response::Inspect(Box::new(
            ask(shared, &container, container::Inspect).await??,
        ))),
        Request::Wait { container, .. } => {
            let exit_code = ask(shared, &container, container::Wait).await??;
            Ok(Response::Exited {
                exit_code,
                error: None,
            })
        }
        Request::Rename {
            container,
            new_name,
        } => {
            let (id, _) = resolve(shared, &container).await?;
            let addr = shared
                .node
                .send(node::ReserveName {
                    id,
                    new_name: new_name.clone(),
                })
                .await
                .map_err(mailbox)??;
            done(
                addr.send(container::Rename { new_name })
                    .await
                    .map_err(|_| removed(&container))?,
            )
        }
        Request::Top { container, ps_args } => Ok(Response::Top(
            ask(shared, &container, container::Top { ps_args }).await??,
        )),
        Request::Stats { container, .. } => Ok(Response::Stats(Box::new(
            ask(shared, &container, container::Stats).await??,
        ))),
        Request::Diff { container } => Ok(Response::Changes(
            ask(shared, &container, container::Diff).await??,
        )),
        Request::ContainerPrune { .. } => prune(shared).await,
        Request::ListImages { .. } => storage::list_images(shared),
        Request::Commit { container, options } => {
            filesystem::commit(shared.clone(), &container, options).await
        }
        Request::RemoveImage { image, force } => {
            let shared = Arc::clone(shared);
            blocking("rmi", move || images::remove(&shared, &image, force)).await
        }
        Request::ImagePrune { all, .. } => {
            let shared = Arc::clone(shared);
            blocking("image prune", move || images::prune(&shared, all)).await
        }
        Request::TagImage { source, target } => images::tag(shared, &source, &target),
        Request::InspectImage { image } => images::inspect(shared, &image),
        Request::ImageHistory { image } => images::history(shared, &image),
        Request::Network(n) => network_request(shared, n).await,
        Request::Volume(v) => {
            let shared = Arc::clone(shared);
            tokio::task::spawn_blocking(move || storage::volume(&shared, v))
                .await
                .map_err(|e| ApiError::internal(format!("volume: {e}")))?
        }
        Request::Resize {
            container,
            session,
            size,
        } => {
            if shared.sessions.resize(&session, size) {
                return Ok(Response::Done);
            }
            let info = ask(shared, &container, container::Output).await??;
            if !info.tty {
                return Err(ApiError::invalid(format!(
                    "container {container} has no terminal to resize"
                )));
            }
            session::resize_main(&info.socket, size).await?;
            Ok(Response::Done)
        }
        other => Err(ApiError::new(
            ErrorKind::Unsupported,
            format!("{} is not supported by this agent yet", other.verb()),
        )),
    }
}

/// Runs store work that may take a while (deleting layers) off the async threads.
async fn blocking(
    what: &'static str,
    f: impl FnOnce() -> Reply<Response> + Send + 'static,
) -> Reply<Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("{what}: {e}")))?
}

/// Waits until the network actor has released what a stopped or removed container gave back.
async fn settle_network(shared: &Shared) -> Reply<Response> {
    shared
        .network
        .send(network::Settle)
        .await
        .map_err(mailbox)?;
    Ok(Response::Done)
}

/// Network verbs: the network actor answers; connect/disconnect also update the container's record.
async fn network_request(shared: &Shared, req: NetworkRequest) -> Reply<Response> {
    let connect = matches!(req, NetworkRequest::Connect { .. });
    let verb = match req {
        NetworkRequest::Create { name, subnet } => network::Verb::Create { name, subnet },
        NetworkRequest::List => network::Verb::List,
        NetworkRequest::Inspect { name } => network::Verb::Inspect(name),
        NetworkRequest::Remove { name } => network::Verb::Remove(name),
        NetworkRequest::Prune => network::Verb::Prune,
        NetworkRequest::Connect { network, container }
        | NetworkRequest::Disconnect { network, container } => {
            let (id, addr) = resolve(shared, &container).await?;
            let endpoint = shared
                .network
                .send(network::Plug {
                    id,
                    network,
                    connect,
                })
                .await
                .map_err(mailbox)??;
            addr.send(container::NetworkChanged(endpoint))
                .await
                .map_err(|_| removed(&container))??;
            return Ok(Response::Done);
        }
    };
    shared.network.send(verb).await.map_err(mailbox)?
}

async fn info(shared: &Shared) -> Reply<Response> {
    let counts = shared.node.send(node::Count).await.map_err(mailbox)?;
    let uts = nix::sys::utsname::uname().map_err(|e| ApiError::internal(format!("uname: {e}")))?;
    Ok(Response::Info(Box::new(SystemInfo {
        name: shared.node_name.clone(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: protocol::messages::PROTOCOL_VERSION,
        containers: counts.total,
        containers_running: counts.running,
        containers_paused: counts.paused,
        containers_stopped: counts.stopped,
        images: 0,
        kernel_version: uts.release().to_string_lossy().into_owned(),
        operating_system: uts.sysname().to_string_lossy().into_owned(),
        architecture: uts.machine().to_string_lossy().into_owned(),
        // SAFETY: sysconf has no preconditions.
        ncpu: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32,
        mem_total: 0,
        root_dir: shared.layout.root().display().to_string(),
        nodes: Vec::new(),
    })))
}

async fn list(shared: &Shared, opts: ListOptions) -> Reply<Response> {
    Ok(Response::Containers(
        shared.node.send(node::List(opts)).await.map_err(mailbox)?,
    ))
}

async fn prune(shared: &Shared) -> Reply<Response> {
    let stopped = shared.node.send(node::Stopped).await.map_err(mailbox)?;
    let mut deleted = Vec::new();
    for (id, addr) in stopped {
        let removed = addr
            .send(container::Remove {
                force: false,
                volumes: false,
            })
            .await;
        if matches!(removed, Ok(Ok(()))) {
            deleted.push(id);
        }
    }
    Ok(Response::Pruned {
        deleted,
        space_reclaimed: 0,
    })
}

/// Streams the log; with `follow`, keeps sending new lines until the container stops or the caller
/// goes away.
async fn logs(shared: &Shared, key: &str, opts: LogsOptions, mut responder: Responder) {
    let info = match ask(shared, key, container::Output).await {
        Ok(Ok(info)) => info,
        Ok(Err(e)) | Err(e) => {
            let _ = responder.fail(e).await;
            return;
        }
    };
    let mut reader = match LogReader::open(&info.log) {
        Ok(r) => r,
        Err(e) => {
            let _ = responder
                .fail(ApiError::internal(format!("read log: {e}")))
                .await;
            return;
        }
    };
    let mut batch = reader.initial(&opts);
    let mut running = info.running;
    loop {
        match batch {
            Ok(chunks) => {
                for c in chunks {
                    if responder.send(Response::Log(c)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = responder
                    .fail(ApiError::internal(format!("read log: {e}")))
                    .await;
                return;
            }
        }
        if !opts.follow || !running {
            break;
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        running = match ask(shared, key, container::Output).await {
            Ok(Ok(i)) => i.running,
            _ => false,
        };
        reader.reopen_if_missing(&info.log);
        // Read once more after the container stopped, to catch its last words.
        batch = reader.more(&opts);
    }
    let _ = responder.end().await;
}

/// Attaches the caller to the container's main process through its monitor, and starts it first
/// when asked (`run`, `start -a`); the session ends with the container's exit code.
async fn attach(shared: &Shared, key: &str, opts: AttachOptions, responder: Responder) {
    let prepared = async {
        let (id, addr) = resolve(shared, key).await?;
        // `run` attaches while the monitor still sets the container up, its socket already bound:
        // connected now, the attach can let the start overtake the set-up (no terminal to size
        // first).
        let early = (opts.start && opts.tty_size.is_none() && shared.early.preparing(&id))
            .then(|| session::connect_main(&shared.layout.container(&id).socket()).ok())
            .flatten();
        let output = addr.send(container::Output);
        if let Some(monitor) = early {
            // Queued behind the set-up in this order: the exit waiter, then the start.
            let wait = addr.send(container::Wait);
            let started = addr.send(container::Start);
            shared.early.request(&id);
            // The container may have run and exited by now: this connection has its output. (A
            // set-up that failed leaves it dead; the start then launches another monitor, whose
            // output only the log has.)
            let info = output.await.map_err(|_| removed(key))??;
            started.await.map_err(|_| removed(key))??;
            return Ok((info, monitor, wait, addr));
        }
        let info = output.await.map_err(|_| removed(key))??;
        if !info.attachable {
            return Err(ApiError::not_running(format!(
                "you cannot attach to a stopped container {key}: start it first"
            )));
        }
        let monitor = session::connect_main(&info.socket)?;
        if let (true, Some(size)) = (info.tty, opts.tty_size) {
            let _ = session::resize_main(&info.socket, size).await;
        }
        // Ask now, while the container certainly exists: with --rm it is gone right after it
        // exits. actix queues the message when `send` is called, so it precedes the start.
        let wait = addr.send(container::Wait);
        if opts.start {
            addr.send(container::Start)
                .await
                .map_err(|_| removed(key))??;
        }
        Ok((info, monitor, wait, addr))
    };
    let (info, monitor, wait, addr) = match prepared.await {
        Ok(p) => p,
        Err(e) => {
            let _ = responder.fail(e).await;
            return;
        }
    };
    let header = session::attach_header(info.tty, &opts);
    let Ok((send, recv)) = responder.into_raw(header).await else {
        return;
    };
    let exit_code = async move {
        addr.do_send(container::OutputEnded);
        match wait.await {
            Ok(Ok(code)) => Some(code),
            _ => None,
        }
    };
    session::relay_attach(monitor, send, recv, opts, exit_code).await;
}

/// Runs a process in a running container and relays its stdio.
async fn exec(shared: &Shared, key: &str, config: ExecConfig, responder: Responder) {
    let info = match ask(shared, key, container::Output).await {
        Ok(Ok(info)) if info.paused => {
            let e = ApiError::conflict(format!("container {key} is paused, unpause it first"));
            let _ = responder.fail(e).await;
            return;
        }
        Ok(Ok(info)) if info.running => info,
        Ok(Ok(_)) => {
            let e = ApiError::not_running(format!("container {key} is not running"));
            let _ = responder.fail(e).await;
            return;
        }
        Ok(Err(e)) | Err(e) => {
            let _ = responder.fail(e).await;
            return;
        }
    };
    if config.cmd.is_empty() {
        let _ = responder
            .fail(ApiError::invalid("exec needs a command"))
            .await;
        return;
    }
    let header = SessionHeader {
        session: crate::names::random_hex(8),
        tty: config.tty,
        stdin: config.attach_stdin,
    };
    let session_id = header.session.clone();
    let Ok((send, recv)) = responder.into_raw(header).await else {
        return;
    };
    session::exec(shared, &info.id, config, &session_id, send, recv).await;
}
