//! Volumes and images end to end: volume create/ls/inspect/rm/prune, named volumes that outlive
//! their container, bind mounts (read-only too), anonymous volumes removed by `rm -v`, `import`
//! from a file and from stdin with `--change`, and `images` output.

mod engine;

use engine::{busybox_tarball, unique, Daemon};

#[test]
fn volume_verbs() {
    let d = Daemon::start();
    let name = unique("vol");
    assert_eq!(
        d.berth(&["volume", "create", "--label", "k=v", &name])
            .ok()
            .line(),
        name
    );
    let ls = d.berth(&["volume", "ls"]).ok().stdout;
    assert!(ls.starts_with("DRIVER"), "{ls}");
    assert!(ls.contains("VOLUME NAME"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.starts_with("local") && l.ends_with(&name)),
        "{ls}"
    );
    assert_eq!(d.berth(&["volume", "ls", "-q"]).ok().line(), name);
    let v = d.berth(&["volume", "inspect", &name]).ok().json();
    assert_eq!(v[0]["Name"], name.as_str());
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Labels"]["k"], "v");
    let mountpoint = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&mountpoint).is_dir(), "{mountpoint}");
    assert_eq!(
        d.berth(&["volume", "inspect", "-f", "{{.Name}}", &name])
            .ok()
            .line(),
        name
    );
    let generated = d.berth(&["volume", "create"]).ok().line();
    assert!(!generated.is_empty());
    assert_eq!(d.berth(&["volume", "rm", &name]).ok().line(), name);
    let out = d.berth(&["volume", "inspect", &name]).fails(125);
    assert!(out.stderr.contains(&name), "{}", out.describe());
    d.berth(&["volume", "rm", &name]).fails(125);
    let out = d.berth(&["volume", "prune", "-f", "--all"]).ok().stdout;
    assert!(out.contains(&generated), "{out}");
    assert_eq!(d.berth(&["volume", "ls", "-q"]).ok().stdout, "");
}

#[test]
fn named_volumes_outlive_their_container() {
    let d = Daemon::with_busybox();
    let vol = unique("data");
    let spec = format!("{vol}:/data");
    d.berth(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    let out = d
        .berth(&["run", "--rm", "-v", &spec, "busybox", "cat", "/data/f"])
        .ok();
    assert_eq!(out.stdout, "kept\n");
    let ro = format!("{vol}:/data:ro");
    let out = d.berth(&["run", "--rm", "-v", &ro, "busybox", "touch", "/data/g"]);
    assert_ne!(out.code, Some(0), "read-only volume: {}", out.describe());
    // In use by a container: not removable.
    let user = unique("user");
    d.berth(&["create", "--name", &user, "-v", &spec, "busybox", "true"])
        .ok();
    d.berth(&["volume", "rm", &vol]).fails(125);
    d.berth(&["rm", &user]).ok();
    d.berth(&["volume", "rm", &vol]).ok();
}

#[test]
fn bind_mounts() {
    let d = Daemon::with_busybox();
    let host = d.path("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host\n").unwrap();
    let rw = format!("{}:/mnt", host.display());
    let out = d
        .berth(&[
            "run",
            "--rm",
            "-v",
            &rw,
            "busybox",
            "sh",
            "-c",
            "cat /mnt/in.txt; echo back > /mnt/out.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "from host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "back\n"
    );
    let ro = format!("{}:/mnt:ro", host.display());
    let out = d.berth(&["run", "--rm", "-v", &ro, "busybox", "touch", "/mnt/nope"]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(!host.join("nope").exists());
}

#[test]
fn anonymous_volumes_go_with_rm_v() {
    let d = Daemon::with_busybox();
    let name = unique("anon");
    d.berth(&[
        "run",
        "--name",
        &name,
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo x > /scratch/f",
    ])
    .ok();
    let v = d.berth(&["inspect", &name]).ok().json();
    let mounts = v[0]["Mounts"].as_array().expect("Mounts");
    let m = mounts
        .iter()
        .find(|m| m["Destination"] == "/scratch")
        .expect("the anonymous volume in Mounts");
    assert_eq!(m["Type"], "volume");
    let vol = m["Name"].as_str().unwrap().to_string();
    assert!(d.berth(&["volume", "ls", "-q"]).ok().stdout.contains(&vol));
    d.berth(&["rm", "-v", &name]).ok();
    assert!(!d.berth(&["volume", "ls", "-q"]).ok().stdout.contains(&vol));
}

#[test]
fn import_from_a_file_and_from_stdin() {
    let d = Daemon::start();
    let tar = busybox_tarball(&d.dir);
    let id = d
        .berth(&["import", tar.to_str().unwrap(), "bb:1"])
        .ok()
        .line();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let bytes = std::fs::read(&tar).unwrap();
    let id2 = d
        .berth_stdin(
            &[
                "import",
                "-c",
                "CMD [\"echo\", \"from-change\"]",
                "-",
                "bb:changed",
            ],
            &bytes,
        )
        .ok()
        .line();
    assert!(id2.starts_with("sha256:"), "{id2}");
    let images = d.berth(&["images"]).ok().stdout;
    let mut lines = images.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("bb ") && l.contains(" 1 ")),
        "{images}"
    );
    assert!(images.lines().any(|l| l.contains("changed")), "{images}");
    assert!(images.contains(&id[7..19]), "{images}");
    let q = d.berth(&["images", "-q"]).ok().stdout;
    assert!(q.lines().all(|l| l.len() == 12), "{q}");
    let json = d.berth(&["images", "--format", "json"]).ok().stdout;
    assert!(json.lines().count() >= 2);
    for l in json.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["Repository"], "bb");
    }
    let out = d.berth(&["run", "--rm", "bb:changed"]).ok();
    assert_eq!(out.stdout, "from-change\n");
    let out = d
        .berth(&["run", "--rm", "bb:1", "cat", "/etc/hello.txt"])
        .ok();
    assert_eq!(out.stdout, "from the image\n");
}

#[test]
fn import_of_garbage_is_refused() {
    let d = Daemon::start();
    let junk = d.path("junk.tar");
    std::fs::write(&junk, b"this is not a tarball at all").unwrap();
    d.berth(&["import", junk.to_str().unwrap(), "junk:1"])
        .fails(125);
    let missing = d.path("missing.tar");
    let out = d
        .berth(&["import", missing.to_str().unwrap(), "junk:2"])
        .fails(125);
    assert!(out.stderr.contains("missing.tar"), "{}", out.describe());
    assert_eq!(d.berth(&["images", "-q"]).ok().stdout, "");
}
