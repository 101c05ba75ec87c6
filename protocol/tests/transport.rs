//! End-to-end tests of the transport over real QUIC on 127.0.0.1 (port 0), with real mutual TLS:
//! handshake, requests of every answer shape, refusals, robustness against bad frames, and the
//! join flow.

use protocol::codec::FrameCodec;
use protocol::messages::{
    ApiError, AttachOptions, ErrorKind, Hello, ImportImage, JoinReply, LogChunk, LogsOptions,
    OutputStream, Request, Response, ResponseFrame, Role, SessionHeader, SystemInfo,
    PROTOCOL_VERSION,
};
use protocol::tls::{self, ClusterCa, Identity, JoinToken, PendingIdentity};
use protocol::transport::{self, Peer, Responder, TransportConfig, TransportError};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every test finishes well within this.
const TEST_BOUND: Duration = Duration::from_secs(60);

const LOCALHOST: &str = "127.0.0.1:0";

struct Server {
    addr: SocketAddr,
    ca: Arc<ClusterCa>,
    /// Handshakes that succeeded.
    accepted: Arc<AtomicUsize>,
    /// Connections refused (TLS or handshake).
    refused: Arc<AtomicUsize>,
    /// Requests handed to the handler.
    requests: Arc<AtomicUsize>,
    _endpoint: quinn::Endpoint,
}

async fn handle(req: Request, mut r: Responder) {
    let result = match req {
        Request::Info => {
            r.reply(Ok(Response::Info(Box::new(SystemInfo {
                name: "ctl".into(),
                protocol_version: PROTOCOL_VERSION,
                ..Default::default()
            }))))
            .await
        }
        Request::Inspect { container } => {
            r.reply(Err(ApiError::not_found(format!(
                "no such container: {container}"
            ))))
            .await
        }
        Request::Logs { options, .. } => {
            let n = options.tail.unwrap_or(0);
            let mut res = Ok(());
            for i in 0..n {
                let chunk = LogChunk {
                    stream: OutputStream::Stdout,
                    timestamp: i as i64,
                    data: format!("line {i}\n").into_bytes(),
                };
                res = r.send(Response::Log(chunk)).await;
                if res.is_err() {
                    break;
                }
            }
            match res {
                Ok(()) => r.end().await,
                Err(e) => Err(e),
            }
        }
        Request::Attach { .. } => {
            let header = SessionHeader {
                session: "s1".into(),
                tty: false,
                stdin: true,
            };
            match r.into_raw(header).await {
                Ok((mut send, mut recv)) => {
                    let copied = tokio::io::copy(&mut recv, &mut send).await;
                    let _ = send.finish();
                    copied.map(|_| ()).map_err(TransportError::from)
                }
                Err(e) => Err(e),
            }
        }
        Request::ImportImage(_) => {
            let mut n = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            let mut res = Ok(());
            if let Some(body) = r.body() {
                loop {
                    match body.read(&mut buf).await {
                        Ok(None) => break,
                        Ok(Some(k)) => n += k as u64,
                        Err(e) => {
                            res = Err(std::io::Error::from(e));
                            break;
                        }
                    }
                }
            }
            match res {
                Ok(()) => {
                    r.reply(Ok(Response::ImageImported {
                        id: format!("sha256:{n}"),
                        reference: None,
                    }))
                    .await
                }
                Err(e) => Err(e.into()),
            }
        }
        _ => r.reply(Ok(Response::Done)).await,
    };
    if let Err(e) = result {
        eprintln!("handler: {e}");
    }
}

fn cluster() -> (Arc<ClusterCa>, Identity) {
    let ca = ClusterCa::generate("test").expect("ca");
    let controller = ca
        .issue("ctl", Role::Controller, &["127.0.0.1".into()])
        .expect("controller cert");
    (Arc::new(ca), controller)
}

async fn start_server() -> Server {
    let (ca, controller) = cluster();
    start_server_with(ca, controller, TransportConfig::default()).await
}

