//! The controller against real peers over real QUIC with mutual TLS on 127.0.0.1: in-test agents
//! built from `protocol` (they dial the controller, report containers and answer a few verbs)
//! and a client. Checks routing by name / id / prefix, unchanged forwarding, every answer shape
//! (single, stream, raw both ways, upload), scheduling across nodes, the index built from reports,
//! and nodes going down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use controller::{Controller, ControllerConfig, ControllerHandle};
use protocol::messages::{
    AgentEvent, ApiError, AttachOptions, ContainerConfig, ContainerStatus, ContainerSummary,
    ErrorKind, Hello, ImageSummary, ImportImage, ListOptions, LogChunk, LogsOptions, OutputStream,
    Placement, Request, Response, Role, SessionHeader, SystemInfo,
};
use protocol::session::{self, OutputEvent, OutputKind};
use protocol::tls::{self, ClusterCa, Identity};
use protocol::transport::{self, Responder, TransportConfig, TransportError};
use protocol::Peer;

/// Every test finishes well within this.
const BOUND: Duration = Duration::from_secs(60);

struct Cluster {
    ca: ClusterCa,
    addr: SocketAddr,
    handle: ControllerHandle,
}

fn start_controller(grace: Duration) -> Cluster {
    let ca = ClusterCa::generate("test").expect("ca");
    let id = ca
        .issue("ctl", Role::Controller, &["127.0.0.1".to_string()])
        .expect("controller cert");
    let mut cfg = ControllerConfig::new("ctl", id, "127.0.0.1:0".parse().unwrap());
    cfg.down_grace = grace;
    let ctl = Controller::bind(cfg).expect("bind");
    let addr = ctl.local_addr();
    let handle = ctl.handle();
    tokio::spawn(ctl.run());
    Cluster { ca, addr, handle }
}

async fn dial(c: &Cluster, identity: &Identity, role: Role, name: &str) -> Peer {
    let tcfg = TransportConfig::default();
    let endpoint =
        transport::client_endpoint(c.addr, tls::client_config(identity).unwrap(), &tcfg).unwrap();
    Peer::connect(&endpoint, c.addr, "ctl", &Hello::new(role, name), &tcfg)
        .await
        .expect("connect")
}

async fn client(c: &Cluster) -> Peer {
    let id = c.ca.issue("admin", Role::Client, &[]).unwrap();
    dial(c, &id, Role::Client, "admin").await
}

fn summary(id: &str, name: &str, state: ContainerStatus, created: i64) -> ContainerSummary {
    ContainerSummary {
        id: id.into(),
        names: vec![format!("/{name}")],
        image: "busybox".into(),
        image_id: "sha256:00".into(),
        command: "sleep 1".into(),
        created,
        ports: vec![],
        labels: Default::default(),
        state,
        exit_code: 0,
        started_at: created,
        finished_at: 0,
        node: "whatever the agent claims".into(),
    }
}

/// A fake agent: a real QUIC peer that records what it is asked and answers a few verbs.
struct Agent {
    name: String,
    peer: Peer,
    seen: Arc<Mutex<Vec<Request>>>,
}

async fn agent(c: &Cluster, name: &str, containers: Vec<ContainerSummary>) -> Agent {
    let id = c.ca.issue(name, Role::Agent, &[]).unwrap();
    let peer = dial(c, &id, Role::Agent, name).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s, p, n) = (seen.clone(), peer.clone(), name.to_string());
    tokio::spawn(async move {
        let _ = p
            .clone()
            .serve(move |req, resp| {
                let (s, p, n) = (s.clone(), p.clone(), n.clone());
                async move { answer(&n, &p, &s, req, resp).await }
            })
            .await;
    });
    assert!(
        c.handle.wait_for_node(name, BOUND).await,
        "{name} registered"
    );
    peer.request(&Request::Report(AgentEvent::Snapshot(containers)))
        .await
        .expect("snapshot accepted");
    Agent {
        name: name.to_string(),
        peer,
        seen,
    }
}

fn fake_id(node: &str, n: usize) -> String {
    format!("{:0<64}", format!("{}{n}", node.replace('-', "")))
}

