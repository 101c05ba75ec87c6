//! The CLI's connection to the controller: reads `client.toml`, dials with the admin identity
//! (role client), and sends requests, turning wire errors into errors that keep their
//! [`ApiError`] (so the exit code can follow its kind) and name the controller when it cannot
//! be reached.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use controller::ClientConfigFile;
use protocol::messages::{ApiError, Hello, Request, Response, Role};
use protocol::transport::{self, ResponseStream, TransportConfig, TransportError};
use protocol::{Dialing, Peer};
use quinn::{RecvStream, SendStream};

/// Where `berth daemon` writes the client configuration by default.
pub const DEFAULT_CONFIG: &str = "/var/lib/berth/client.toml";

/// Bound on reaching the controller (QUIC + TLS + hello).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times the CLI lets other tasks run after closing, so the connection's driver sends
/// the close packet before the process exits.
const CLOSE_YIELDS: usize = 4;

/// A connected client. Its first request goes out right behind the hello ([`Dialing`]); the
/// welcome is checked before that request's answer is read.
pub struct Client {
    /// Until the first request: the connection whose hello is not answered yet.
    dialing: tokio::sync::Mutex<Option<Dialing>>,
    /// The controller connection, once welcomed.
    peer: OnceLock<Peer>,
    addr: SocketAddr,
    _endpoint: quinn::Endpoint,
    /// The client configuration file this client was made from.
    config: PathBuf,
}

/// The controller could not be reached or refused the handshake: named, with the likely cause.
fn unreachable(addr: SocketAddr, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot connect to the berth controller at {addr}: {why} (is `berth daemon` running?)")
}

/// Turns a transport error into an error for the user, keeping an [`ApiError`] intact.
pub fn wire(e: TransportError) -> anyhow::Error {
    match e {
        TransportError::Api(api) => anyhow::Error::new(api),
        TransportError::Connection(c) => anyhow!("lost the connection to the controller: {c}"),
        other => anyhow!("{other}"),
    }
}

/// The error for an answer of the wrong kind (a protocol bug, not a user mistake).
pub fn unexpected(verb: &str, r: &Response) -> anyhow::Error {
    let kind = format!("{r:?}");
    let kind = kind
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("?")
        .to_string();
    anyhow!("unexpected answer to {verb} from the controller: {kind}")
}

impl Client {
    /// Reads the configuration at `path` and connects.
    pub async fn connect(path: &Path) -> Result<Client> {
        let cfg = ClientConfigFile::load(path).map_err(|e| match e {
            controller::BootstrapError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                anyhow!(
                    "client configuration {} not found: is `berth daemon` running? (pass --config or set BERTH_CONFIG)",
                    path.display()
                )
            }
            other => anyhow!("cannot read client configuration: {other}"),
        })?;
        let addr = cfg
            .controller_addr(path)
            .map_err(|e| anyhow!("cannot read client configuration: {e}"))?;
        let identity = cfg.identity().with_context(|| {
            format!(
                "cannot load the client identity named in {}",
                path.display()
            )
        })?;
        let me = identity
            .cert_identity()
            .context("the client certificate is not a berth certificate")?;
        let known = cfg
            .controller_fingerprint(path)
            .map_err(|e| anyhow!("cannot read client configuration: {e}"))?;
        let tls = match known {
            Some(controller) => protocol::tls::client_config_knowing(&identity, controller),
            None => protocol::tls::client_config(&identity),
        }
        .context("client TLS configuration")?;
        let tcfg = TransportConfig {
            handshake_timeout: CONNECT_TIMEOUT,
            ..TransportConfig::default()
        };
        let endpoint = transport::client_endpoint(addr, tls, &tcfg).context("client endpoint")?;
        let hello = Hello::new(Role::Client, me.name);
        let dialing = Peer::dial(&endpoint, addr, &cfg.server_name, &hello, &tcfg);
        let dialing = match tokio::time::timeout(CONNECT_TIMEOUT, dialing).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(unreachable(addr, e)),
            Err(_) => return Err(unreachable(addr, "timed out")),
        };
        Ok(Client {
            dialing: tokio::sync::Mutex::new(Some(dialing)),
            peer: OnceLock::new(),
            addr,
            _endpoint: endpoint,
            config: path.to_path_buf(),
        })
    }

    /// The controller connection, waiting for its welcome if no request has yet.
    pub async fn peer(&self) -> Result<&Peer> {
        if let Some(p) = self.peer.get() {
            return Ok(p);
        }
        let mut dialing = self.dialing.lock().await;
        if let Some(d) = dialing.take() {
            self.welcome(d).await?;
        }
        self.peer
            .get()
            .ok_or_else(|| unreachable(self.addr, "its handshake failed"))
    }

    async fn welcome(&self, d: Dialing) -> Result<&Peer> {
        let peer = d.welcomed().await.map_err(|e| unreachable(self.addr, e))?;
        Ok(self.peer.get_or_init(|| peer))
    }

    /// Sends `req` on a stream of its own: the first one right behind the hello, answered once
    /// the welcome is checked.
    async fn open(&self, req: &Request) -> Result<(&Peer, SendStream, RecvStream)> {
        if self.peer.get().is_none() {
            let mut dialing = self.dialing.lock().await;
            if let Some(d) = dialing.take() {
                let (send, recv) = d.open(req).await.map_err(|e| unreachable(self.addr, e))?;
                let peer = self.welcome(d).await?;
                return Ok((peer, send, recv));
            }
        }
        let peer = self.peer().await?;
        let (send, recv) = peer.open(req).await.map_err(wire)?;
        Ok((peer, send, recv))
    }

    /// The registry credentials file kept next to the client configuration.
    pub fn credentials(&self) -> PathBuf {
        super::credentials::path_for(&self.config)
    }

    /// A request with a single answer.
    pub async fn call(&self, req: &Request) -> Result<Response> {
        let (peer, send, recv) = self.open(req).await?;
        peer.answer(send, recv).await.map_err(wire)
    }

    /// A request with a streamed answer.
    pub async fn stream(&self, req: &Request) -> Result<ResponseStream> {
        let (peer, send, recv) = self.open(req).await?;
        Ok(peer.answer_stream(send, recv))
    }

    /// An exec/attach request: the session header and the raw halves.
    pub async fn raw(&self, req: &Request) -> Result<(Response, SendStream, RecvStream)> {
        let (peer, send, recv) = self.open(req).await?;
        peer.answer_raw(send, recv).await.map_err(wire)
    }

    /// Closes the connection so the controller sees a normal end at once. Only the close
    /// packet's departure is waited for, not the draining period: a CLI run must not pay
    /// milliseconds to say goodbye. `close` wakes the connection's driver, which sends the packet
    /// as soon as it is polled; on this single-threaded runtime yielding lets it run.
    pub async fn close(self) {
        match (self.peer.get(), self.dialing.into_inner()) {
            (Some(peer), _) => peer.close("done"),
            (None, Some(dialing)) => dialing.close("done"),
            (None, None) => {}
        }
        for _ in 0..CLOSE_YIELDS {
            tokio::task::yield_now().await;
        }
    }
}

/// The [`ApiError`] inside an error chain, if any.
pub fn api_error(e: &anyhow::Error) -> Option<&ApiError> {
    e.chain().find_map(|c| c.downcast_ref::<ApiError>())
}
