//! Images end to end with real tools: `save` read by skopeo, archives rewritten by skopeo (OCI with
//! zstd and gzip layers, docker-archive) and loaded back, a legacy docker-archive built with `tar`,
//! `commit` with whiteouts, opaque directories, hard links, symlinks and setuid files, `rmi` rules,
//! `tag`, `history`, `image inspect`, `image prune`, `export`, `cp` both ways (including symlink
//! attacks), and hostile archives that must leave the store as it was.

mod engine;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use engine::{busybox_tarball, run_cmd, unique, Daemon, CMD_TIMEOUT};

/// Runs a host tool (skopeo, tar, python3) to completion and checks it succeeded.
#[track_caller]
fn tool(d: &Daemon, program: &str, args: &[&str]) -> String {
    let mut c = Command::new(program);
    c.args(args);
    run_cmd(c, None, CMD_TIMEOUT, &d.dir).ok().stdout
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// What `berth images` lists, as the store's user sees it (without the ever-changing CREATED).
fn image_list(d: &Daemon) -> Vec<String> {
    d.berth(&["images", "--no-trunc", "--format", "json"])
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {} {}", v["Repository"], v["Tag"], v["ID"], v["Size"])
        })
        .collect()
}

/// Blob files in the daemon's content store.
fn blob_count(d: &Daemon) -> usize {
    fs::read_dir(d.root.join("blobs/sha256"))
        .map(|r| r.count())
        .unwrap_or(0)
}

fn image_id(d: &Daemon, name: &str) -> String {
    d.berth(&["image", "inspect", "-f", "{{.Id}}", name])
        .ok()
        .line()
}

#[test]
fn save_is_read_by_skopeo_and_round_trips() {
    let d = Daemon::with_busybox();
    let id = image_id(&d, "busybox");
    let archive = d.path("saved.tar");
    d.berth(&["save", "-o", s(&archive), "busybox"]).ok();
    let inspect = tool(
        &d,
        "skopeo",
        &["inspect", &format!("docker-archive:{}", s(&archive))],
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(1), "{inspect}");
    assert_eq!(v["Os"], "linux", "{inspect}");
    let oci = tool(
        &d,
        "skopeo",
        &["inspect", &format!("oci-archive:{}", s(&archive))],
    );
    assert!(oci.contains("Layers"), "{oci}");

    let out = d.berth(&["rmi", "busybox"]).ok();
    assert!(
        out.stdout.contains("Untagged: busybox:latest"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!("Deleted: {id}")),
        "{}",
        out.describe()
    );
    assert_eq!(d.berth(&["images", "-q"]).ok().stdout, "");
    let out = d.berth(&["load", "-i", s(&archive)]).ok();
    assert_eq!(out.stdout, "Loaded image: busybox:latest\n");
    assert_eq!(
        image_id(&d, "busybox"),
        id,
        "load → save → load keeps the id"
    );
    let out = d
        .berth(&["run", "--rm", "busybox", "cat", "/etc/hello.txt"])
        .ok();
    assert_eq!(out.stdout, "from the image\n");

    // stdin both ways: save to a pipe, load from stdin.
    let bytes = d.command(&["save", "busybox"]).output().unwrap();
    assert!(bytes.status.success());
    d.berth(&["rmi", "busybox"]).ok();
    let out = d.berth_stdin(&["load"], &bytes.stdout).ok();
    assert_eq!(out.stdout, "Loaded image: busybox:latest\n");
    assert_eq!(image_id(&d, "busybox"), id);
}