async fn answer(
    node: &str,
    peer: &Peer,
    seen: &Mutex<Vec<Request>>,
    req: Request,
    mut resp: Responder,
) {
    seen.lock().unwrap().push(req.clone());
    let count = seen.lock().unwrap().len();
    let node = node.to_string();
    let peer = peer.clone();
    let r: Fut = match req {
        Request::Info => resp
            .reply(Ok(Response::Info(Box::new(SystemInfo {
                name: node.clone(),
                kernel_version: "test-kernel".into(),
                ..Default::default()
            }))))
            .boxed(),
        Request::Create(cfg) => async move {
            let id = fake_id(&node, count);
            let mut s = summary(
                &id,
                cfg.name.as_deref().unwrap_or("anon"),
                ContainerStatus::Created,
                100,
            );
            s.image = cfg.image.clone();
            // The ordering contract: report, wait for the ack, then answer.
            peer.request(&Request::Report(AgentEvent::ContainerChanged(s)))
                .await?;
            resp.reply(Ok(Response::Created {
                id,
                warnings: vec![],
                pulled: vec![],
            }))
            .await
        }
        .boxed(),
        Request::Remove { .. } | Request::Start { .. } | Request::Stop { .. } => {
            resp.reply(Ok(Response::Done)).boxed()
        }
        Request::Logs { options, .. } => async move {
            let n = options.tail.unwrap_or(3);
            for i in 0..n {
                let chunk = LogChunk {
                    stream: OutputStream::Stdout,
                    timestamp: i as i64,
                    data: format!("{node} line {i}\n").into_bytes(),
                };
                resp.send(Response::Log(chunk)).await?;
            }
            resp.end().await
        }
        .boxed(),
        Request::Attach { .. } => async move {
            let header = SessionHeader {
                session: "s1".into(),
                tty: false,
                stdin: true,
            };
            let (mut send, mut recv) = resp.into_raw(header).await?;
            let mut buf = vec![0u8; 1024];
            let mut total = 0i64;
            while let Some(n) = recv.read(&mut buf).await.map_err(std::io::Error::from)? {
                total += n as i64;
                session::write_output(&mut send, OutputKind::Stdout, &buf[..n]).await?;
            }
            session::write_exit(&mut send, total).await?;
            let _ = send.finish();
            Ok(())
        }
        .boxed(),
        Request::ImportImage(_) => async move {
            let mut n = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            if let Some(body) = resp.body() {
                while let Some(k) = body.read(&mut buf).await.map_err(std::io::Error::from)? {
                    n += k as u64;
                }
            }
            resp.reply(Ok(Response::ImageImported {
                id: format!("sha256:{n}"),
                reference: None,
            }))
            .await
        }
        .boxed(),
        Request::ListImages { .. } => resp
            .reply(Ok(Response::Images(vec![ImageSummary {
                id: format!("sha256:{node}"),
                repo_tags: vec![],
                repo_digests: vec![],
                created: 0,
                size: 1,
                labels: Default::default(),
                node: node.clone(),
            }])))
            .boxed(),
        other => resp
            .reply(Err(ApiError::new(
                ErrorKind::Unsupported,
                format!("fake agent: {}", other.verb()),
            )))
            .boxed(),
    };
    if let Err(e) = r.await {
        eprintln!("fake agent: {e}");
    }
}

type Fut = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), TransportError>> + Send>>;

trait Boxed {
    fn boxed(self) -> Fut;
}

impl<F: std::future::Future<Output = Result<(), TransportError>> + Send + 'static> Boxed for F {
    fn boxed(self) -> Fut {
        Box::pin(self)
    }
}

fn api(e: TransportError) -> ApiError {
    e.api_error()
        .cloned()
        .unwrap_or_else(|| panic!("not an api error: {e}"))
}

async fn list(c: &Peer, all: bool) -> Vec<ContainerSummary> {
    match c
        .request(&Request::List(ListOptions {
            all,
            ..Default::default()
        }))
        .await
        .unwrap()
    {
        Response::Containers(v) => v,
        other => panic!("{other:?}"),
    }
}

