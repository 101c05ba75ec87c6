//! Registry side of the registry tests: Debian's `docker-registry` (distribution 2.8) started on
//! 127.0.0.1 inside the network namespace of the daemon under test (so nothing leaves namespaces
//! the test made) with a free port and a temp storage dir (plain, or TLS with a CA made by rcgen and
//! htpasswd basic auth), killed and removed by its guard; and OCI image layouts built by the test
//! (busybox files, gzip/zstd/plain layers, configs, manifests, indexes) that `skopeo copy` puts
//! into the registry, so the other side of every pull is software we did not write.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::engine::{run_cmd, Out, TestNetns};

/// Bound on a skopeo run.
const SKOPEO_TIMEOUT: Duration = Duration::from_secs(120);
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How a test registry is set up.
#[derive(Default)]
pub struct Options {
    /// Serve TLS with a certificate for 127.0.0.1 signed by a fresh CA.
    pub tls: bool,
    /// Require this user and password (htpasswd, bcrypt).
    pub user: Option<(String, String)>,
    /// Require bearer tokens from this realm, signed by this certificate (PEM).
    pub token: Option<(String, String)>,
}

/// A network namespace the registry side runs in (a handle of its own on a test's namespace).
struct Netns(fs::File);

impl Netns {
    fn of(ns: &TestNetns) -> Netns {
        Netns(fs::File::open(format!("/run/netns/{}", ns.name)).expect("open the test netns"))
    }

    /// `program`, run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.0.as_raw_fd();
        // SAFETY: setns(2) is async-signal-safe; `fd` stays open as long as the registry, which
        // outlives every command it spawns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(self.0.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("enter the test netns");
                f()
            })
            .join()
            .expect("thread in the test netns")
        })
    }
}

/// A running `docker-registry` owned by one test.
pub struct Registry {
    child: Option<Child>,
    netns: Netns,
    /// Shared with the registries serving the same storage in other namespaces.
    dir: std::rc::Rc<tempfile::TempDir>,
    config: PathBuf,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The registry's stdout and stderr (access log included).
    pub log: PathBuf,
    /// PEM of the CA that signed the registry's certificate (TLS only).
    pub ca_pem: Option<String>,
}

fn free_port(netns: &Netns) -> u16 {
    netns.run(|| {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("pick a free port")
    })
}

fn tls_files(dir: &Path) -> (String, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
    fs::write(&cert_path, cert.pem()).expect("write server cert");
    fs::write(&key_path, key.serialize_pem()).expect("write server key");
    (ca_cert.pem(), cert_path, key_path)
}

impl Registry {
    /// Starts a registry in `ns` (the daemon's namespace) and waits until it accepts connections.
    pub fn start(ns: &TestNetns, opts: Options) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("reg-")
            .tempdir_in("/tmp")
            .expect("registry temp dir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("registry storage");
        let mut http_tls = String::new();
        let mut ca_pem = None;
        if opts.tls {
            let (ca, cert, key) = tls_files(dir.path());
            ca_pem = Some(ca);
            http_tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        let mut auth = String::new();
        if let Some((user, pass)) = &opts.user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd is needed (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            fs::write(&file, &out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            );
        }
        if let Some((realm, cert)) = &opts.token {
            let bundle = dir.path().join("token-signer.pem");
            fs::write(&bundle, cert).expect("write token signer");
            auth = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                bundle.display()
            );
        }
        let netns = Netns::of(ns);
        let port = free_port(&netns);
        Registry::serve(
            netns,
            std::rc::Rc::new(dir),
            &format!("127.0.0.1:{port}"),
            &format!("{http_tls}{auth}"),
            ca_pem,
        )
    }

    /// The same registry (storage, TLS, users, address) served in another test's namespace too: a
    /// second node reaching it.
    pub fn serve_in(&self, ns: &TestNetns) -> Registry {
        let config = fs::read_to_string(&self.config).expect("read the registry config");
        let extra = config
            .split_once(&format!("  addr: {}\n", self.addr))
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default();
        Registry::serve(
            Netns::of(ns),
            self.dir.clone(),
            &self.addr,
            &extra,
            self.ca_pem.clone(),
        )
    }