#[test]
fn archives_rewritten_by_skopeo_load_and_run() {
    let d = Daemon::with_busybox();
    let saved = d.path("saved.tar");
    d.berth(&["save", "-o", s(&saved), "busybox"]).ok();
    let src = format!("docker-archive:{}", s(&saved));
    for format in ["zstd", "gzip"] {
        let oci = d.path(&format!("{format}.tar"));
        tool(
            &d,
            "skopeo",
            &[
                "copy",
                "--dest-compress-format",
                format,
                &src,
                &format!("oci-archive:{}:busybox:{format}", s(&oci)),
            ],
        );
        let out = d.berth(&["load", "-i", s(&oci)]).ok();
        assert_eq!(out.stdout, format!("Loaded image: busybox:{format}\n"));
        let out = d
            .berth(&[
                "run",
                "--rm",
                &format!("busybox:{format}"),
                "cat",
                "/etc/hello.txt",
            ])
            .ok();
        assert_eq!(out.stdout, "from the image\n");
        // An OCI archive without a name loads by id.
        let unnamed = d.path(&format!("{format}-unnamed.tar"));
        tool(
            &d,
            "skopeo",
            &[
                "copy",
                "--dest-compress-format",
                format,
                &src,
                &format!("oci-archive:{}", s(&unnamed)),
            ],
        );
        let out = d.berth(&["load", "-i", s(&unnamed)]).ok();
        assert!(
            out.stdout.starts_with("Loaded image ID: sha256:"),
            "{}",
            out.describe()
        );
    }
    let again = d.path("again.tar");
    tool(
        &d,
        "skopeo",
        &[
            "copy",
            &format!(
                "oci-archive:{}",
                s(&d.dir.join(list_one(&d.dir, "gzip-unnamed")))
            ),
            &format!("docker-archive:{}:skopeo/again:1", s(&again)),
        ],
    );
    let out = d.berth(&["load", "-i", s(&again)]).ok();
    assert_eq!(out.stdout, "Loaded image: skopeo/again:1\n");
    let out = d
        .berth(&["run", "--rm", "skopeo/again:1", "cat", "/etc/hello.txt"])
        .ok();
    assert_eq!(out.stdout, "from the image\n");
}

/// The one file in `dir` whose name starts with `prefix`.
fn list_one(dir: &Path, prefix: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| PathBuf::from(e.file_name()))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

fn sha256_hex(d: &Daemon, file: &Path) -> String {
    let out = tool(d, "sha256sum", &[s(file)]);
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
fn legacy_docker_archive_built_with_tar() {
    let d = Daemon::start();
    let layout = d.path("legacy");
    fs::create_dir_all(&layout).unwrap();
    let layer = busybox_tarball(&d.dir);
    let diff = sha256_hex(&d, &layer);
    let layer_id = "a".repeat(64);
    fs::create_dir_all(layout.join(&layer_id)).unwrap();
    fs::copy(&layer, layout.join(&layer_id).join("layer.tar")).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["cat", "/etc/hello.txt"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff}")]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "built by a test"}],
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    fs::write(layout.join("cfg.json"), &config_bytes).unwrap();
    let config_id = sha256_hex(&d, &layout.join("cfg.json"));
    fs::rename(
        layout.join("cfg.json"),
        layout.join(format!("{config_id}.json")),
    )
    .unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": ["legacy/app:v1"],
        "Layers": [format!("{layer_id}/layer.tar")],
    }]);
    fs::write(layout.join("manifest.json"), manifest.to_string()).unwrap();
    fs::write(
        layout.join("repositories"),
        format!(r#"{{"legacy/app":{{"v1":"{layer_id}"}}}}"#),
    )
    .unwrap();
    let archive = d.path("legacy.tar");
    tool(&d, "tar", &["-C", s(&layout), "-cf", s(&archive), "."]);

    let out = d.berth(&["load", "-i", s(&archive)]).ok();
    assert_eq!(out.stdout, "Loaded image: legacy/app:v1\n");
    assert_eq!(image_id(&d, "legacy/app:v1"), format!("sha256:{config_id}"));
    let out = d.berth(&["run", "--rm", "legacy/app:v1"]).ok();
    assert_eq!(out.stdout, "from the image\n");
    let hist = d.berth(&["history", "legacy/app:v1"]).ok().stdout;
    let rows: Vec<&str> = hist.lines().collect();
    assert!(rows[0].starts_with("IMAGE"), "{hist}");
    assert_eq!(rows.len(), 2, "{hist}");
    assert!(rows[1].starts_with(&config_id[..12]), "{hist}");
    assert!(rows[1].contains("built by a test"), "{hist}");

    // Round trip through save keeps the id.
    let saved = d.path("resaved.tar");
    d.berth(&["save", "-o", s(&saved), "legacy/app:v1"]).ok();
    d.berth(&["rmi", "legacy/app:v1"]).ok();
    d.berth(&["load", "-i", s(&saved)]).ok();
    assert_eq!(image_id(&d, "legacy/app:v1"), format!("sha256:{config_id}"));
}

