//! QUIC plumbing: endpoints, the per-connection handshake, and the one-stream-per-request
//! pattern on both sides of a connection.
//!
//! Lifecycle of a connection:
//! 1. TLS (inside QUIC) with mutual authentication: a peer without a certificate from the cluster
//!    CA is refused here, before any stream exists (see [`crate::tls`]).
//! 2. The dialer opens the first bidirectional stream and sends a [`Hello`]; the acceptor checks
//!    the protocol version and that the hello's name and role are those of the peer's
//!    certificate, then answers [`HelloReply::Welcome`]. Only then is a [`Peer`] returned, and
//!    only a `Peer` can serve or send requests, so nothing is served before the handshake. A
//!    dialer with a request ready may send it right behind its hello ([`Dialing`]): the acceptor
//!    takes streams in the order they were opened, so it serves that request only after its
//!    welcome, and the dialer reads the answer only after checking that welcome.
//! 3. Either side may then open streams: one bidirectional stream per request, the request as
//!    the first frame, the answer as [`ResponseFrame`]s (see [`crate::messages`]). The agent
//!    dials the controller and both command each other over that one connection.
//!
//! A frame that cannot be read on one stream (garbage, oversized, truncated) gets an
//! [`ErrorKind::InvalidArgument`] answer on that stream; the connection and its other streams go
//! on.

use crate::codec::{self, CodecError, FrameCodec};
use crate::messages::{
    ApiError, ErrorKind, Hello, HelloReply, JoinReply, JoinRequest, Request, Response,
    ResponseFrame, SessionHeader, PROTOCOL_VERSION,
};
use crate::tls::{self, CertHash, JoinToken, TlsError};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncRead;

/// Application close code: normal end of a connection.
pub const CLOSE_NORMAL: u32 = 0;
/// Application close code: the handshake was refused (version or identity).
pub const CLOSE_REFUSED: u32 = 1;
/// Application close code: the peer broke the protocol.
pub const CLOSE_PROTOCOL: u32 = 2;

/// Application stream error code used when a stream is abandoned after a bad frame.
const STREAM_BAD_FRAME: u32 = 1;

/// Tunables of a Berth QUIC endpoint.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// QUIC keep-alive interval; keeps NAT bindings open and detects dead peers.
    pub keep_alive: Duration,
    /// A connection silent this long is closed (must exceed `keep_alive`).
    pub idle_timeout: Duration,
    /// Bound on the hello exchange, so a silent peer cannot hold a connection slot.
    pub handshake_timeout: Duration,
    /// Largest frame accepted or sent.
    pub max_frame_len: u32,
    /// Concurrent request streams a peer may have open towards this endpoint.
    pub max_concurrent_streams: u32,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_frame_len: codec::DEFAULT_MAX_FRAME_LEN,
            max_concurrent_streams: 256,
        }
    }
}

impl TransportConfig {
    fn codec(&self) -> FrameCodec {
        FrameCodec::new(self.max_frame_len)
    }

    /// quinn's settings for connections over `path`.
    fn quinn(&self, path: Path) -> Arc<quinn::TransportConfig> {
        let mut t = quinn::TransportConfig::default();
        t.keep_alive_interval(Some(self.keep_alive));
        let idle_ms = u32::try_from(self.idle_timeout.as_millis()).unwrap_or(u32::MAX);
        t.max_idle_timeout(Some(quinn::IdleTimeout::from(VarInt::from_u32(idle_ms))));
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_concurrent_streams));
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
        if path == Path::Loopback {
            t.mtu_discovery_config(None);
            t.initial_mtu(LOOPBACK_UDP_PAYLOAD);
        }
        Arc::new(t)
    }
}

/// The UDP payload size used on loopback from the first packet: where quinn's path MTU discovery
/// ends there (its default upper bound), reached without its probes.
const LOOPBACK_UDP_PAYLOAD: u16 = 1452;

/// The kind of path between two endpoints, which decides how the packet size is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Any network: QUIC starts at 1200-byte packets and probes for larger ones once the
    /// handshake is done.
    Network,
    /// The host's loopback, whose MTU is 64 KiB: probing would only add packets. A CLI command
    /// lives for a few round trips, and its connection used to carry about as many probes and
    /// their acknowledgements as requests.
    Loopback,
}

impl Path {
    /// The path to (or from) `addr`: only loopback addresses are reached over loopback.
    fn to(addr: SocketAddr) -> Path {
        let loopback = match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.is_loopback(),
            std::net::IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        if loopback {
            Path::Loopback
        } else {
            Path::Network
        }
    }
}