    fn serve(
        netns: Netns,
        dir: std::rc::Rc<tempfile::TempDir>,
        addr: &str,
        extra: &str,
        ca_pem: Option<String>,
    ) -> Registry {
        let storage = dir.path().join("storage");
        let tag = rand_tag();
        let log = dir.path().join(format!("registry-{tag}.log"));
        let config = dir.path().join(format!("config-{tag}.yml"));
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra}",
                storage.display()
            ),
        )
        .expect("write registry config");
        let out = fs::File::create(&log).expect("registry log");
        let mut child = netns
            .command("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("docker-registry is needed (apt-get install docker-registry)");
        let deadline = Instant::now() + READY_TIMEOUT;
        let ready = loop {
            if let Ok(Some(_)) = child.try_wait() {
                break false;
            }
            if netns.run(|| TcpStream::connect(addr).is_ok()) {
                break true;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry not ready:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            ready,
            "docker-registry did not start:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        Registry {
            child: Some(child),
            netns,
            dir,
            config,
            addr: addr.to_string(),
            log,
            ca_pem,
        }
    }

    /// `127.0.0.1:PORT/name`.
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// How many GETs of this blob the registry served (from its access log).
    pub fn blob_gets(&self, digest: &str) -> usize {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let needle = format!("/blobs/{digest} ");
        log.lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(&needle))
            .count()
    }

    /// Kills the registry (a registry that goes away mid-pull).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `skopeo copy` of an OCI layout's tag into this registry.
    pub fn put(&self, layout: &OciLayout, tag: &str, dest: &str, extra: &[&str]) {
        let mut cmd = self.netns.command("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{tag}", layout.dir.display()))
            .arg(format!("docker://{}", self.repo(dest)));
        let out = run_cmd(
            cmd,
            None,
            SKOPEO_TIMEOUT,
            layout.dir.parent().expect("parent"),
        );
        assert!(out.success(), "skopeo copy failed: {}", out.describe());
    }

    /// The manifest (or index) the registry serves for `name` (skopeo may have recompressed
    /// layers on the way in, so digests come from here, not from the layout).
    pub fn manifest(&self, name: &str, creds: Option<&str>, scratch: &Path) -> Value {
        let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--creds", c]);
        }
        let target = format!("docker://{}", self.repo(name));
        args.push(&target);
        let out = self.skopeo(&args, scratch);
        assert!(out.success(), "skopeo inspect failed: {}", out.describe());
        serde_json::from_str(&out.stdout).expect("manifest json")
    }

    /// The layer digests of `name` in the registry, bottom first.
    pub fn layer_digests(&self, name: &str, scratch: &Path) -> Vec<String> {
        self.manifest(name, None, scratch)["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest").to_string())
            .collect()
    }

    /// The digest of the manifest `name` names.
    pub fn manifest_digest(&self, name: &str, scratch: &Path) -> String {
        let out = self.skopeo(
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                &format!("docker://{}", self.repo(name)),
            ],
            scratch,
        );
        assert!(out.success(), "skopeo inspect failed: {}", out.describe());
        out.stdout.trim().to_string()
    }

    /// `skopeo inspect --raw` style look at what the registry holds.
    pub fn skopeo(&self, args: &[&str], scratch: &Path) -> Out {
        let mut cmd = self.netns.command("skopeo");
        cmd.args(args);
        run_cmd(cmd, None, SKOPEO_TIMEOUT, scratch)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rand_tag() -> String {
    crate::engine::rand_hex(4)
}

/// sha256 of bytes as `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug)]
pub enum Comp {
    Plain,
    Gzip,
    Zstd,
}

/// A tar of the directory `src` (made by the host's tar).
pub fn tar_dir(src: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(src)
        .args(["--owner=0", "--group=0", "-cf", "-", "."])
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar failed");
    out.stdout
}

/// A layer tar with the given files (`path`, content).
pub fn tar_files(scratch: &Path, files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = scratch.join(format!("layer-{}", crate::engine::rand_hex(4)));
    for (path, data) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).expect("write layer file");
    }
    let tar = tar_dir(&dir);
    fs::remove_dir_all(&dir).expect("remove layer dir");
    tar
}