async fn start_server_with(
    ca: Arc<ClusterCa>,
    controller: Identity,
    cfg: TransportConfig,
) -> Server {
    let tls = tls::server_config(&controller).expect("server tls");
    let endpoint =
        transport::server_endpoint(LOCALHOST.parse().unwrap(), tls, &cfg).expect("server endpoint");
    let addr = endpoint.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let ep = endpoint.clone();
    let (a, f, q) = (accepted.clone(), refused.clone(), requests.clone());
    tokio::spawn(async move {
        let hello = Hello::new(Role::Controller, "ctl");
        while let Some(incoming) = ep.accept().await {
            let (hello, cfg, a, f, q) =
                (hello.clone(), cfg.clone(), a.clone(), f.clone(), q.clone());
            tokio::spawn(async move {
                match Peer::accept(incoming, &hello, &cfg).await {
                    Ok(peer) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        let _ = peer
                            .serve(move |req, r| {
                                q.fetch_add(1, Ordering::SeqCst);
                                handle(req, r)
                            })
                            .await;
                    }
                    Err(_) => {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    Server {
        addr,
        ca,
        accepted,
        refused,
        requests,
        _endpoint: endpoint,
    }
}

async fn client_peer(
    server: &Server,
    identity: &Identity,
    hello: &Hello,
) -> Result<Peer, TransportError> {
    let cfg = TransportConfig::default();
    let endpoint = transport::client_endpoint(server.addr, tls::client_config(identity)?, &cfg)?;
    Peer::connect(&endpoint, server.addr, "ctl", hello, &cfg).await
}

async fn admin(server: &Server) -> Peer {
    let id = server
        .ca
        .issue("admin", Role::Client, &[])
        .expect("client cert");
    client_peer(server, &id, &Hello::new(Role::Client, "admin"))
        .await
        .expect("handshake")
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_request_round_trip() {
    bounded(async {
        let server = start_server().await;
        let peer = admin(&server).await;
        assert_eq!(peer.hello().role, Role::Controller);
        assert_eq!(peer.hello().node_name, "ctl");
        match peer.request(&Request::Info).await.unwrap() {
            Response::Info(info) => assert_eq!(info.name, "ctl"),
            other => panic!("unexpected {other:?}"),
        }
        // A remote error arrives typed, as one line.
        let err = peer
            .request(&Request::Inspect {
                container: "web".into(),
            })
            .await
            .unwrap_err();
        let api = err.api_error().expect("api error");
        assert_eq!(api.kind, ErrorKind::NotFound);
        assert_eq!(err.to_string(), "no such container: web");
        // Concurrent requests each get their own stream.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let p = peer.clone();
            tasks.push(tokio::spawn(async move { p.request(&Request::Ping).await }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Response::Done);
        }
        assert_eq!(server.requests.load(Ordering::SeqCst), 22);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_connections_start_at_full_size_and_never_probe() {
    bounded(async {
        let server = start_server().await;
        let peer = admin(&server).await;
        assert_eq!(peer.connection().stats().path.current_mtu, 1452);
        for _ in 0..5 {
            peer.request(&Request::Info).await.unwrap();
        }
        // Discovery would have probed by now, both ways, right after the handshake.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = peer.connection().stats();
        assert_eq!(stats.path.sent_plpmtud_probes, 0, "the client probed");
        assert_eq!(stats.frame_rx.ping, 0, "the controller probed");
        assert_eq!(stats.path.current_mtu, 1452);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_from_another_ca_is_refused_before_any_request() {
    bounded(async {
        let server = start_server().await;
        let other_ca = ClusterCa::generate("other").unwrap();
        let intruder = other_ca.issue("admin", Role::Client, &[]).unwrap();
        let err = client_peer(&server, &intruder, &Hello::new(Role::Client, "admin"))
            .await
            .expect_err("intruder must be refused");
        assert!(
            matches!(err, TransportError::Connection(_)),
            "expected a TLS-level refusal, got {err}"
        );
        wait_until("server to record the refusal", || {
            server.refused.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
        assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused() {
    bounded(async {
        let server = start_server().await;
        let cfg = TransportConfig::default();
        let tls = tls::anonymous_client_config(server.ca.cert_der()).unwrap();
        let endpoint = transport::client_endpoint(server.addr, tls, &cfg).unwrap();
        let err = Peer::connect(
            &endpoint,
            server.addr,
            "ctl",
            &Hello::new(Role::Client, "admin"),
            &cfg,
        )
        .await
        .expect_err("anonymous client must be refused");
        assert!(matches!(err, TransportError::Connection(_)), "{err}");
        wait_until("server to record the refusal", || {
            server.refused.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_must_trust_only_the_cluster_ca() {
    bounded(async {
        // The client's identity comes from another cluster: it must not accept this server.
        let server = start_server().await;
        let other_ca = ClusterCa::generate("other").unwrap();
        let id = other_ca.issue("admin", Role::Client, &[]).unwrap();
        let cfg = TransportConfig::default();
        let endpoint =
            transport::client_endpoint(server.addr, tls::client_config(&id).unwrap(), &cfg)
                .unwrap();
        let err = transport::connect(&endpoint, server.addr, "ctl")
            .await
            .expect_err("unknown server CA must be refused");
        assert!(err.to_string().contains("connection failed"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_mismatch_is_a_clear_error() {
    bounded(async {
        let server = start_server().await;
        let id = server.ca.issue("admin", Role::Client, &[]).unwrap();
        let mut hello = Hello::new(Role::Client, "admin");
        hello.version = PROTOCOL_VERSION + 1;
        let err = client_peer(&server, &id, &hello).await.unwrap_err();
        match &err {
            TransportError::VersionMismatch { local, remote } => {
                assert_eq!(*local, PROTOCOL_VERSION + 1);
                assert_eq!(*remote, PROTOCOL_VERSION);
            }
            other => panic!("unexpected {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("protocol version mismatch"), "{msg}");
        assert!(!msg.contains('\n'));
        assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_must_match_the_certificate() {
    bounded(async {
        let server = start_server().await;
        // A client certificate claiming to be an agent in its hello.
        let id = server.ca.issue("admin", Role::Client, &[]).unwrap();
        let err = client_peer(&server, &id, &Hello::new(Role::Agent, "node-1"))
            .await
            .unwrap_err();
        let api = err.api_error().expect("refusal carries an api error");
        assert_eq!(api.kind, ErrorKind::Forbidden);
        assert!(api.message.contains("certificate"), "{}", api.message);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    })
    .await;
}

/// Dials with `hello` and sends `Info` right behind it, before the welcome.
async fn dial_with_info(
    server: &Server,
    hello: &Hello,
) -> (
    transport::Dialing,
    quinn::SendStream,
    quinn::RecvStream,
    quinn::Endpoint,
) {
    let id = server.ca.issue("admin", Role::Client, &[]).unwrap();
    let cfg = TransportConfig::default();
    let endpoint =
        transport::client_endpoint(server.addr, tls::client_config(&id).unwrap(), &cfg).unwrap();
    let dialing = Peer::dial(&endpoint, server.addr, "ctl", hello, &cfg)
        .await
        .expect("TLS");
    let (send, recv) = dialing.open(&Request::Info).await.expect("open ahead");
    (dialing, send, recv, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_behind_the_hello_is_served_after_the_welcome() {
    bounded(async {
        let server = start_server().await;
        let (dialing, send, recv, _endpoint) =
            dial_with_info(&server, &Hello::new(Role::Client, "admin")).await;
        let peer = dialing.welcomed().await.expect("welcome");
        assert_eq!(peer.hello().role, Role::Controller);
        match peer.answer(send, recv).await.unwrap() {
            Response::Info(info) => assert_eq!(info.name, "ctl"),
            other => panic!("unexpected {other:?}"),
        }
        // Later requests use the welcomed connection as usual.
        assert!(matches!(
            peer.request(&Request::Info).await.unwrap(),
            Response::Info(_)
        ));
        assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hello_serves_nothing_sent_behind_it() {
    bounded(async {
        let server = start_server().await;
        let mut newer = Hello::new(Role::Client, "admin");
        newer.version = PROTOCOL_VERSION + 1;
        let (dialing, _send, _recv, _endpoint) = dial_with_info(&server, &newer).await;
        let err = dialing.welcomed().await.unwrap_err();
        assert!(
            matches!(err, TransportError::VersionMismatch { .. }),
            "{err}"
        );
        // A hello that does not match its certificate.
        let (dialing, _send, _recv, _endpoint) =
            dial_with_info(&server, &Hello::new(Role::Agent, "node-1")).await;
        let err = dialing.welcomed().await.unwrap_err();
        assert_eq!(
            err.api_error().map(|a| a.kind),
            Some(ErrorKind::Forbidden),
            "{err}"
        );
        wait_until("both refusals", || {
            server.refused.load(Ordering::SeqCst) == 2
        })
        .await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
        assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answer_arrives_in_order_and_ends() {
    bounded(async {
        let server = start_server().await;
        let peer = admin(&server).await;
        let n = 5000u64;
        let req = Request::Logs {
            container: "web".into(),
            options: LogsOptions {
                tail: Some(n),
                ..Default::default()
            },
        };
        let mut stream = peer.request_stream(&req).await.unwrap();
        let mut i = 0u64;
        while let Some(item) = stream.recv().await {
            match item.unwrap() {
                Response::Log(chunk) => {
                    assert_eq!(chunk.timestamp, i as i64);
                    assert_eq!(chunk.data, format!("line {i}\n").into_bytes());
                }
                other => panic!("unexpected {other:?}"),
            }
            i += 1;
        }
        assert_eq!(i, n);
        assert!(stream.recv().await.is_none(), "stream stays ended");

        // The same through the futures Stream adapter.
        let stream = peer.request_stream(&req).await.unwrap().into_stream();
        let mut stream = std::pin::pin!(stream);
        let mut count = 0u64;
        while let Some(item) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(stream.as_mut(), cx)).await
        {
            item.unwrap();
            count += 1;
        }
        assert_eq!(count, n);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_after_header_round_trip() {
    bounded(async {
        let server = start_server().await;
        let peer = admin(&server).await;
        let (header, mut send, mut recv) = peer
            .request_raw(&Request::Attach {
                container: "web".into(),
                options: AttachOptions::default(),
            })
            .await
            .unwrap();
        match header {
            Response::Session(h) => {
                assert_eq!(h.session, "s1");
                assert!(h.stdin);
            }
            other => panic!("unexpected header {other:?}"),
        }
        let len = 10 * 1024 * 1024;
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let to_send = data.clone();
        let writer = tokio::spawn(async move {
            send.write_all(&to_send).await.unwrap();
            send.finish().unwrap();
            send
        });
        let echoed = recv.read_to_end(len + 1).await.unwrap();
        let _send = writer.await.unwrap();
        assert_eq!(echoed.len(), data.len());
        assert!(echoed == data, "echoed bytes differ");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_after_request_frame() {
    bounded(async {
        let server = start_server().await;
        let peer = admin(&server).await;
        let body = vec![42u8; 3 * 1024 * 1024 + 7];
        let mut reader: &[u8] = &body;
        let resp = peer
            .request_upload(&Request::ImportImage(ImportImage::default()), &mut reader)
            .await
            .unwrap();
        assert_eq!(
            resp,
            Response::ImageImported {
                id: format!("sha256:{}", body.len()),
                reference: None
            }
        );
    })
    .await;
}

async fn raw_exchange(peer: &Peer, bytes: &[u8]) -> ResponseFrame {
    let (mut send, mut recv) = peer.connection().open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    FrameCodec::default()
        .read_frame(&mut recv)
        .await
        .expect("server answers bad frames with an error frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_an_error_and_the_connection_goes_on() {
    bounded(async {
        let server = start_server().await;
        let peer = admin(&server).await;

        // Garbage payload with a plausible length.
        let mut garbage = 16u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 16]);
        match raw_exchange(&peer, &garbage).await {
            ResponseFrame::Error(e) => {
                assert_eq!(e.kind, ErrorKind::InvalidArgument);
                assert!(e.message.contains("undecodable"), "{}", e.message);
            }
            other => panic!("unexpected {other:?}"),
        }

        // A length far beyond the limit: refused from the prefix alone.
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0u8; 64]);
        match raw_exchange(&peer, &huge).await {
            ResponseFrame::Error(e) => {
                assert_eq!(e.kind, ErrorKind::InvalidArgument);
                assert!(e.message.contains("exceeds"), "{}", e.message);
            }
            other => panic!("unexpected {other:?}"),
        }

        // A frame cut short.
        let mut cut = 100u32.to_be_bytes().to_vec();
        cut.extend_from_slice(&[0u8; 10]);
        match raw_exchange(&peer, &cut).await {
            ResponseFrame::Error(e) => assert!(e.message.contains("ended inside"), "{}", e.message),
            other => panic!("unexpected {other:?}"),
        }

        // The connection still serves requests.
        assert!(matches!(
            peer.request(&Request::Info).await.unwrap(),
            Response::Info(_)
        ));
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_can_command_the_dialer() {
    // The agent dials the controller, then the controller opens streams to the agent.
    bounded(async {
        let (ca, controller) = cluster();
        let cfg = TransportConfig::default();
        let endpoint = transport::server_endpoint(
            LOCALHOST.parse().unwrap(),
            tls::server_config(&controller).unwrap(),
            &cfg,
        )
        .unwrap();
        let addr = endpoint.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ep = endpoint.clone();
        let cfg2 = cfg.clone();
        tokio::spawn(async move {
            if let Some(incoming) = ep.accept().await {
                let peer = Peer::accept(incoming, &Hello::new(Role::Controller, "ctl"), &cfg2)
                    .await
                    .unwrap();
                let _ = tx.send(peer);
            }
        });

        let agent_id = ca.issue("node-1", Role::Agent, &[]).unwrap();
        let agent_ep =
            transport::client_endpoint(addr, tls::client_config(&agent_id).unwrap(), &cfg).unwrap();
        let agent = Peer::connect(
            &agent_ep,
            addr,
            "ctl",
            &Hello::new(Role::Agent, "node-1"),
            &cfg,
        )
        .await
        .unwrap();
        let agent_serving = agent.clone();
        tokio::spawn(async move { agent_serving.serve(handle).await });

        let controller_side = rx.await.unwrap();
        assert_eq!(controller_side.hello().role, Role::Agent);
        assert_eq!(controller_side.hello().node_name, "node-1");
        let resp = controller_side.request(&Request::Info).await.unwrap();
        assert!(matches!(resp, Response::Info(_)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_flow_pins_the_ca_and_yields_a_working_identity() {
    bounded(async {
        let (ca, controller) = cluster();
        let cfg = TransportConfig::default();
        let server = start_server_with(ca.clone(), controller.clone(), cfg.clone()).await;

        let join_ep = transport::server_endpoint(
            LOCALHOST.parse().unwrap(),
            tls::join_server_config(&controller).unwrap(),
            &cfg,
        )
        .unwrap();
        let join_addr = join_ep.local_addr().unwrap();
        let token = JoinToken::generate(ca.hash()).unwrap();
        let token_text = token.to_string();

        let (ca2, token2, cfg2) = (ca.clone(), token.clone(), cfg.clone());
        let join_server = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                let Some(incoming) = join_ep.accept().await else {
                    break;
                };
                let outcome = transport::serve_join(incoming, &cfg2, |req| {
                    if !token2.secret_matches(&req.secret) {
                        return JoinReply::Refused(ApiError::new(
                            ErrorKind::Forbidden,
                            "invalid join token",
                        ));
                    }
                    match ca2.sign_csr(&req.csr_der, &req.node_name, Role::Agent, &req.addresses) {
                        Ok(cert) => JoinReply::Accepted {
                            cert_der: cert.to_vec(),
                            ca_der: ca2.cert_der().to_vec(),
                        },
                        Err(e) => JoinReply::Refused(ApiError::invalid(e.to_string())),
                    }
                })
                .await;
                outcomes.push(outcome.map(|r| r.node_name));
            }
            outcomes
        });

        // Wrong secret, right pin: refused by the controller with a clear error.
        let forged: JoinToken = format!("berth1-{}-{}", ca.hash(), "0".repeat(64))
            .parse()
            .unwrap();
        let pending = PendingIdentity::generate("node-7").unwrap();
        let err =
            transport::join_cluster(join_addr, &forged, "node-7", &[], &pending.csr_der, &cfg)
                .await
                .unwrap_err();
        assert_eq!(err.api_error().map(|e| e.kind), Some(ErrorKind::Forbidden));

        // Right token: the agent gets a certificate and can then talk mTLS to the main endpoint.
        let token: JoinToken = token_text.parse().unwrap();
        let pending = PendingIdentity::generate("node-7").unwrap();
        let joined = transport::join_cluster(
            join_addr,
            &token,
            "node-7",
            &["127.0.0.1".into()],
            &pending.csr_der,
            &cfg,
        )
        .await
        .unwrap();
        let identity = pending.complete(joined.cert_der, joined.ca_der).unwrap();
        assert_eq!(identity.ca_hash(), ca.hash());
        let peer = client_peer(&server, &identity, &Hello::new(Role::Agent, "node-7"))
            .await
            .unwrap();
        assert!(matches!(
            peer.request(&Request::Ping).await.unwrap(),
            Response::Done
        ));

        let outcomes = join_server.await.unwrap();
        assert_eq!(outcomes.len(), 2);
        assert_eq!(outcomes[1].as_deref().unwrap(), "node-7");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_wrong_pin_is_refused_by_the_agent() {
    bounded(async {
        let (_ca, controller) = cluster();
        let cfg = TransportConfig::default();
        let join_ep = transport::server_endpoint(
            LOCALHOST.parse().unwrap(),
            tls::join_server_config(&controller).unwrap(),
            &cfg,
        )
        .unwrap();
        let join_addr = join_ep.local_addr().unwrap();
        let called = Arc::new(AtomicUsize::new(0));
        let c = called.clone();
        let cfg2 = cfg.clone();
        tokio::spawn(async move {
            if let Some(incoming) = join_ep.accept().await {
                let _ = transport::serve_join(incoming, &cfg2, |_| {
                    c.fetch_add(1, Ordering::SeqCst);
                    JoinReply::Refused(ApiError::internal("unreachable"))
                })
                .await;
            }
        });
        // A token pinning some other CA (an impostor controller, from the agent's view).
        let other = ClusterCa::generate("other").unwrap();
        let token = JoinToken::generate(other.hash()).unwrap();
        let pending = PendingIdentity::generate("node-8").unwrap();
        let err = transport::join_cluster(join_addr, &token, "node-8", &[], &pending.csr_der, &cfg)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Connection(_)), "{err}");
        assert_eq!(
            called.load(Ordering::SeqCst),
            0,
            "secret must never be sent"
        );
    })
    .await;
}

#[test]
fn malformed_join_token_is_one_line_error() {
    let err = "berth1-nothex-abc".parse::<JoinToken>().unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("malformed join token"), "{msg}");
    assert!(!msg.contains('\n'));
}

#[test]
fn ca_reload_keeps_hash() {
    let dir = tempfile::tempdir().unwrap();
    let first = ClusterCa::load_or_create(dir.path(), "c").unwrap();
    let second = ClusterCa::load_or_create(dir.path(), "c").unwrap();
    assert_eq!(first.hash(), second.hash());
    assert_eq!(first.cert_der(), second.cert_der());
}