/// Everything that can fail on a Berth connection.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The rustls configuration cannot be used for QUIC (no TLS 1.3 / initial suite).
    #[error("tls configuration unusable for QUIC: {0}")]
    QuicTls(String),
    /// Certificates or TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection attempt could not start (bad server name, endpoint stopping...).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: quinn::ConnectError,
    },
    /// The connection failed or was closed (includes TLS refusals, with the TLS alert).
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// A frame could not be read or written.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The peers speak different protocol versions.
    #[error("protocol version mismatch: this node speaks version {local}, the peer speaks version {remote}")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`].
        local: u32,
        /// The peer's.
        remote: u32,
    },
    /// The peer refused the handshake for another reason.
    #[error("handshake refused by peer: {0}")]
    Refused(ApiError),
    /// The hello exchange did not complete in time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The peer's hello does not match its certificate, or it has none.
    #[error("peer identity rejected: {0}")]
    Identity(String),
    /// The request failed on the remote side.
    #[error(transparent)]
    Api(ApiError),
    /// The peer sent something the protocol does not allow here.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Raw bytes could not be copied.
    #[error("raw stream i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// The remote request error, if that is what this is: the CLI maps its kind to an exit code.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            TransportError::Api(e) | TransportError::Refused(e) => Some(e),
            _ => None,
        }
    }
}

