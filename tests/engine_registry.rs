//! Registries end to end against Debian's `docker-registry` on loopback, filled by `skopeo copy`
//! from OCI layouts the tests build: pull (tags, digests, gzip/zstd/plain layers, Docker schema2,
//! an index with two platforms), run of a pulled image and `run` pulling a missing one, push seen
//! and copied back by skopeo, basic auth over TLS with login/logout, concurrent pulls sharing
//! layers (each blob fetched once), a pull killed mid-way (nothing partial visible, temp files
//! cleaned at the next start), and the errors of bad references and unknown tags.

mod engine;
mod registry;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use engine::{busybox_tarball, Daemon, PtyProcess, WAIT_TIMEOUT};
use registry::{host_arch, tar_files, Built, Comp, OciLayout, Options, Registry, TokenServer};

/// Builds the test's usual image: busybox (gzip), a zstd layer, a plain layer.
fn three_layers(d: &Daemon, layout: &OciLayout, marker: &str) -> Built {
    let busybox = busybox(d);
    let zstd = tar_files(&d.dir, &[("etc/layer2.txt", b"second layer (zstd)\n")]);
    let plain = tar_files(&d.dir, &[("etc/layer3.txt", marker.as_bytes())]);
    layout.image(
        &[
            (busybox, Comp::Gzip),
            (zstd, Comp::Zstd),
            (plain, Comp::Plain),
        ],
        host_arch(),
        &["sh"],
    )
}

/// The busybox root filesystem tar (built once per test directory).
fn busybox(d: &Daemon) -> Vec<u8> {
    let tar = d.dir.join("busybox.tar");
    if !tar.exists() {
        busybox_tarball(&d.dir);
    }
    fs::read(tar).expect("busybox tar")
}

fn layout_in(d: &Daemon, name: &str) -> OciLayout {
    OciLayout::new(&d.dir.join(name))
}