fn compress(tar: &[u8], comp: Comp) -> (Vec<u8>, &'static str) {
    match comp {
        Comp::Plain => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            (
                e.finish().expect("gzip"),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(tar, 3).expect("zstd"),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

/// A descriptor of a stored blob.
#[derive(Clone, Debug)]
pub struct Desc {
    pub media_type: String,
    pub digest: String,
    pub size: usize,
}

impl Desc {
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// An image written into a layout.
#[derive(Clone, Debug)]
pub struct Built {
    pub manifest: Desc,
    pub config: Desc,
    pub layers: Vec<Desc>,
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`).
pub struct OciLayout {
    pub dir: PathBuf,
    tags: Vec<Value>,
}

/// The platform names of the running machine, as images spell them.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl OciLayout {
    pub fn new(dir: &Path) -> OciLayout {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dirs");
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
        let l = OciLayout {
            dir: dir.to_path_buf(),
            tags: Vec::new(),
        };
        l.write_index();
        l
    }

    fn blob(&self, bytes: &[u8], media_type: &str) -> Desc {
        let digest = sha256(bytes);
        fs::write(
            self.dir
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
            bytes,
        )
        .expect("write blob");
        Desc {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len(),
        }
    }

    /// Writes an image of `layers` (tar, compression) for `arch` running `cmd`.
    pub fn image(&self, layers: &[(Vec<u8>, Comp)], arch: &str, cmd: &[&str]) -> Built {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (tar, comp) in layers {
            diff_ids.push(sha256(tar));
            let (blob, mt) = compress(tar, *comp);
            descs.push(self.blob(&blob, mt));
        }
        let config = json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2026-01-01T00:00:00Z", "comment": "built by the berth tests"}],
        });
        let config = self.blob(
            &serde_json::to_vec(&config).expect("config json"),
            "application/vnd.oci.image.config.v1+json",
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.json(),
            "layers": descs.iter().map(Desc::json).collect::<Vec<_>>(),
        });
        let manifest = self.blob(
            &serde_json::to_vec(&manifest).expect("manifest json"),
            OCI_MANIFEST,
        );
        Built {
            manifest,
            config,
            layers: descs,
        }
    }

    /// Writes an index of `(image, arch)` entries.
    pub fn index(&self, entries: &[(&Built, &str)]) -> Desc {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(b, arch)| {
                let mut d = b.manifest.json();
                d["platform"] = json!({"architecture": arch, "os": "linux"});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.blob(&serde_json::to_vec(&index).expect("index json"), OCI_INDEX)
    }

    /// Names `desc` `tag` in index.json (what `oci:DIR:tag` refers to).
    pub fn tag(&mut self, tag: &str, desc: &Desc) {
        let mut d = desc.json();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.tags.push(d);
        self.write_index();
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.tags});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("index.json"),
        )
        .expect("write index.json");
    }
}

/// A token server for docker-registry's `auth: token:` mode: answers `GET /token?service=…&scope=…`
/// with an ES256 JWT granting the requested scopes to one user (basic auth), as Docker Hub's auth
/// service does; anonymous or wrong requests get 401. Its signing certificate is the registry's
/// `rootcertbundle` and travels in the token's `x5c` header.
pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The signing certificate (PEM), for the registry's rootcertbundle.
    pub cert_pem: String,
    /// How many tokens it issued.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub const TOKEN_SERVICE: &str = "berth-test-registry";
pub const TOKEN_ISSUER: &str = "berth-test-issuer";

impl TokenServer {
    /// Serves in `ns` (the daemon's namespace), where the agent and skopeo ask it for tokens.
    pub fn start(ns: &TestNetns, user: &str, pass: &str) -> TokenServer {
        use base64::Engine as _;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let key = rcgen::KeyPair::generate().expect("token key");
        let params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("token cert params");
        let cert = params.self_signed(&key).expect("token cert");
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("ring key");
        let listener =
            Netns::of(ns).run(|| TcpListener::bind("127.0.0.1:0").expect("token listener"));
        listener.set_nonblocking(true).expect("nonblocking");
        let realm = format!("http://{}/token", listener.local_addr().expect("addr"));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let (stop2, issued2) = (stop.clone(), issued.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        if answer_token(conn, &expected, &signer, &x5c) {
                            issued2.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TokenServer {
            realm,
            cert_pem: cert.pem(),
            issued,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn b64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves one token request; true when a token was issued.
fn answer_token(
    mut conn: TcpStream,
    expected_auth: &str,
    signer: &ring::signature::EcdsaKeyPair,
    x5c: &str,
) -> bool {
    use std::io::{BufRead, BufReader};
    let mut reader = BufReader::new(conn.try_clone().expect("clone conn"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return false;
    }
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") && v.trim() == expected_auth {
                authorized = true;
            }
        }
    }
    if !authorized {
        let _ = conn.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
        return false;
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut access = Vec::new();
    for pair in query.split('&') {
        if let Some(("scope", v)) = pair.split_once('=') {
            let scope = percent_decode(v);
            let mut parts = scope.splitn(3, ':');
            if let (Some(kind), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            {
                access.push(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = json!({
        "iss": TOKEN_ISSUER, "sub": "tester", "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": crate::engine::rand_hex(8),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = signer
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .expect("sign token");
    let token = format!("{signing_input}.{}", b64url(sig.as_ref()));
    let body = json!({"token": token, "expires_in": 300}).to_string();
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    true
}