/// Prefer the connection's close reason over the stream-level symptom of it.
fn on_conn(conn: &Connection, e: CodecError) -> TransportError {
    match conn.close_reason() {
        Some(reason) if matches!(e, CodecError::Io(_) | CodecError::Closed) => {
            TransportError::Connection(reason)
        }
        _ => TransportError::Codec(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// Wraps a rustls server config for quinn with this transport's settings for connections over
/// `path`.
fn quic_server_config(
    tls: rustls::ServerConfig,
    cfg: &TransportConfig,
    path: Path,
) -> Result<quinn::ServerConfig, TransportError> {
    let crypto =
        QuicServerConfig::try_from(tls).map_err(|e| TransportError::QuicTls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(cfg.quinn(path));
    Ok(server)
}

/// Wraps a rustls client config for quinn with this transport's settings for connections to
/// `peer`.
fn quic_client_config(
    tls: rustls::ClientConfig,
    cfg: &TransportConfig,
    peer: SocketAddr,
) -> Result<quinn::ClientConfig, TransportError> {
    let crypto =
        QuicClientConfig::try_from(tls).map_err(|e| TransportError::QuicTls(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(cfg.quinn(Path::to(peer)));
    Ok(client)
}

/// A listening endpoint (controller main port, or join port with
/// [`tls::join_server_config`]). Bound to a loopback address, it can only be reached over
/// loopback, and its connections skip packet-size discovery. Must be called inside a tokio
/// runtime.
pub fn server_endpoint(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    cfg: &TransportConfig,
) -> Result<Endpoint, TransportError> {
    let server = quic_server_config(tls, cfg, Path::to(addr))?;
    Endpoint::server(server, addr).map_err(|source| TransportError::Bind { addr, source })
}

/// A dialing endpoint for `peer` (agents, the CLI): on an ephemeral port of `peer`'s address
/// family, its default client config is `tls` with the settings for the path to `peer`. Must be
/// called inside a tokio runtime.
pub fn client_endpoint(
    peer: SocketAddr,
    tls: rustls::ClientConfig,
    cfg: &TransportConfig,
) -> Result<Endpoint, TransportError> {
    let bind = unspecified_like(peer);
    let mut endpoint =
        Endpoint::client(bind).map_err(|source| TransportError::Bind { addr: bind, source })?;
    endpoint.set_default_client_config(quic_client_config(tls, cfg, peer)?);
    Ok(endpoint)
}

/// Any local address, port chosen by the kernel, in `peer`'s address family.
fn unspecified_like(peer: SocketAddr) -> SocketAddr {
    if peer.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    }
}

/// Dials `addr`, verifying its certificate for `server_name` (the controller's node name or an
/// address in its certificate). Returns once TLS completes; see [`Peer::connect`] for the
/// handshake.
pub async fn connect(
    endpoint: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
) -> Result<Connection, TransportError> {
    let connecting = endpoint
        .connect(addr, server_name)
        .map_err(|source| TransportError::Connect { addr, source })?;
    Ok(connecting.await?)
}

// ---------------------------------------------------------------------------------------------
// Handshake and peers
// ---------------------------------------------------------------------------------------------

/// A connection whose handshake succeeded: the only way to send or serve requests.
#[derive(Clone, Debug)]
pub struct Peer {
    conn: Connection,
    hello: Arc<Hello>,
    codec: FrameCodec,
}

fn peer_cert(conn: &Connection) -> Option<Vec<u8>> {
    let any = conn.peer_identity()?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    certs.first().map(|c| c.to_vec())
}

/// Checks a hello against the certificate the peer authenticated with.
fn check_identity(conn: &Connection, hello: &Hello) -> Result<(), String> {
    let der = peer_cert(conn).ok_or_else(|| "peer presented no certificate".to_string())?;
    let who = tls::cert_identity(&der).map_err(|e| e.to_string())?;
    if who.name != hello.node_name || who.role != hello.role {
        return Err(format!(
            "hello claims {} {:?} but the certificate is for {} {:?}",
            hello.role, hello.node_name, who.role, who.name
        ));
    }
    Ok(())
}

async fn refuse(conn: &Connection, mut send: SendStream, codec: FrameCodec, error: ApiError) {
    let reply = HelloReply::Refused {
        version: PROTOCOL_VERSION,
        error: error.clone(),
    };
    if codec.write_frame(&mut send, &reply).await.is_ok() {
        let _ = send.finish();
        // Give the reply a moment to be delivered before the connection goes away.
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    }
    conn.close(VarInt::from_u32(CLOSE_REFUSED), error.message.as_bytes());
}

/// A dialer's connection whose hello is sent but not yet answered ([`Peer::dial`]).
///
/// Requests opened here go out right behind the hello. The acceptor takes streams in the order
/// they were opened, so it reads the hello first and serves them only after it has welcomed the
/// dialer; if it refuses, it closes the connection and serves none. Their answers are read
/// through the [`Peer`] that [`Dialing::welcomed`] returns, so nothing is trusted before the
/// welcome's version and identity are checked.
pub struct Dialing {
    conn: Connection,
    codec: FrameCodec,
    /// The stream the hello went out on; the welcome comes back on it.
    reply: RecvStream,
    version: u32,
    timeout: Duration,
}

impl Dialing {
    async fn send_hello(
        conn: Connection,
        local: &Hello,
        cfg: &TransportConfig,
    ) -> Result<Dialing, TransportError> {
        let codec = cfg.codec();
        let sent = async {
            let (mut send, recv) = conn.open_bi().await?;
            codec
                .write_frame(&mut send, local)
                .await
                .map_err(|e| on_conn(&conn, e))?;
            let _ = send.finish();
            Ok(recv)
        };
        let reply = within_handshake(&conn, cfg.handshake_timeout, sent).await?;
        Ok(Dialing {
            conn,
            codec,
            reply,
            version: local.version,
            timeout: cfg.handshake_timeout,
        })
    }

    /// Opens a stream and sends `req` on it ahead of the welcome (see the type's notes).
    pub async fn open(&self, req: &Request) -> Result<(SendStream, RecvStream), TransportError> {
        open_request(&self.conn, self.codec, req).await
    }

    /// Reads the acceptor's answer to the hello and checks its version and its identity against
    /// the certificate; only then is the connection a [`Peer`].
    pub async fn welcomed(mut self) -> Result<Peer, TransportError> {
        let (conn, codec, version) = (&self.conn, self.codec, self.version);
        let reply = &mut self.reply;
        let exchange = async {
            let reply: HelloReply = codec
                .read_frame(reply)
                .await
                .map_err(|e| on_conn(conn, e))?;
            match reply {
                HelloReply::Welcome(remote) => {
                    if remote.version != version {
                        conn.close(
                            VarInt::from_u32(CLOSE_REFUSED),
                            b"protocol version mismatch",
                        );
                        return Err(TransportError::VersionMismatch {
                            local: version,
                            remote: remote.version,
                        });
                    }
                    if let Err(why) = check_identity(conn, &remote) {
                        conn.close(VarInt::from_u32(CLOSE_REFUSED), why.as_bytes());
                        return Err(TransportError::Identity(why));
                    }
                    Ok(remote)
                }
                HelloReply::Refused {
                    version: theirs,
                    error,
                } => {
                    conn.close(VarInt::from_u32(CLOSE_NORMAL), b"");
                    if theirs != version {
                        Err(TransportError::VersionMismatch {
                            local: version,
                            remote: theirs,
                        })
                    } else {
                        Err(TransportError::Refused(error))
                    }
                }
            }
        };
        let remote = within_handshake(conn, self.timeout, exchange).await?;
        tracing::debug!(peer = %remote.node_name, role = %remote.role, addr = %conn.remote_address(), "handshake done");
        Ok(Peer {
            conn: self.conn,
            hello: Arc::new(remote),
            codec,
        })
    }

    /// Closes the connection normally (a command that ends before its first request).
    pub fn close(&self, reason: &str) {
        self.conn
            .close(VarInt::from_u32(CLOSE_NORMAL), reason.as_bytes());
    }
}

/// Bounds a step of the hello exchange, so a silent peer cannot hold a connection slot.
async fn within_handshake<T>(
    conn: &Connection,
    timeout: Duration,
    step: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    match tokio::time::timeout(timeout, step).await {
        Ok(r) => r,
        Err(_) => {
            conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"handshake timeout");
            Err(TransportError::HandshakeTimeout(timeout))
        }
    }
}

/// Opens a stream and sends `req` as its first frame.
async fn open_request(
    conn: &Connection,
    codec: FrameCodec,
    req: &Request,
) -> Result<(SendStream, RecvStream), TransportError> {
    let (mut send, recv) = conn.open_bi().await?;
    codec
        .write_frame(&mut send, req)
        .await
        .map_err(|e| on_conn(conn, e))?;
    Ok((send, recv))
}

impl Peer {
    /// Dials `addr` and runs the handshake as the dialer.
    pub async fn connect(
        endpoint: &Endpoint,
        addr: SocketAddr,
        server_name: &str,
        local: &Hello,
        cfg: &TransportConfig,
    ) -> Result<Peer, TransportError> {
        Peer::dial(endpoint, addr, server_name, local, cfg)
            .await?
            .welcomed()
            .await
    }

    /// Dials `addr` and sends the hello without waiting for its answer, so that a request can
    /// follow in the same flight: the hello's round trip is saved on every CLI command.
    pub async fn dial(
        endpoint: &Endpoint,
        addr: SocketAddr,
        server_name: &str,
        local: &Hello,
        cfg: &TransportConfig,
    ) -> Result<Dialing, TransportError> {
        let conn = connect(endpoint, addr, server_name).await?;
        Dialing::send_hello(conn, local, cfg).await
    }

    /// Accepts an incoming connection and runs the handshake as the acceptor.
    pub async fn accept(
        incoming: quinn::Incoming,
        local: &Hello,
        cfg: &TransportConfig,
    ) -> Result<Peer, TransportError> {
        let conn = incoming.await?;
        Peer::handshake_acceptor(conn, local, cfg).await
    }

    /// The dialer's half of the handshake on an established connection.
    pub async fn handshake_dialer(
        conn: Connection,
        local: &Hello,
        cfg: &TransportConfig,
    ) -> Result<Peer, TransportError> {
        Dialing::send_hello(conn, local, cfg)
            .await?
            .welcomed()
            .await
    }

    /// The acceptor's half of the handshake: reads the hello, checks version and identity,
    /// answers, and refuses (closing the connection) on any mismatch.
    pub async fn handshake_acceptor(
        conn: Connection,
        local: &Hello,
        cfg: &TransportConfig,
    ) -> Result<Peer, TransportError> {
        let codec = cfg.codec();
        let exchange = async {
            let (mut send, mut recv) = conn.accept_bi().await?;
            let payload = codec
                .read_payload(&mut recv)
                .await
                .map_err(|e| on_conn(&conn, e))?;
            let version = match codec::decode_prefix::<u32>(&payload) {
                Ok((v, _)) => v,
                Err(e) => {
                    refuse(&conn, send, codec, ApiError::invalid("malformed hello")).await;
                    return Err(TransportError::Codec(e));
                }
            };
            if version != local.version {
                let msg = format!(
                    "protocol version mismatch: this node speaks version {}, the peer speaks version {version}",
                    local.version
                );
                refuse(
                    &conn,
                    send,
                    codec,
                    ApiError::new(ErrorKind::VersionMismatch, msg),
                )
                .await;
                return Err(TransportError::VersionMismatch {
                    local: local.version,
                    remote: version,
                });
            }
            let remote: Hello = match codec::decode(&payload) {
                Ok(h) => h,
                Err(e) => {
                    refuse(&conn, send, codec, ApiError::invalid("malformed hello")).await;
                    return Err(TransportError::Codec(e));
                }
            };
            if let Err(why) = check_identity(&conn, &remote) {
                refuse(
                    &conn,
                    send,
                    codec,
                    ApiError::new(ErrorKind::Forbidden, why.clone()),
                )
                .await;
                return Err(TransportError::Identity(why));
            }
            codec
                .write_frame(&mut send, &HelloReply::Welcome(local.clone()))
                .await
                .map_err(|e| on_conn(&conn, e))?;
            let _ = send.finish();
            Ok(remote)
        };
        let remote = within_handshake(&conn, cfg.handshake_timeout, exchange).await?;
        tracing::debug!(peer = %remote.node_name, role = %remote.role, addr = %conn.remote_address(), "accepted peer");
        Ok(Peer {
            conn,
            hello: Arc::new(remote),
            codec,
        })
    }

    /// The peer's hello (its name, role and version).
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The underlying QUIC connection (addresses, stats, close notifications).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Closes the connection normally.
    pub fn close(&self, reason: &str) {
        self.conn
            .close(VarInt::from_u32(CLOSE_NORMAL), reason.as_bytes());
    }

    /// Opens a stream and sends `req` on it; the building block of the other request helpers,
    /// public for forwarding (the controller relays an agent's answer frames or raw bytes).
    pub async fn open(&self, req: &Request) -> Result<(SendStream, RecvStream), TransportError> {
        open_request(&self.conn, self.codec, req).await
    }

    async fn read_answer(&self, recv: &mut RecvStream) -> Result<ResponseFrame, TransportError> {
        match self.codec.read_frame(recv).await {
            Ok(f) => Ok(f),
            Err(CodecError::Closed) => match self.conn.close_reason() {
                Some(reason) => Err(TransportError::Connection(reason)),
                None => Err(TransportError::Protocol(
                    "peer closed the stream without answering".into(),
                )),
            },
            Err(e) => Err(on_conn(&self.conn, e)),
        }
    }

    /// Sends a request with a single answer and waits for it.
    pub async fn request(&self, req: &Request) -> Result<Response, TransportError> {
        let (send, recv) = self.open(req).await?;
        self.answer(send, recv).await
    }

    /// The single answer to a request already sent on `send`/`recv` (by [`Self::open`] or
    /// [`Dialing::open`]).
    pub async fn answer(
        &self,
        mut send: SendStream,
        mut recv: RecvStream,
    ) -> Result<Response, TransportError> {
        let _ = send.finish();
        match self.read_answer(&mut recv).await? {
            ResponseFrame::Item(r) => Ok(r),
            ResponseFrame::Error(e) => Err(TransportError::Api(e)),
            ResponseFrame::End => Err(TransportError::Protocol(
                "end marker where an answer was expected".into(),
            )),
        }
    }

    /// Sends a request with a streamed answer (logs, events, stats --stream). Dropping the
    /// returned stream tells the peer to stop sending.
    pub async fn request_stream(&self, req: &Request) -> Result<ResponseStream, TransportError> {
        let (send, recv) = self.open(req).await?;
        Ok(self.answer_stream(send, recv))
    }

    /// [`Self::request_stream`]'s answer to a request already sent.
    pub fn answer_stream(&self, mut send: SendStream, recv: RecvStream) -> ResponseStream {
        let _ = send.finish();
        ResponseStream {
            peer: self.clone(),
            recv,
            done: false,
        }
    }

    /// Sends an exec/attach request, reads the header frame and returns the raw halves: write
    /// stdin bytes to the `SendStream`, read [`crate::session`] chunks from the `RecvStream`.
    pub async fn request_raw(
        &self,
        req: &Request,
    ) -> Result<(Response, SendStream, RecvStream), TransportError> {
        let (send, recv) = self.open(req).await?;
        self.answer_raw(send, recv).await
    }

    /// [`Self::request_raw`]'s header and halves for a request already sent.
    pub async fn answer_raw(
        &self,
        send: SendStream,
        mut recv: RecvStream,
    ) -> Result<(Response, SendStream, RecvStream), TransportError> {
        match self.read_answer(&mut recv).await? {
            ResponseFrame::Item(header) => Ok((header, send, recv)),
            ResponseFrame::Error(e) => Err(TransportError::Api(e)),
            ResponseFrame::End => Err(TransportError::Protocol(
                "end marker where a session header was expected".into(),
            )),
        }
    }

    /// Sends a request followed by `body` as raw bytes (image import), then waits for the single
    /// answer.
    pub async fn request_upload<R>(
        &self,
        req: &Request,
        body: &mut R,
    ) -> Result<Response, TransportError>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        let (mut send, mut recv) = self.open(req).await?;
        let copied = tokio::io::copy(body, &mut send).await;
        if let Err(e) = copied {
            // The peer may have refused early (bad reference...): prefer its answer.
            if let Ok(ResponseFrame::Error(api)) = self.read_answer(&mut recv).await {
                return Err(TransportError::Api(api));
            }
            return Err(TransportError::Io(e));
        }
        let _ = send.finish();
        match self.read_answer(&mut recv).await? {
            ResponseFrame::Item(r) => Ok(r),
            ResponseFrame::Error(e) => Err(TransportError::Api(e)),
            ResponseFrame::End => Err(TransportError::Protocol(
                "end marker where an answer was expected".into(),
            )),
        }
    }

    /// Sends a request whose answer is a download (save, export, cp out): reads the header frame
    /// and returns the stream the raw bytes follow on, up to its end. A reset of that stream
    /// means the sender failed part-way.
    pub async fn request_download(
        &self,
        req: &Request,
    ) -> Result<(Response, RecvStream), TransportError> {
        let (mut send, mut recv) = self.open(req).await?;
        let _ = send.finish();
        match self.read_answer(&mut recv).await? {
            ResponseFrame::Item(header) => Ok((header, recv)),
            ResponseFrame::Error(e) => Err(TransportError::Api(e)),
            ResponseFrame::End => Err(TransportError::Protocol(
                "end marker where a download header was expected".into(),
            )),
        }
    }

    /// Serves requests the peer opens on this connection until it closes: each stream's first
    /// frame is read and handed, with a [`Responder`] for the answer, to `handler` in its own
    /// task. Returns `Ok` when the connection ends normally.
    pub async fn serve<F, Fut>(&self, handler: F) -> Result<(), TransportError>
    where
        F: Fn(Request, Responder) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        loop {
            let (send, mut recv) = match self.conn.accept_bi().await {
                Ok(s) => s,
                Err(
                    quinn::ConnectionError::ApplicationClosed(_)
                    | quinn::ConnectionError::LocallyClosed,
                ) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let handler = handler.clone();
            let codec = self.codec;
            let peer = self.hello.clone();
            tokio::spawn(async move {
                let mut responder = Responder {
                    send,
                    recv: None,
                    codec,
                    peer,
                };
                match codec.read_frame::<_, Request>(&mut recv).await {
                    Ok(req) => {
                        tracing::trace!(verb = req.verb(), peer = %responder.peer.node_name, "request");
                        responder.recv = Some(recv);
                        handler(req, responder).await;
                    }
                    Err(e) => {
                        tracing::warn!(peer = %responder.peer.node_name, error = %e, "unreadable request frame");
                        let _ = recv.stop(VarInt::from_u32(STREAM_BAD_FRAME));
                        let err = ApiError::invalid(format!("unreadable request: {e}"));
                        let _ = responder.fail(err).await;
                    }
                }
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// The client side of a streamed answer.
#[derive(Debug)]
pub struct ResponseStream {
    peer: Peer,
    recv: RecvStream,
    done: bool,
}

impl ResponseStream {
    /// The next item; `None` after the end marker. An error (remote or transport) is returned
    /// once, then the stream is over. A stream that stops without an end marker is an error, so
    /// a cut connection is never mistaken for a complete answer.
    pub async fn recv(&mut self) -> Option<Result<Response, TransportError>> {
        if self.done {
            return None;
        }
        let frame = self.peer.read_answer(&mut self.recv).await;
        match frame {
            Ok(ResponseFrame::Item(r)) => Some(Ok(r)),
            Ok(ResponseFrame::End) => {
                self.done = true;
                None
            }
            Ok(ResponseFrame::Error(e)) => {
                self.done = true;
                Some(Err(TransportError::Api(e)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// Collects every item until the end marker.
    pub async fn collect(mut self) -> Result<Vec<Response>, TransportError> {
        let mut out = Vec::new();
        while let Some(item) = self.recv().await {
            out.push(item?);
        }
        Ok(out)
    }

    /// Turns this into a [`futures_core::Stream`] for combinator-style consumers.
    pub fn into_stream(
        self,
    ) -> impl futures_core::Stream<Item = Result<Response, TransportError>> + Send {
        FrameStream {
            state: StreamState::Idle(Box::new(self)),
        }
    }
}

type NextFuture = Pin<
    Box<
        dyn Future<
                Output = (
                    Box<ResponseStream>,
                    Option<Result<Response, TransportError>>,
                ),
            > + Send,
    >,
>;

enum StreamState {
    Idle(Box<ResponseStream>),
    Busy(NextFuture),
    Done,
}

struct FrameStream {
    state: StreamState,
}

impl futures_core::Stream for FrameStream {
    type Item = Result<Response, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, StreamState::Done) {
                StreamState::Idle(mut inner) => {
                    this.state = StreamState::Busy(Box::pin(async move {
                        let item = inner.recv().await;
                        (inner, item)
                    }));
                }
                StreamState::Busy(mut fut) => {
                    return match fut.as_mut().poll(cx) {
                        Poll::Pending => {
                            this.state = StreamState::Busy(fut);
                            Poll::Pending
                        }
                        Poll::Ready((inner, item)) => {
                            if item.is_some() {
                                this.state = StreamState::Idle(inner);
                            }
                            Poll::Ready(item)
                        }
                    };
                }
                StreamState::Done => return Poll::Ready(None),
            }
        }
    }
}

/// The serving side of one request stream: answer once, stream items, or switch to raw bytes.
#[derive(Debug)]
pub struct Responder {
    send: SendStream,
    recv: Option<RecvStream>,
    codec: FrameCodec,
    peer: Arc<Hello>,
}

impl Responder {
    /// Who sent the request (name and role checked against its certificate).
    pub fn peer(&self) -> &Hello {
        &self.peer
    }

    async fn write(&mut self, frame: &ResponseFrame) -> Result<(), TransportError> {
        self.codec.write_frame(&mut self.send, frame).await?;
        Ok(())
    }

    /// Sends the single answer of a request and finishes the stream.
    pub async fn reply(mut self, result: Result<Response, ApiError>) -> Result<(), TransportError> {
        let frame = match result {
            Ok(r) => ResponseFrame::Item(r),
            Err(e) => ResponseFrame::Error(e),
        };
        self.write(&frame).await?;
        let _ = self.send.finish();
        Ok(())
    }

    /// Sends one item of a streamed answer. Fails once the caller has gone away, which is how
    /// a `logs -f` handler learns to stop.
    pub async fn send(&mut self, item: Response) -> Result<(), TransportError> {
        self.write(&ResponseFrame::Item(item)).await
    }

    /// Ends a streamed answer cleanly.
    pub async fn end(mut self) -> Result<(), TransportError> {
        self.write(&ResponseFrame::End).await?;
        let _ = self.send.finish();
        Ok(())
    }

    /// Ends the answer with an error (single or streamed).
    pub async fn fail(mut self, error: ApiError) -> Result<(), TransportError> {
        self.write(&ResponseFrame::Error(error)).await?;
        let _ = self.send.finish();
        Ok(())
    }

    /// The caller's raw bytes after the request frame (image import body). Read to EOF.
    pub fn body(&mut self) -> Option<&mut RecvStream> {
        self.recv.as_mut()
    }

    /// Sends the session header and hands over both halves for raw bytes (exec, attach).
    pub async fn into_raw(
        mut self,
        header: SessionHeader,
    ) -> Result<(SendStream, RecvStream), TransportError> {
        self.write(&ResponseFrame::Item(Response::Session(header)))
            .await?;
        let recv = self
            .recv
            .take()
            .ok_or_else(|| TransportError::Protocol("request stream already consumed".into()))?;
        Ok((self.send, recv))
    }

    /// Sends the header of a download and hands over the stream for its raw bytes: finish it when
    /// complete, reset it on failure.
    pub async fn into_download(mut self) -> Result<SendStream, TransportError> {
        self.write(&ResponseFrame::Item(Response::Download)).await?;
        Ok(self.send)
    }

    /// Both halves as they are, for forwarding a request to another peer unchanged.
    pub fn into_streams(self) -> (SendStream, Option<RecvStream>) {
        (self.send, self.recv)
    }
}

// ---------------------------------------------------------------------------------------------
// Join
// ---------------------------------------------------------------------------------------------

/// What a successful join gives the agent.
#[derive(Debug, Clone)]
pub struct JoinAccepted {
    /// The agent's signed certificate (DER).
    pub cert_der: Vec<u8>,
    /// The cluster CA certificate (DER), checked against the token's pin.
    pub ca_der: Vec<u8>,
}

/// Agent side of the join: dials the controller's join endpoint trusting only the CA pinned by
/// `token`, sends the secret, name, addresses and CSR, and returns the signed certificate.
/// Uses a short-lived endpoint of its own, so the agent needs no endpoint before it has a
/// certificate.
pub async fn join_cluster(
    addr: SocketAddr,
    token: &JoinToken,
    node_name: &str,
    addresses: &[String],
    csr_der: &[u8],
    cfg: &TransportConfig,
) -> Result<JoinAccepted, TransportError> {
    let client = quic_client_config(tls::join_client_config(token.ca_hash)?, cfg, addr)?;
    let bind = unspecified_like(addr);
    let endpoint =
        Endpoint::client(bind).map_err(|source| TransportError::Bind { addr: bind, source })?;
    // The pin, not the name, authenticates the controller here; any syntactically valid name
    // will do.
    let connecting = endpoint
        .connect_with(client, addr, "berth-join")
        .map_err(|source| TransportError::Connect { addr, source })?;
    let conn = connecting.await?;
    let codec = cfg.codec();
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        let req = JoinRequest {
            version: PROTOCOL_VERSION,
            secret: token.secret_hex(),
            node_name: node_name.to_string(),
            addresses: addresses.to_vec(),
            csr_der: csr_der.to_vec(),
        };
        codec
            .write_frame(&mut send, &req)
            .await
            .map_err(|e| on_conn(&conn, e))?;
        let _ = send.finish();
        let reply: JoinReply = codec
            .read_frame(&mut recv)
            .await
            .map_err(|e| on_conn(&conn, e))?;
        Ok::<_, TransportError>(reply)
    };
    let reply = tokio::time::timeout(cfg.handshake_timeout, exchange)
        .await
        .map_err(|_| TransportError::HandshakeTimeout(cfg.handshake_timeout))??;
    conn.close(VarInt::from_u32(CLOSE_NORMAL), b"joined");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    match reply {
        JoinReply::Accepted { cert_der, ca_der } => {
            if CertHash::of(&ca_der) != token.ca_hash {
                return Err(TransportError::Protocol(
                    "controller returned a CA that does not match the join token".into(),
                ));
            }
            Ok(JoinAccepted { cert_der, ca_der })
        }
        JoinReply::Refused(e) => Err(TransportError::Refused(e)),
    }
}

/// Controller side of one join: accepts the connection from the join endpoint, reads the join
/// request, lets `decide` check the secret and sign the CSR, and sends the answer. The returned
/// request is for logging/registration by the caller.
pub async fn serve_join<F>(
    incoming: quinn::Incoming,
    cfg: &TransportConfig,
    decide: F,
) -> Result<JoinRequest, TransportError>
where
    F: FnOnce(&JoinRequest) -> JoinReply,
{
    let conn = incoming.await?;
    let codec = cfg.codec();
    let exchange = async {
        let (mut send, mut recv) = conn.accept_bi().await?;
        let payload = codec
            .read_payload(&mut recv)
            .await
            .map_err(|e| on_conn(&conn, e))?;
        let (version, _) = codec::decode_prefix::<u32>(&payload)?;
        let (req, reply) = if version != PROTOCOL_VERSION {
            let msg = format!(
                "protocol version mismatch: this controller speaks version {PROTOCOL_VERSION}, the agent speaks version {version}"
            );
            (
                Err(TransportError::VersionMismatch {
                    local: PROTOCOL_VERSION,
                    remote: version,
                }),
                JoinReply::Refused(ApiError::new(ErrorKind::VersionMismatch, msg)),
            )
        } else {
            let req: JoinRequest = codec::decode(&payload)?;
            let reply = decide(&req);
            (Ok(req), reply)
        };
        codec
            .write_frame(&mut send, &reply)
            .await
            .map_err(|e| on_conn(&conn, e))?;
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
        req
    };
    let result = tokio::time::timeout(cfg.handshake_timeout, exchange)
        .await
        .map_err(|_| TransportError::HandshakeTimeout(cfg.handshake_timeout))
        .and_then(|r| r);
    conn.close(VarInt::from_u32(CLOSE_NORMAL), b"");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_on_the_loopback_path() {
        for addr in [
            "127.0.0.1:7443",
            "127.3.2.1:1",
            "[::1]:7443",
            "[::ffff:127.0.0.1]:7443",
        ] {
            assert_eq!(Path::to(addr.parse().unwrap()), Path::Loopback, "{addr}");
        }
        for addr in [
            "0.0.0.0:7443",
            "[::]:7443",
            "10.0.0.1:7443",
            "[fd00::1]:7443",
        ] {
            assert_eq!(Path::to(addr.parse().unwrap()), Path::Network, "{addr}");
        }
    }
}