#[test]
fn pull_run_by_tag_and_digest_and_errors() {
    let d = Daemon::start();
    let reg = Registry::start(&d.netns, Options::default());
    let mut layout = layout_in(&d, "oci");
    let img = three_layers(&d, &layout, "third layer\n");
    layout.tag("v1", &img.manifest);
    reg.put(&layout, "v1", "multi:v1", &[]);
    let name = reg.repo("multi:v1");
    // skopeo compresses plain layers on the way in: digests come from what the registry holds.
    let layers = reg.layer_digests("multi:v1", &d.dir);
    let manifest_digest = reg.manifest_digest("multi:v1", &d.dir);
    assert_eq!(layers.len(), img.layers.len());

    let out = d.berth(&["pull", &name]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "v1: Pulling from multi", "{}", out.stdout);
    for l in &layers {
        let short = &l["sha256:".len()..][..12];
        assert!(
            lines.contains(&format!("{short}: Pull complete").as_str()),
            "{}",
            out.stdout
        );
    }
    assert!(
        lines.contains(&format!("Digest: {manifest_digest}").as_str()),
        "{}",
        out.stdout
    );
    assert!(lines.contains(&format!("Status: Downloaded newer image for {name}").as_str()));
    assert_eq!(
        lines.last().copied(),
        Some(name.as_str()),
        "the reference comes last"
    );

    let run = d
        .berth(&[
            "run",
            "--rm",
            &name,
            "cat",
            "/etc/layer2.txt",
            "/etc/layer3.txt",
        ])
        .ok();
    assert_eq!(run.stdout, "second layer (zstd)\nthird layer\n");

    let again = d.berth(&["pull", &name]).ok();
    assert!(
        again
            .stdout
            .contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        again.stdout
    );

    // By digest: the stored manifest is the registry's, byte for byte, so its digest matches.
    let by_digest = format!("{}@{manifest_digest}", reg.repo("multi"));
    let out = d.berth(&["pull", &by_digest]).ok();
    assert!(out.stdout.contains("Image is up to date"), "{}", out.stdout);
    let run = d
        .berth(&["run", "--rm", &by_digest, "cat", "/etc/layer3.txt"])
        .ok();
    assert_eq!(run.stdout, "third layer\n");

    // Docker v2 schema2 manifests and media types (skopeo converts; gzip layers only).
    let mut v2 = layout_in(&d, "oci-v2");
    let busybox = busybox(&d);
    let extra = tar_files(&d.dir, &[("etc/v2.txt", b"schema2\n")]);
    let img2 = v2.image(
        &[(busybox, Comp::Gzip), (extra, Comp::Gzip)],
        host_arch(),
        &["sh"],
    );
    v2.tag("v2", &img2.manifest);
    reg.put(&v2, "v2", "docker-format:v2", &["--format", "v2s2"]);
    let raw = reg.skopeo(
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", reg.repo("docker-format:v2")),
        ],
        &d.dir,
    );
    assert!(
        raw.stdout
            .contains("application/vnd.docker.distribution.manifest.v2+json"),
        "the registry holds a schema2 manifest: {}",
        raw.stdout
    );
    let v2digest = reg.manifest_digest("docker-format:v2", &d.dir);
    let v2name = format!("{}@{v2digest}", reg.repo("docker-format"));
    let out = d.berth(&["pull", &v2name]).ok();
    assert!(out.stdout.contains("Pull complete"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Already exists"),
        "busybox is shared: {}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().last(), Some(v2name.as_str()));
    let run = d
        .berth(&["run", "--rm", &v2name, "cat", "/etc/v2.txt"])
        .ok();
    assert_eq!(run.stdout, "schema2\n");

    // On a terminal: bars that end in each layer's final state, then the reference.
    let mut v3 = layout_in(&d, "oci-v3");
    let img3 = v3.image(
        &[(tar_files(&d.dir, &[("etc/tty.txt", b"tty\n")]), Comp::Gzip)],
        host_arch(),
        &["sh"],
    );
    v3.tag("v3", &img3.manifest);
    reg.put(&v3, "v3", "tty:v3", &[]);
    let tty_name = reg.repo("tty:v3");
    let mut p = PtyProcess::spawn(d.command(&["pull", &tty_name]), 24, 120);
    assert_eq!(p.wait(), Some(0), "{}", p.screen());
    let screen = p.expect(&tty_name);
    assert!(screen.contains("Pull complete"), "{screen}");
    assert!(
        screen.contains("Status: Downloaded newer image"),
        "{screen}"
    );

    // Errors: one line each, exit 125.
    let out = d.berth(&["pull", &reg.repo("multi:nope")]).fails(125);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert!(
        out.stderr.contains("manifest unknown") && out.stderr.contains("multi:nope"),
        "{}",
        out.describe()
    );
    let out = d.berth(&["pull", "Not/Valid"]).fails(125);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert!(
        out.stderr.contains("invalid reference format"),
        "{}",
        out.describe()
    );
    let out = d
        .berth(&["pull", &format!("{}:bad tag", reg.repo("multi"))])
        .fails(125);
    assert!(
        out.stderr.contains("invalid reference format"),
        "{}",
        out.describe()
    );
}

#[test]
fn run_and_create_pull_a_missing_image() {
    let d = Daemon::start();
    let reg = Registry::start(&d.netns, Options::default());
    let mut layout = layout_in(&d, "oci");
    let img = three_layers(&d, &layout, "pulled by run\n");
    layout.tag("v1", &img.manifest);
    reg.put(&layout, "v1", "runme:v1", &[]);
    let name = reg.repo("runme:v1");

    let out = d
        .berth(&["run", "--rm", &name, "cat", "/etc/layer3.txt"])
        .ok();
    assert_eq!(out.stdout, "pulled by run\n");
    let err: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        err[0],
        format!("Unable to find image '{name}' locally"),
        "{}",
        out.stderr
    );
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {name}").as_str()),
        "{}",
        out.stderr
    );
    // Present now: no pull, no message.
    let out = d.berth(&["run", "--rm", &name, "true"]).ok();
    assert_eq!(out.stderr, "");

    reg.put(&layout, "v1", "createme:v1", &[]);
    let created = reg.repo("createme:v1");
    let out = d.berth(&["create", "--pull", "never", &created]).fails(125);
    assert!(out.stderr.contains("no such image"), "{}", out.describe());
    let out = d.berth(&["create", &created]).ok();
    assert!(
        out.stderr.contains("Unable to find image"),
        "{}",
        out.stderr
    );
    assert_eq!(out.line().len(), 64, "create prints the id: {}", out.stdout);
}