fn last_seen(a: &Agent) -> Request {
    a.seen.lock().unwrap().last().cloned().expect("a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_name_id_and_prefix_and_forwards_unchanged() {
    tokio::time::timeout(BOUND, async {
        let c = start_controller(Duration::from_secs(30));
        let a = agent(
            &c,
            "node-a",
            vec![
                summary(
                    &format!("{:a<64}", "ab1"),
                    "web",
                    ContainerStatus::Running,
                    10,
                ),
                summary(
                    &format!("{:a<64}", "ab2"),
                    "db",
                    ContainerStatus::Exited,
                    20,
                ),
            ],
        )
        .await;
        let cl = client(&c).await;

        let rows = list(&cl, true).await;
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter().all(|r| r.node == "node-a"),
            "node from the connection"
        );
        assert_eq!(rows[0].names, vec!["/db"], "newest first");
        assert_eq!(
            list(&cl, false).await.len(),
            1,
            "ps without -a: running only"
        );

        for name in ["web", "ab1", &format!("{:a<64}", "ab2")] {
            let req = Request::Start {
                container: name.to_string(),
            };
            assert_eq!(cl.request(&req).await.unwrap(), Response::Done);
            assert_eq!(last_seen(&a), req, "forwarded unchanged");
        }
        let e = api(cl
            .request(&Request::Start {
                container: "ab".into(),
            })
            .await
            .unwrap_err());
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("multiple containers"), "{e}");
        let before = a.seen.lock().unwrap().len();
        let e = api(cl
            .request(&Request::Stop {
                container: "nope".into(),
                timeout: None,
            })
            .await
            .unwrap_err());
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.message, "no such container: nope");
        assert_eq!(a.seen.lock().unwrap().len(), before, "nothing forwarded");

        // Streamed answer.
        let items = cl
            .request_stream(&Request::Logs {
                container: "db".into(),
                options: LogsOptions {
                    tail: Some(3),
                    ..Default::default()
                },
            })
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[2], Response::Log(l) if l.data == b"node-a line 2\n"));

        // Raw session both ways: stdin goes up, output and the exit code come down.
        let (header, mut send, mut recv) = cl
            .request_raw(&Request::Attach {
                container: "web".into(),
                options: AttachOptions {
                    stdin: true,
                    ..Default::default()
                },
            })
            .await
            .unwrap();
        assert!(matches!(header, Response::Session(ref h) if h.session == "s1"));
        send.write_all(b"ping").await.unwrap();
        assert_eq!(
            session::read_output(&mut recv).await.unwrap(),
            Some(OutputEvent::Stdout(b"ping".to_vec()))
        );
        send.write_all(b"pong!").await.unwrap();
        send.finish().unwrap();
        let mut got = Vec::new();
        loop {
            match session::read_output(&mut recv).await.unwrap() {
                Some(OutputEvent::Stdout(d)) => got.extend(d),
                Some(OutputEvent::Exit(code)) => {
                    assert_eq!(code, 9);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, b"pong!");

        // Upload: the body reaches the node byte for byte.
        let body = vec![7u8; 300_000];
        let r = cl
            .request_upload(
                &Request::ImportImage(ImportImage::default()),
                &mut body.as_slice(),
            )
            .await
            .unwrap();
        assert_eq!(
            r,
            Response::ImageImported {
                id: "sha256:300000".into(),
                reference: None
            }
        );

        // Info: the cluster view plus the local node's details ("ctl" has no agent here).
        match cl.request(&Request::Info).await.unwrap() {
            Response::Info(i) => {
                assert_eq!(i.containers, 2);
                assert_eq!(i.containers_running, 1);
                assert_eq!(i.nodes.len(), 1);
                assert!(i.nodes[0].ready);
            }
            other => panic!("{other:?}"),
        }
        // Clients cannot pose as agents.
        let e = api(cl
            .request(&Request::Report(AgentEvent::ContainerRemoved {
                id: "x".into(),
            }))
            .await
            .unwrap_err());
        assert_eq!(e.kind, ErrorKind::Forbidden);
        drop(a);
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_scheduled_and_reports_keep_the_index() {
    tokio::time::timeout(BOUND, async {
        let c = start_controller(Duration::from_secs(30));
        let a = agent(
            &c,
            "node-a",
            vec![summary(
                &format!("{:c<64}", "c1"),
                "web",
                ContainerStatus::Running,
                10,
            )],
        )
        .await;
        let b = agent(&c, "node-b", vec![]).await;
        let cl = client(&c).await;

        let create = |name: &str, node: Option<&str>| {
            Request::Create(Box::new(ContainerConfig {
                image: "busybox".into(),
                name: Some(name.into()),
                placement: Placement {
                    node: node.map(str::to_owned),
                    constraints: vec![],
                },
                ..Default::default()
            }))
        };
        let id = match cl.request(&create("fresh", None)).await.unwrap() {
            Response::Created { id, .. } => id,
            other => panic!("{other:?}"),
        };
        assert!(
            matches!(last_seen(&b), Request::Create(_)),
            "spread: the empty node"
        );
        let rows = list(&cl, true).await;
        let row = rows.iter().find(|r| r.id == id).expect("indexed at once");
        assert_eq!(row.node, "node-b");
        // Start right after create is routed to the new container's node.
        cl.request(&Request::Start {
            container: "fresh".into(),
        })
        .await
        .unwrap();
        assert_eq!(
            last_seen(&b),
            Request::Start {
                container: "fresh".into()
            }
        );
        match cl.request(&create("pinned", Some("node-a"))).await.unwrap() {
            Response::Created { .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(last_seen(&a), Request::Create(_)));
        let e = api(cl.request(&create("web", None)).await.unwrap_err());
        assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        let e = api(cl.request(&create("x", Some("node-z"))).await.unwrap_err());
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");

        // Reports move the index: exit, then removal.
        let mut s = summary(
            &format!("{:c<64}", "c1"),
            "web",
            ContainerStatus::Exited,
            10,
        );
        s.exit_code = 3;
        a.peer
            .request(&Request::Report(AgentEvent::ContainerChanged(s)))
            .await
            .unwrap();
        assert!(list(&cl, false)
            .await
            .iter()
            .all(|r| r.names != vec!["/web"]));
        let web = list(&cl, true)
            .await
            .into_iter()
            .find(|r| r.names == vec!["/web"])
            .unwrap();
        assert_eq!((web.state, web.exit_code), (ContainerStatus::Exited, 3));
        cl.request(&Request::Remove {
            container: "web".into(),
            force: false,
            volumes: false,
        })
        .await
        .unwrap();
        assert!(
            list(&cl, true)
                .await
                .iter()
                .all(|r| r.names != vec!["/web"]),
            "rm is applied at once"
        );
        // Fan-out: images from every node.
        match cl
            .request(&Request::ListImages {
                all: false,
                filters: Default::default(),
            })
            .await
            .unwrap()
        {
            Response::Images(v) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
        // Import with two nodes needs a node: refused clearly.
        let e = api(cl
            .request_upload(
                &Request::ImportImage(ImportImage::default()),
                &mut &b"x"[..],
            )
            .await
            .unwrap_err());
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
        drop((a, b));
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_unavailable_then_marked_down() {
    tokio::time::timeout(BOUND, async {
        let c = start_controller(Duration::from_millis(500));
        let a = agent(
            &c,
            "node-a",
            vec![summary(
                &format!("{:d<64}", "d1"),
                "gone",
                ContainerStatus::Running,
                10,
            )],
        )
        .await;
        let cl = client(&c).await;
        a.peer.close("test: node goes away");
        // Requests for its containers fail as unavailable, not as unknown.
        let e = loop {
            match cl
                .request(&Request::Stop {
                    container: "gone".into(),
                    timeout: None,
                })
                .await
            {
                Err(e) => break api(e),
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
        assert!(e.message.contains("node-a"), "{e}");
        // After the grace period the node is down; its containers stay listed.
        loop {
            let info = match cl.request(&Request::Info).await.unwrap() {
                Response::Info(i) => i,
                other => panic!("{other:?}"),
            };
            if !info.nodes[0].ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(list(&cl, true).await.len(), 1);
        // Nothing can be scheduled on a down node.
        let e = api(cl
            .request(&Request::Create(Box::new(ContainerConfig {
                image: "busybox".into(),
                ..Default::default()
            })))
            .await
            .unwrap_err());
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
        // The node comes back: a new connection and snapshot restore it.
        let back = agent(&c, "node-a", vec![]).await;
        assert!(
            list(&cl, true).await.is_empty(),
            "the snapshot replaces the node's list"
        );
        match cl.request(&Request::Info).await.unwrap() {
            Response::Info(i) => assert!(i.nodes[0].ready),
            other => panic!("{other:?}"),
        }
        drop(back);
        let _ = a.name;
    })
    .await
    .expect("test bound");
}
