//! The per-host daemon: actix actors for the node, its containers, images and volumes, serving the
//! controller's requests over the QUIC connection the agent dials.

pub mod spec;

use std::net::SocketAddr;
use std::path::PathBuf;

use protocol::messages::{ApiError, Hello, Request, Role};
use protocol::tls::Identity;
use protocol::transport::{self, Peer, Responder, TransportConfig};

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
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent tls: {0}")]
    Tls(#[from] protocol::tls::TlsError),
    #[error("agent cannot reach controller: {0}")]
    Transport(#[from] protocol::transport::TransportError),
}

/// A running agent; dropping it does not stop it (it lives as long as its actix System).
pub struct AgentHandle {
    pub peer: Peer,
}

/// Starts the agent inside the current actix System: connects to the controller with the node
/// certificate and serves the requests the controller opens on that connection. Returns once
/// connected.
pub async fn start(config: AgentConfig) -> Result<AgentHandle, AgentError> {
    let tls = protocol::tls::client_config(&config.identity)?;
    let tcfg = TransportConfig::default();
    let endpoint = transport::client_endpoint(tls, &tcfg)?;
    let hello = Hello::new(Role::Agent, config.node_name.clone());
    let peer = Peer::connect(
        &endpoint,
        config.controller_addr,
        &config.controller_name,
        &hello,
        &tcfg,
    )
    .await?;
    let serving = peer.clone();
    tokio::spawn(async move {
        if let Err(e) = serving.serve(handle).await {
            tracing::warn!("agent connection ended: {e}");
        }
    });
    Ok(AgentHandle { peer })
}

async fn handle(req: Request, responder: Responder) {
    let verb = req.verb();
    let _ = responder
        .reply(Err(ApiError::new(
            protocol::messages::ErrorKind::Unsupported,
            format!("{verb} is not implemented by this agent yet"),
        )))
        .await;
}