#[test]
fn an_index_pulls_the_host_platform() {
    let d = Daemon::start();
    let reg = Registry::start(&d.netns, Options::default());
    let mut layout = layout_in(&d, "oci");
    let busybox = busybox(&d);
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let mine = layout.image(
        &[
            (busybox.clone(), Comp::Gzip),
            (
                tar_files(&d.dir, &[("etc/platform", host_arch().as_bytes())]),
                Comp::Zstd,
            ),
        ],
        host_arch(),
        &["sh"],
    );
    let theirs = layout.image(
        &[
            (busybox, Comp::Gzip),
            (
                tar_files(&d.dir, &[("etc/platform", other.as_bytes())]),
                Comp::Gzip,
            ),
        ],
        other,
        &["sh"],
    );
    let index = layout.index(&[(&theirs, other), (&mine, host_arch())]);
    layout.tag("multi", &index);
    reg.put(&layout, "multi", "platforms:v1", &["--all"]);
    let name = reg.repo("platforms:v1");
    let index = reg.manifest("platforms:v1", None, &d.dir);
    let listed = index["manifests"].as_array().expect("an index");
    assert_eq!(listed.len(), 2);
    let host = listed
        .iter()
        .find(|m| m["platform"]["architecture"] == host_arch())
        .and_then(|m| m["digest"].as_str())
        .expect("the host's entry")
        .to_string();
    let index_digest = reg.manifest_digest("platforms:v1", &d.dir);
    assert_ne!(index_digest, host);
    let out = d.berth(&["pull", &name]).ok();
    assert!(
        out.stdout.contains(&format!("Digest: {index_digest}")),
        "docker's Digest line names what the tag names, the index: {}",
        out.stdout
    );
    // The host's own manifest is the one pulled, by digest too.
    let by_digest = format!("{}@{host}", reg.repo("platforms"));
    let out = d.berth(&["pull", &by_digest]).ok();
    assert!(out.stdout.contains("Image is up to date"), "{}", out.stdout);
    let run = d
        .berth(&["run", "--rm", &name, "cat", "/etc/platform"])
        .ok();
    assert_eq!(run.stdout, host_arch());
}

#[test]
fn push_is_seen_and_copied_back_by_skopeo() {
    let d = Daemon::start();
    let reg = Registry::start(&d.netns, Options::default());
    let name = reg.repo("pushed:v1");
    d.import_busybox(&name);
    let out = d.berth(&["push", &name]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{}]", reg.repo("pushed")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(": Pushed"), "{}", out.stdout);
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("v1: digest: sha256:") && last.contains(" size: "),
        "{last}"
    );
    let digest = last
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();

    let inspect = reg.skopeo(
        &["inspect", "--tls-verify=false", &format!("docker://{name}")],
        &d.dir,
    );
    assert!(inspect.success(), "{}", inspect.describe());
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("skopeo json");
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Architecture"], host_arch());

    let back = d.dir.join("copied-back");
    let copy = reg.skopeo(
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:v1", back.display()),
        ],
        &d.dir,
    );
    assert!(copy.success(), "{}", copy.describe());
    assert!(back.join("index.json").is_file());

    // Another node (daemon) pulls what was pushed: the layer is a plain tar, as import stored it.
    let other = Daemon::start();
    let seen_there = reg.serve_in(&other.netns);
    let run = other
        .berth(&["run", "--rm", &name, "cat", "/etc/hello.txt"])
        .ok();
    assert_eq!(run.stdout, "from the image\n");
    drop(seen_there);
    drop(other);

    // Pushing again finds every blob there.
    let out = d.berth(&["push", &name]).ok();
    assert!(!out.stdout.contains(": Pushed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Layer already exists"),
        "{}",
        out.stdout
    );

    // The same layer under another repository of the registry is mounted, not uploaded again.
    let second = reg.repo("second:v1");
    d.import_busybox(&second);
    let out = d.berth(&["push", &second]).ok();
    assert!(
        out.stdout.contains(": Mounted from pushed"),
        "{}",
        out.stdout
    );
    let log = fs::read_to_string(&reg.log).unwrap_or_default();
    assert!(
        log.contains("POST /v2/second/blobs/uploads/?mount=sha256:"),
        "the registry saw the mount"
    );

    let out = d.berth(&["push", &reg.repo("never-made:v1")]).fails(125);
    assert!(out.stderr.contains("no such image"), "{}", out.describe());
}

