//! The cluster controller: node sessions, the fleet container index, the pure scheduler and the
//! client-facing API. Agents and clients dial it over QUIC with mutual TLS; it never touches the
//! host itself (no runtime calls): everything about a container is forwarded to the agent that
//! owns it.
//!
//! - [`bootstrap`]: the cluster PKI and `client.toml` of a one-host cluster (`berth daemon`).
//! - [`index`]: every container of the fleet, from agents' reports; name resolution; `ps`.
//! - [`scheduler`]: placement of new containers, a pure function.
//! - [`nodes`]: connected agents, heartbeats, and marking nodes down after a grace period.
//! - `server`: the request handlers and the byte relay to agents.
//!
//! Ordering contract with agents: an agent sends the [`Request::Report`] of a state change and
//! waits for its answer before answering the verb that caused it, so a client that saw `start`
//! succeed sees the container running in `ps`. `create` and `rm` are also applied to the index
//! from the forwarded answer, so the index is right even if the report comes later.
//!
//! [`Request::Report`]: protocol::messages::Request::Report

pub mod bootstrap;
pub mod index;
pub mod nodes;
pub mod scheduler;
mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::messages::{Hello, Role};
use protocol::tls::{Identity, TlsError};
use protocol::transport::{self, TransportConfig, TransportError};
use tokio::sync::Notify;

pub use bootstrap::{bootstrap, Bootstrap, BootstrapError, ClientConfigFile};
pub use server::VOLUME_NODE_LABEL;

/// How a controller is set up.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This controller's name (the name in its certificate; on one host, the node name).
    pub node_name: String,
    /// The controller's certificate and key, and the cluster CA.
    pub identity: Identity,
    /// Where to listen (port 0 picks one; see [`Controller::local_addr`]).
    pub listen: SocketAddr,
    /// QUIC settings.
    pub transport: TransportConfig,
    /// How long a disconnected node still counts as up.
    pub down_grace: Duration,
    /// How long a connected node may go without a heartbeat (once it sent one) before it is
    /// marked down.
    pub heartbeat_timeout: Duration,
}

impl ControllerConfig {
    /// A configuration with default transport settings, a 15 s grace period and a 30 s
    /// heartbeat timeout.
    pub fn new(node_name: &str, identity: Identity, listen: SocketAddr) -> ControllerConfig {
        ControllerConfig {
            node_name: node_name.to_string(),
            identity,
            listen,
            transport: TransportConfig::default(),
            down_grace: Duration::from_secs(15),
            heartbeat_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Certificates or TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The endpoint could not be bound.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A bound controller; [`Controller::run`] serves it.
pub struct Controller {
    shared: Arc<server::Shared>,
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
}

/// A cheap handle to a running controller: readiness checks and shutdown.
#[derive(Clone)]
pub struct ControllerHandle {
    shared: Arc<server::Shared>,
    endpoint: quinn::Endpoint,
}

impl Controller {
    /// Binds the QUIC endpoint. Must be called inside a tokio runtime.
    pub fn bind(config: ControllerConfig) -> Result<Controller, ControllerError> {
        let tls = protocol::tls::server_config(&config.identity)?;
        let endpoint = transport::server_endpoint(config.listen, tls, &config.transport)?;
        let addr = endpoint
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: config.listen,
                source,
            })?;
        let shared = Arc::new(server::Shared {
            hello: Hello::new(Role::Controller, config.node_name.clone()),
            node_name: config.node_name,
            transport: config.transport,
            index: Mutex::new(index::ContainerIndex::new()),
            nodes: Mutex::new(nodes::NodeRegistry::new(
                config.down_grace,
                config.heartbeat_timeout,
            )),
            changed: Notify::new(),
        });
        tracing::info!(%addr, name = %shared.node_name, "controller listening");
        Ok(Controller {
            shared,
            endpoint,
            addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle for readiness checks and shutdown.
    pub fn handle(&self) -> ControllerHandle {
        ControllerHandle {
            shared: self.shared.clone(),
            endpoint: self.endpoint.clone(),
        }
    }

    /// Accepts and serves connections until [`ControllerHandle::shutdown`].
    pub async fn run(self) {
        let monitor = {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    for node in server::lock(&shared.nodes).newly_down() {
                        tracing::warn!(%node, "node marked down");
                    }
                }
            })
        };
        while let Some(incoming) = self.endpoint.accept().await {
            tokio::spawn(server::on_incoming(self.shared.clone(), incoming));
        }
        monitor.abort();
        tracing::info!("controller stopped accepting connections");
    }
}

impl ControllerHandle {
    /// Waits until node `name` is connected, at most `timeout`; true if it is.
    pub async fn wait_for_node(&self, name: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if server::lock(&self.shared.nodes).is_connected(name) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return server::lock(&self.shared.nodes).is_connected(name);
            }
        }
    }

    /// Closes every connection and stops accepting new ones.
    pub fn shutdown(&self) {
        self.endpoint.close(
            quinn::VarInt::from_u32(transport::CLOSE_NORMAL),
            b"shutdown",
        );
    }

    /// Waits (bounded) for connections to finish closing after [`ControllerHandle::shutdown`].
    pub async fn wait_idle(&self, bound: Duration) {
        let _ = tokio::time::timeout(bound, self.endpoint.wait_idle()).await;
    }
}