#[test]
fn commit_keeps_deletions_opaque_dirs_links_and_setuid() {
    let d = Daemon::with_busybox();
    let base = unique("base");
    d.berth(&[
        "run",
        "--name",
        &base,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo a > /data/a && echo b > /data/b && echo s > /data/sub/s \
         && ln /data/a /data/hard && ln -s a /data/soft && cp /bin/busybox /data/suid \
         && chmod 4755 /data/suid && chown 1000:1000 /data/b && rm /etc/hello.txt",
    ])
    .ok();
    let out = d
        .berth(&["commit", "-m", "first", "-a", "tester", &base, "layered:1"])
        .ok();
    assert!(out.line().starts_with("sha256:"), "{}", out.describe());
    let view = d
        .berth(&[
            "run",
            "--rm",
            "layered:1",
            "sh",
            "-c",
            "stat -c '%n %a %u %h' /data/suid /data/b /data/a; readlink /data/soft; \
             ls /etc/hello.txt 2>&1 || echo gone",
        ])
        .ok()
        .stdout;
    assert!(view.contains("/data/suid 4755 0 1"), "{view}");
    assert!(view.contains("/data/b 644 1000 1"), "{view}");
    assert!(view.contains("/data/a 644 0 2"), "hard link kept: {view}");
    assert!(view.contains("\na\n"), "symlink target: {view}");
    assert!(
        view.ends_with("gone\n"),
        "deleted file stays deleted: {view}"
    );

    let second = unique("second");
    d.berth(&[
        "run",
        "--name",
        &second,
        "layered:1",
        "sh",
        "-c",
        "rm /data/b && rm -rf /data/sub && mkdir /data/sub && echo fresh > /data/sub/new",
    ])
    .ok();
    d.berth(&[
        "commit",
        "-c",
        r#"CMD ["sh", "-c", "ls /data /data/sub"]"#,
        "-c",
        "ENV STAGE=two",
        &second,
        "layered:2",
    ])
    .ok();
    let out = d.berth(&["run", "--rm", "layered:2"]).ok();
    assert_eq!(
        out.stdout,
        "/data:\na\nhard\nsoft\nsub\nsuid\n\n/data/sub:\nnew\n",
        "deletion and opaque directory: {}",
        out.describe()
    );
    let out = d
        .berth(&["run", "--rm", "layered:2", "sh", "-c", "echo $STAGE"])
        .ok();
    assert_eq!(out.stdout, "two\n");
    let inspect = d.berth(&["image", "inspect", "layered:2"]).ok().json();
    assert_eq!(
        inspect[0]["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(inspect[0]["Config"]["Cmd"][2], "ls /data /data/sub");
    assert_eq!(inspect[0]["RepoTags"][0], "layered:2");
    assert_eq!(inspect[0]["Os"], "linux");

    let hist = d.berth(&["history", "layered:2"]).ok().stdout;
    let rows: Vec<&str> = hist.lines().collect();
    assert_eq!(rows.len(), 4, "{hist}");
    assert!(
        rows[0].starts_with("IMAGE") && rows[0].contains("CREATED BY"),
        "{hist}"
    );
    assert!(rows[1].contains("rm /data/b"), "{hist}");
    assert!(
        rows[2].starts_with("<missing>") && rows[2].ends_with("first"),
        "{hist}"
    );

    // The layers survive an archive round trip with their whiteouts.
    let archive = d.path("layered.tar");
    d.berth(&["save", "-o", s(&archive), "layered:2"]).ok();
    d.berth(&["rm", &base, &second]).ok();
    d.berth(&["rmi", "layered:2", "layered:1"]).ok();
    d.berth(&["load", "-i", s(&archive)]).ok();
    let out = d.berth(&["run", "--rm", "layered:2"]).ok();
    assert_eq!(
        out.stdout,
        "/data:\na\nhard\nsoft\nsub\nsuid\n\n/data/sub:\nnew\n"
    );
}

#[test]
fn rmi_tag_and_prune_follow_docker() {
    let d = Daemon::with_busybox();
    let id = image_id(&d, "busybox");
    d.berth(&["tag", "busybox", "mine/bb:1"]).ok();
    d.berth(&["image", "tag", "busybox", "mine/bb:2"]).ok();
    let ls = d.berth(&["image", "ls"]).ok().stdout;
    assert!(
        ls.lines()
            .any(|l| l.starts_with("mine/bb") && l.contains(" 2 ")),
        "{ls}"
    );
    let out = d.berth(&["rmi", "mine/bb:1"]).ok();
    assert_eq!(out.stdout, "Untagged: mine/bb:1\n");
    let out = d.berth(&["rmi", &id]).fails(125);
    assert!(out.stderr.contains("must be forced"), "{}", out.describe());
    d.berth(&["rmi", "mine/bb:2"]).ok();

    let user = unique("user");
    d.berth(&["create", "--name", &user, "busybox", "echo", "still here"])
        .ok();
    let out = d.berth(&["rmi", "busybox"]).fails(125);
    assert!(
        out.stderr.contains("container") && out.stderr.contains("must force"),
        "{}",
        out.describe()
    );
    let out = d.berth(&["rmi", "-f", "busybox"]).ok();
    assert_eq!(out.stdout, "Untagged: busybox:latest\n");
    let out = d.berth(&["start", "-a", &user]).ok();
    assert_eq!(out.stdout, "still here\n", "the container keeps its layers");
    // In use: prune keeps it.
    let out = d.berth(&["image", "prune", "-f"]).ok();
    assert_eq!(out.stdout, "Total reclaimed space: 0B\n");
    d.berth(&["rm", &user]).ok();
    let out = d.berth(&["image", "prune", "-f"]).ok();
    assert!(
        out.stdout.starts_with("Deleted Images:\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!("deleted: {id}")),
        "{}",
        out.describe()
    );
    assert_eq!(d.berth(&["images", "-q"]).ok().stdout, "");
    assert_eq!(fs::read_dir(d.root.join("layers")).unwrap().count(), 0);

    d.import_busybox("keep:1");
    let out = d.berth(&["image", "prune", "-a", "-f"]).ok();
    assert!(
        out.stdout.contains("untagged: keep:1"),
        "{}",
        out.describe()
    );
    let out = d.berth(&["rmi", "nothing-here"]).fails(125);
    assert!(out.stderr.contains("nothing-here"), "{}", out.describe());
}

#[test]
fn export_and_cp_stay_inside_the_container() {
    let d = Daemon::with_busybox();
    let c = unique("files");
    let marker = unique("host-marker");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &c,
        "busybox",
        "sh",
        "-c",
        "echo hello > /hello && ln -s / /escape && mkdir /box && sleep 1000",
    ])
    .ok();
    d.wait_status(&c, "running");
    engine::poll("the container's files", engine::WAIT_TIMEOUT, || {
        let out = d.berth(&["exec", &c, "ls", "/box"]);
        out.success().then_some(())
    });

    // Commit of a running container: frozen while its layer is read, running again afterwards.
    d.berth(&["commit", &c, "snap:1"]).ok();
    assert_eq!(d.status(&c), "running");
    let out = d.berth(&["run", "--rm", "snap:1", "cat", "/hello"]).ok();
    assert_eq!(out.stdout, "hello\n");

    let exported = d.path("export.tar");
    d.berth(&["export", "-o", s(&exported), &c]).ok();
    let listing = tool(&d, "tar", &["-tf", s(&exported)]);
    for want in ["hello", "bin/busybox", "etc/hello.txt", "escape"] {
        assert!(
            listing.lines().any(|l| l == want),
            "{want} missing: {listing}"
        );
    }

    let host_copy = d.path("hello-copy");
    d.berth(&["cp", &format!("{c}:/hello"), s(&host_copy)]).ok();
    assert_eq!(fs::read_to_string(&host_copy).unwrap(), "hello\n");
    // /escape -> / leads back into the container: /etc/shadow of the host is never read.
    let stolen = d.path("shadow");
    let out = d.berth(&["cp", &format!("{c}:/escape/etc/shadow"), s(&stolen)]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(!stolen.exists());
    let passwd = d.path("passwd");
    d.berth(&["cp", &format!("{c}:/escape/etc/passwd"), s(&passwd)])
        .ok();
    assert!(fs::read_to_string(&passwd)
        .unwrap()
        .starts_with("root:x:0:0:root:/root:/bin/sh\nnobody"));

    // Host → container, through the container's symlink: lands in the container's /tmp.
    let src = d.path("src");
    fs::create_dir_all(src.join("inner")).unwrap();
    fs::write(src.join("inner/f"), "from host\n").unwrap();
    let host_tmp_target = PathBuf::from("/tmp").join(&marker);
    d.berth(&[
        "cp",
        s(&src.join("inner/f")),
        &format!("{c}:/escape/tmp/{marker}"),
    ])
    .ok();
    assert!(!host_tmp_target.exists(), "cp wrote to the host's /tmp");
    let out = d
        .berth(&["exec", &c, "cat", &format!("/tmp/{marker}")])
        .ok();
    assert_eq!(out.stdout, "from host\n");
    d.berth(&["cp", s(&src), &format!("{c}:/box")]).ok();
    d.berth(&["cp", s(&src), &format!("{c}:/newdir")]).ok();
    let out = d
        .berth(&[
            "exec",
            &c,
            "cat",
            &format!(
                "/box/{}/inner/f",
                src.file_name().unwrap().to_str().unwrap()
            ),
            "/newdir/inner/f",
        ])
        .ok();
    assert_eq!(out.stdout, "from host\nfrom host\n");

    // A tar on stdin, and a tar on stdout, on a stopped container.
    let tarfile = d.path("in.tar");
    tool(&d, "tar", &["-C", s(&src), "-cf", s(&tarfile), "inner"]);
    let bytes = fs::read(&tarfile).unwrap();
    d.berth(&["stop", "-t", "1", &c]).ok();
    d.berth_stdin(&["cp", "-", &format!("{c}:/root")], &bytes)
        .ok();
    let out = d
        .command(&["cp", &format!("{c}:/root/inner"), "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = d.path("out.tar");
    fs::write(&got, &out.stdout).unwrap();
    let listing = tool(&d, "tar", &["-tf", s(&got)]);
    assert!(listing.lines().any(|l| l == "inner/f"), "{listing}");
}

#[test]
fn cp_reaches_volumes_and_respects_read_only_mounts() {
    let d = Daemon::with_busybox();
    let vol = unique("cpvol");
    let c = unique("cpv");
    let host = d.dir.join("cp-bind");
    fs::create_dir_all(&host).unwrap();
    d.berth(&[
        "run",
        "-d",
        "--name",
        &c,
        "-v",
        &format!("{vol}:/data"),
        "-v",
        &format!("{}:/ro:ro", s(&host)),
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let file = d.dir.join("note.txt");
    fs::write(&file, "kept in the volume\n").unwrap();

    // Into a path under the volume: the running container and the next one both see it.
    d.berth(&["cp", s(&file), &format!("{c}:/data/note.txt")])
        .ok();
    let seen = d.berth(&["exec", &c, "cat", "/data/note.txt"]).ok();
    assert_eq!(seen.stdout, "kept in the volume\n");
    let next = d
        .berth(&[
            "run",
            "--rm",
            "-v",
            &format!("{vol}:/data"),
            "busybox",
            "cat",
            "/data/note.txt",
        ])
        .ok();
    assert_eq!(next.stdout, "kept in the volume\n");

    // Out of the volume, and the mount point itself under its own name.
    let out = d.dir.join("back");
    fs::create_dir_all(&out).unwrap();
    d.berth(&["cp", &format!("{c}:/data/note.txt"), s(&out)])
        .ok();
    assert_eq!(
        fs::read_to_string(out.join("note.txt")).unwrap(),
        "kept in the volume\n"
    );
    d.berth(&["cp", &format!("{c}:/data"), s(&out)]).ok();
    assert_eq!(
        fs::read_to_string(out.join("data/note.txt")).unwrap(),
        "kept in the volume\n"
    );

    // A read-only bind refuses, and nothing lands on the host.
    let refused = d.berth(&["cp", s(&file), &format!("{c}:/ro/note.txt")]);
    assert_ne!(refused.code, Some(0), "{}", refused.describe());
    assert!(
        refused.stderr.contains("read-only"),
        "{}",
        refused.describe()
    );
    assert!(!host.join("note.txt").exists());
    d.berth(&["rm", "-f", &c]).ok();
}

#[test]
fn hostile_archives_leave_the_store_unchanged() {
    let d = Daemon::with_busybox();
    let saved = d.path("good.tar");
    d.berth(&["save", "-o", s(&saved), "busybox"]).ok();
    let before = image_list(&d);
    let blobs = blob_count(&d);
    d.berth(&["rmi", "busybox"]).ok();
    let empty = image_list(&d);

    let garbage = d.path("garbage.tar");
    fs::write(&garbage, b"this is not an archive at all\n".repeat(40)).unwrap();
    let truncated = d.path("truncated.tar");
    let good = fs::read(&saved).unwrap();
    fs::write(&truncated, &good[..good.len() / 2]).unwrap();

    // A manifest naming a blob that is not there.
    let tree = d.path("tree");
    fs::create_dir_all(&tree).unwrap();
    tool(&d, "tar", &["-C", s(&tree), "-xf", s(&saved)]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(tree.join("manifest.json")).unwrap()).unwrap();
    let layer = manifest[0]["Layers"][0].as_str().unwrap().to_string();
    let layer_bytes = fs::read(tree.join(&layer)).unwrap();
    fs::remove_file(tree.join(&layer)).unwrap();
    let missing = d.path("missing.tar");
    tool(&d, "tar", &["-C", s(&tree), "-cf", s(&missing), "."]);
    // The same blob name with other content: a digest mismatch.
    let mut altered = layer_bytes.clone();
    let n = altered.len();
    altered[n - 2000] ^= 0x55;
    fs::write(tree.join(&layer), &altered).unwrap();
    let mismatch = d.path("mismatch.tar");
    tool(&d, "tar", &["-C", s(&tree), "-cf", s(&mismatch), "."]);
    // A member that climbs out of the archive.
    let escape = d.path("escape.tar");
    let script = format!(
        "import tarfile, io\nt = tarfile.open('{}', 'w')\ni = tarfile.TarInfo('../evil')\ni.size = 4\nt.addfile(i, io.BytesIO(b'evil'))\nt.close()\n",
        s(&escape)
    );
    tool(&d, "python3", &["-c", &script]);

    for (bad, what) in [
        (&garbage, "garbage"),
        (&truncated, "truncated"),
        (&missing, "missing blob"),
        (&mismatch, "digest mismatch"),
        (&escape, "../ member"),
    ] {
        let out = d.berth(&["load", "-i", s(bad)]).fails(125);
        let line = out.stderr.to_lowercase();
        match what {
            "missing blob" => assert!(line.contains("missing"), "{what}: {}", out.describe()),
            "digest mismatch" => assert!(line.contains("digest"), "{what}: {}", out.describe()),
            "../ member" => assert!(line.contains("../evil"), "{what}: {}", out.describe()),
            _ => assert!(line.contains("archive"), "{what}: {}", out.describe()),
        }
        assert_eq!(image_list(&d), empty, "{what} changed the image list");
        assert_eq!(blob_count(&d), 0, "{what} left blobs behind");
        assert_eq!(
            fs::read_dir(d.root.join("layers")).unwrap().count(),
            0,
            "{what} left layers behind"
        );
        assert_eq!(
            fs::read_dir(d.root.join("blobs/tmp")).unwrap().count(),
            0,
            "{what} left its spool behind"
        );
    }
    d.berth(&["load", "-i", s(&saved)]).ok();
    assert_eq!(image_list(&d), before);
    assert_eq!(blob_count(&d), blobs);
}