#[test]
fn basic_auth_over_tls_with_login_and_logout() {
    let d = Daemon::start();
    let reg = Registry::start(
        &d.netns,
        Options {
            tls: true,
            user: Some(("tester".into(), "s3cret".into())),
            ..Options::default()
        },
    );
    let mut layout = layout_in(&d, "oci");
    let img = three_layers(&d, &layout, "private\n");
    layout.tag("v1", &img.manifest);
    reg.put(
        &layout,
        "v1",
        "private:v1",
        &["--dest-creds", "tester:s3cret"],
    );
    let name = reg.repo("private:v1");

    // Without the registry's CA the certificate is refused.
    let out = d.berth(&["pull", &name]).fails(125);
    assert!(
        out.stderr.contains("cannot reach registry") && out.stderr.contains("speaks HTTPS"),
        "{}",
        out.describe()
    );

    let certs = d.root.join("certs.d").join(&reg.addr);
    fs::create_dir_all(&certs).expect("certs.d");
    fs::write(certs.join("ca.crt"), reg.ca_pem.as_deref().expect("tls")).expect("ca.crt");

    let out = d.berth(&["pull", &name]).fails(125);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert!(
        out.stderr.contains("unauthorized") && out.stderr.contains("berth login"),
        "{}",
        out.describe()
    );

    let auth_file = d.root.join("auth.json");
    let out = d
        .berth_stdin(
            &["login", "-u", "tester", "--password-stdin", &reg.addr],
            b"wrong\n",
        )
        .fails(125);
    assert!(
        out.stderr.contains("incorrect username or password"),
        "{}",
        out.describe()
    );
    assert!(!auth_file.exists(), "refused credentials are not kept");

    let out = d
        .berth(&["login", "-u", "tester", "-p", "s3cret", &reg.addr])
        .ok();
    assert_eq!(out.line(), "Login Succeeded");
    assert!(
        out.stderr.contains("--password-stdin"),
        "docker's warning: {}",
        out.stderr
    );
    assert_eq!(
        fs::metadata(&auth_file)
            .expect("auth.json")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    d.berth(&["pull", &name]).ok();
    let run = d
        .berth(&["run", "--rm", &name, "cat", "/etc/layer3.txt"])
        .ok();
    assert_eq!(run.stdout, "private\n");
    // run pulls a missing image with the stored credentials too.
    reg.put(
        &layout,
        "v1",
        "private:v2",
        &["--dest-creds", "tester:s3cret"],
    );
    let run = d
        .berth(&[
            "run",
            "--rm",
            &reg.repo("private:v2"),
            "cat",
            "/etc/layer2.txt",
        ])
        .ok();
    assert_eq!(run.stdout, "second layer (zstd)\n");

    // The node uses the credentials and forgets them: nothing under containers/ holds them.
    let id = d
        .berth(&["create", "--pull", "always", &name, "true"])
        .ok()
        .line();
    let record = fs::read_to_string(d.root.join("containers").join(&id).join("state.json"))
        .expect("the container's record");
    assert!(
        record.contains("private:v1") && !record.contains("s3cret"),
        "{record}"
    );

    let out = d.berth(&["logout", &reg.addr]).ok();
    assert_eq!(
        out.line(),
        format!("Removing login credentials for {}", reg.addr)
    );
    assert!(
        !auth_file.exists()
            || !fs::read_to_string(&auth_file)
                .unwrap_or_default()
                .contains(&reg.addr)
    );
    let out = d.berth(&["pull", &name]).fails(125);
    assert!(out.stderr.contains("unauthorized"), "{}", out.describe());
}

#[test]
fn bearer_tokens_from_a_token_server() {
    let d = Daemon::start();
    let tokens = TokenServer::start(&d.netns, "tester", "t0ken");
    let reg = Registry::start(
        &d.netns,
        Options {
            token: Some((tokens.realm.clone(), tokens.cert_pem.clone())),
            ..Options::default()
        },
    );
    let mut layout = layout_in(&d, "oci");
    let img = three_layers(&d, &layout, "behind a token\n");
    layout.tag("v1", &img.manifest);
    reg.put(&layout, "v1", "tok:v1", &["--dest-creds", "tester:t0ken"]);
    let name = reg.repo("tok:v1");

    let out = d.berth(&["pull", &name]).fails(125);
    assert!(
        out.stderr.contains("unauthorized") && out.stderr.contains("berth login"),
        "{}",
        out.describe()
    );
    let out = d
        .berth_stdin(
            &["login", "-u", "tester", "--password-stdin", &reg.addr],
            b"nope\n",
        )
        .fails(125);
    assert!(
        out.stderr.contains("incorrect username or password"),
        "{}",
        out.describe()
    );
    let before = tokens.issued.load(std::sync::atomic::Ordering::Relaxed);
    d.berth_stdin(
        &["login", "-u", "tester", "--password-stdin", &reg.addr],
        b"t0ken\n",
    )
    .ok();
    let run = d
        .berth(&["run", "--rm", &name, "cat", "/etc/layer3.txt"])
        .ok();
    assert_eq!(run.stdout, "behind a token\n");
    let pushed = reg.repo("tok-pushed:v1");
    d.import_busybox(&pushed);
    let out = d.berth(&["push", &pushed]).ok();
    assert!(out.stdout.contains("v1: digest: sha256:"), "{}", out.stdout);
    assert!(
        tokens.issued.load(std::sync::atomic::Ordering::Relaxed) >= before + 3,
        "login, pull and push each got a token"
    );
}

#[test]
fn concurrent_pulls_fetch_each_shared_blob_once() {
    let d = Daemon::start();
    let reg = Registry::start(&d.netns, Options::default());
    let mut layout = layout_in(&d, "oci");
    let busybox = busybox(&d);
    let mut noise = vec![0u8; 8 << 20];
    let mut f = fs::File::open("/dev/urandom").expect("urandom");
    std::io::Read::read_exact(&mut f, &mut noise).expect("read urandom");
    let shared_big = tar_files(&d.dir, &[("data/noise", &noise)]);
    let a = layout.image(
        &[
            (busybox.clone(), Comp::Gzip),
            (shared_big.clone(), Comp::Plain),
            (tar_files(&d.dir, &[("etc/which", b"a\n")]), Comp::Gzip),
        ],
        host_arch(),
        &["sh"],
    );
    let b = layout.image(
        &[
            (busybox, Comp::Gzip),
            (shared_big, Comp::Plain),
            (tar_files(&d.dir, &[("etc/which", b"b\n")]), Comp::Zstd),
        ],
        host_arch(),
        &["sh"],
    );
    layout.tag("a", &a.manifest);
    layout.tag("b", &b.manifest);
    reg.put(&layout, "a", "shared-a:v1", &[]);
    reg.put(&layout, "b", "shared-b:v1", &[]);
    let shared = reg.layer_digests("shared-a:v1", &d.dir)[..2].to_vec();
    assert_eq!(
        shared,
        reg.layer_digests("shared-b:v1", &d.dir)[..2].to_vec()
    );
    let gets_before: Vec<usize> = shared.iter().map(|l| reg.blob_gets(l)).collect();

    let names = [reg.repo("shared-a:v1"), reg.repo("shared-b:v1")];
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            d.command(&["pull", "-q", n])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn pull")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("pull");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (l, before) in shared.iter().zip(gets_before) {
        assert_eq!(reg.blob_gets(l) - before, 1, "shared blob {l} fetched once");
    }
    for (n, which) in names.iter().zip(["a\n", "b\n"]) {
        let run = d
            .berth(&[
                "run",
                "--rm",
                n,
                "sh",
                "-c",
                "cat /etc/which; wc -c < /data/noise",
            ])
            .ok();
        assert_eq!(run.stdout, format!("{which}{}\n", 8 << 20));
    }
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_pull_killed_midway_leaves_nothing_partial() {
    let mut d = Daemon::start();
    let reg = Registry::start(&d.netns, Options::default());
    let mut layout = layout_in(&d, "oci");
    let mut noise = vec![0u8; 32 << 20];
    let mut f = fs::File::open("/dev/urandom").expect("urandom");
    std::io::Read::read_exact(&mut f, &mut noise).expect("read urandom");
    let busybox = busybox(&d);
    let img = layout.image(
        &[
            (busybox, Comp::Gzip),
            (tar_files(&d.dir, &[("data/noise", &noise)]), Comp::Plain),
        ],
        host_arch(),
        &["sh"],
    );
    drop(noise);
    layout.tag("big", &img.manifest);
    reg.put(&layout, "big", "big:v1", &[]);
    let name = reg.repo("big:v1");

    let blob_tmp = d.root.join("blobs/tmp");
    let big_layer = reg.layer_digests("big:v1", &d.dir)[1].clone();
    let big_blob = d
        .root
        .join("blobs/sha256")
        .join(&big_layer["sha256:".len()..]);
    let mut pull = d
        .command(&["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pull");
    // Checked every 2 ms (not poll's growing delay): the transfer may take only a few tenths of
    // a second on a fast machine.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let partial = fs::read_dir(&blob_tmp).ok().and_then(|rd| {
            rd.flatten()
                .find(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
        });
        if partial.is_some() {
            break;
        }
        assert!(
            !big_blob.exists(),
            "the pull finished before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "no partial download appeared in blobs/tmp"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    d.kill9();
    // The CLI would only notice at its connection's idle timeout.
    let _ = pull.kill();
    let _ = pull.wait();
    assert!(!big_blob.exists(), "a partial blob became visible");
    let layers = entries(&d.root.join("layers"));
    assert!(
        layers.iter().filter(|l| !l.starts_with("tmp-")).count() <= 1,
        "at most the small base layer is complete: {layers:?}"
    );

    d.restart();
    assert_eq!(
        entries(&blob_tmp),
        Vec::<String>::new(),
        "blobs/tmp cleaned at start"
    );
    assert!(
        !entries(&d.root.join("layers"))
            .iter()
            .any(|e| e.starts_with("tmp-")),
        "unfinished layers cleaned at start"
    );
    let out = d
        .berth(&["run", "--rm", "--pull", "never", &name, "true"])
        .fails(125);
    assert!(out.stderr.contains("no such image"), "{}", out.describe());

    d.berth_timeout(&["pull", "-q", &name], Duration::from_secs(120))
        .ok();
    assert!(big_blob.is_file());
    let run = d
        .berth(&["run", "--rm", &name, "sh", "-c", "wc -c < /data/noise"])
        .ok();
    assert_eq!(run.stdout, format!("{}\n", 32 << 20));
}

#[test]
fn a_registry_that_goes_away_fails_the_pull_cleanly() {
    let d = Daemon::start();
    let mut reg = Registry::start(&d.netns, Options::default());
    let mut layout = layout_in(&d, "oci");
    let img = three_layers(&d, &layout, "x\n");
    layout.tag("v1", &img.manifest);
    reg.put(&layout, "v1", "gone:v1", &[]);
    let name = reg.repo("gone:v1");
    reg.kill();
    let out = d.berth(&["pull", &name]).fails(125);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert!(
        out.stderr.contains("cannot reach registry"),
        "{}",
        out.describe()
    );
    assert_eq!(entries(&d.root.join("blobs/tmp")), Vec::<String>::new());
}
