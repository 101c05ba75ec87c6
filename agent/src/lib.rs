//! The per-host daemon: actix actors for the node and each of its containers, serving the controller's
//! requests over the QUIC connection the agent dials.

mod container;
mod early_start;
mod filesystem;
mod images;
mod layout;
mod lifecycle;
mod logs;
mod monitor;
mod mount_points;
mod names;
mod network;
mod node;
mod prepare;
mod record;
mod registry;
mod serve;
mod session;
mod spare;
pub mod spec;
mod storage;
mod top;
mod transfer;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Addr};
use protocol::messages::{Hello, Role};
use protocol::tls::Identity;
use protocol::transport::{self, Peer, TransportConfig};

use layout::Layout;
use node::NodeActor;

/// What an agent needs to run: where its state lives and how to reach its controller.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// State root, e.g. /var/lib/berth (images, containers, volumes, runtime state).
    pub root: PathBuf,
    /// This node's name, as written in its certificate.
    pub node_name: String,
    /// The controller's QUIC address.
    pub controller_addr: SocketAddr,
    /// The TLS server name of the controller's certificate.
    pub controller_name: String,
    /// The node's certificate, key and the cluster CA.
    pub identity: Identity,
    /// How this node reaches registries (plain-HTTP hosts, per-registry CAs).
    pub registry: runtime::registry::RegistryConfig,
    /// Subnet of the default bridge (`--bridge-subnet`); the first free default pool when `None`.
    pub bridge_subnet: Option<runtime::network::Ipv4Net>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent tls: {0}")]
    Tls(#[from] protocol::tls::TlsError),
    #[error("agent cannot reach controller: {0}")]
    Transport(#[from] protocol::transport::TransportError),
    #[error("agent state root {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("agent cannot find its own binary: {0}")]
    Exe(std::io::Error),
    #[error("the container monitor {} is missing (it is built and installed next to berth)", .0.display())]
    NoShim(PathBuf),
    #[error("{} is missing: exec sessions run its `runtime exec` (it is built and installed next to berthd)", .0.display())]
    NoBerth(PathBuf),
    #[error("the container monitor {} speaks interface {found}, this berth needs {}: install both from one build", .path.display(), runtime::monitor::INTERFACE)]
    ShimMismatch { path: PathBuf, found: String },
    #[error("image store: {0}")]
    Images(runtime::image::ImageError),
    #[error("volume store: {0}")]
    Volumes(runtime::volume::VolumeError),
    #[error("networking: {0}")]
    Network(String),
}

/// What every actor of the agent shares.
pub(crate) struct Shared {
    pub layout: Layout,
    pub node_name: String,
    pub node: Addr<NodeActor>,
    /// The `berth` binary beside the daemon, run for exec (`berth runtime exec`).
    pub berth: PathBuf,
    /// `berth-shim`, beside `berth`: each container's monitor.
    pub shim: PathBuf,
    /// The next container's monitor, started ahead.
    pub spare: Arc<spare::SpareMonitor>,
    /// Containers being set up, which a start may overtake.
    pub early: early_start::EarlyStarts,
    /// The mount points images lack, in shared layers.
    pub mount_points: mount_points::MountPointLayers,
    /// Exec sessions with a terminal, for resizes.
    pub sessions: session::Sessions,
    pub images: runtime::image::Store,
    pub volumes: runtime::volume::VolumeStore,
    pub registry: runtime::registry::RegistryConfig,
    /// Coalesces the blob fetches of concurrent pulls.
    pub pulls: registry::PullCoordinator,
    pub network: Addr<network::NetworkActor>,
}

/// A running agent; it lives as long as its actix System.
pub struct AgentHandle {
    pub peer: Peer,
}

/// Refuses a `berth-shim` from another build: it would fail every container start.
fn check_shim(shim: &std::path::Path) -> Result<(), AgentError> {
    let found = std::process::Command::new(shim)
        .arg("--interface")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "none (it does not answer --interface)".to_owned());
    if found == runtime::monitor::INTERFACE.to_string() {
        return Ok(());
    }
    Err(AgentError::ShimMismatch {
        path: shim.to_path_buf(),
        found,
    })
}

/// Starts the agent inside the current actix System: recovers the containers it had, connects to the
/// controller with the node certificate, and serves the requests the controller opens on that
/// connection. Returns once connected.
pub async fn start(config: AgentConfig) -> Result<AgentHandle, AgentError> {
    let layout = Layout::new(&config.root);
    for dir in [layout.containers(), layout.runtime_root()] {
        std::fs::create_dir_all(&dir).map_err(|source| AgentError::Root { path: dir, source })?;
    }
    match runtime::topdir::mark_top_of_hierarchies(&layout.containers()) {
        Ok(true) => {}
        Ok(false) => tracing::debug!("the containers' file system cannot spread their directories"),
        Err(e) => tracing::warn!(
            "mark {} as a top directory: {e}",
            layout.containers().display()
        ),
    }
    let exe = std::env::current_exe().map_err(AgentError::Exe)?;
    let berth = exe.with_file_name("berth");
    if !berth.is_file() {
        return Err(AgentError::NoBerth(berth));
    }
    let shim = exe.with_file_name("berth-shim");
    if !shim.is_file() {
        return Err(AgentError::NoShim(shim));
    }
    check_shim(&shim)?;
    let images = runtime::image::Store::open(layout.root()).map_err(AgentError::Images)?;
    let volumes = runtime::volume::VolumeStore::open(layout.root()).map_err(AgentError::Volumes)?;
    let network = network::start(layout.clone(), config.bridge_subnet);
    network
        .send(network::Init)
        .await
        .map_err(|e| AgentError::Network(e.to_string()))?
        .map_err(|e| AgentError::Network(e.message))?;
    let node = NodeActor::new().start();
    let runtime_root = layout.runtime_root();
    let mount_points = mount_points::MountPointLayers::new(layout.mount_points());
    let shared = Arc::new(Shared {
        layout,
        node_name: config.node_name.clone(),
        node: node.clone(),
        berth,
        spare: spare::SpareMonitor::new(shim.clone(), runtime_root),
        early: early_start::EarlyStarts::default(),
        mount_points,
        shim,
        sessions: session::Sessions::default(),
        images,
        volumes,
        registry: config.registry.clone(),
        pulls: registry::PullCoordinator::default(),
        network,
    });
    node.do_send(node::Init(shared.clone()));
    shared.spare.refill();

    let tls = protocol::tls::client_config(&config.identity)?;
    let tcfg = TransportConfig::default();
    let endpoint = transport::client_endpoint(config.controller_addr, tls, &tcfg)?;
    let hello = Hello::new(Role::Agent, config.node_name.clone());
    let peer = Peer::connect(
        &endpoint,
        config.controller_addr,
        &config.controller_name,
        &hello,
        &tcfg,
    )
    .await?;
    node.do_send(node::Connected(peer.clone()));
    let serving = peer.clone();
    tokio::spawn(async move {
        let result = serving
            .serve(move |req, responder| serve::handle(shared.clone(), req, responder))
            .await;
        if let Err(e) = result {
            tracing::warn!("agent connection ended: {e}");
        }
    });
    Ok(AgentHandle { peer })
}
