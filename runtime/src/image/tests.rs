//! Tests of the image store against the real file system: imports of plain, gzip and zstd tarballs,
//! digests checked against independent computations, a hostile-archive corpus, whiteouts, crash
//! cleanup, concurrent imports and garbage collection. They need root (ownership, device nodes,
//! `trusted.*` xattrs), as the engine itself does.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use super::fsutil;
use super::*;

const MTIME: u64 = 1_600_000_000;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-image-test-")
        .tempdir()
        .expect("create a temporary directory")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256sum(1) of a file: an implementation independent of ours.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn header(kind: EntryType, mode: u32, uid: u64, gid: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(MTIME);
    h.set_size(0);
    h
}

/// A PAX extended header with `records`, appended before the next entry.
fn append_pax(b: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (k, v) in records {
        // "%d %s=%s\n", where the length counts itself.
        let body_len = 1 + k.len() + 1 + v.len() + 1;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    h.set_path("PaxHeaders/entry").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
}

/// A version-2 file capability blob granting cap_net_bind_service (bit 10), permitted + effective.
fn capability_xattr() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

fn long_name() -> String {
    format!("deep/{}/file-with-a-long-name.txt", "d".repeat(120))
}

fn pax_name() -> String {
    format!("pax/{}/named-by-pax.txt", "p".repeat(150))
}

/// A small root file system exercising every entry type and attribute the unpacker handles.
fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str, mode: u32, uid: u64| {
        let mut h = header(EntryType::Directory, mode, uid, uid);
        b.append_data(&mut h, p, &[][..]).unwrap();
    };
    dir(&mut b, "./", 0o755, 0);
    dir(&mut b, "etc/", 0o755, 0);
    dir(&mut b, "bin/", 0o755, 0);
    dir(&mut b, "home/user/", 0o700, 1000);
    dir(&mut b, "tmp/", 0o1777, 0);
    let file = |b: &mut tar::Builder<Vec<u8>>, p: &str, mode: u32, uid: u64, data: &[u8]| {
        let mut h = header(EntryType::Regular, mode, uid, uid + 1);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, p, data).unwrap();
    };
    file(&mut b, "etc/hostname", 0o644, 0, b"berth\n");
    file(&mut b, "bin/busybox", 0o755, 0, &vec![0x7f; 100_000]);
    file(&mut b, "bin/su", 0o4755, 0, b"#!/bin/sh\n");
    file(&mut b, "bin/wall", 0o2755, 0, b"#!/bin/sh\n");
    file(&mut b, "home/user/notes", 0o600, 1000, b"mine\n");
    file(&mut b, &long_name(), 0o644, 0, b"long\n");
    let mut h = header(EntryType::Symlink, 0o777, 0, 0);
    b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    let mut h = header(EntryType::Symlink, 0o777, 0, 0);
    b.append_link(&mut h, "etc/abs-link", "/etc/hostname")
        .unwrap();
    let mut h = header(EntryType::Link, 0o755, 0, 0);
    b.append_link(&mut h, "bin/ls", "bin/busybox").unwrap();
    // Devices.
    dir(&mut b, "dev/", 0o755, 0);
    let mut h = header(EntryType::Char, 0o666, 0, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/null", &[][..]).unwrap();
    let mut h = header(EntryType::Block, 0o660, 0, 6);
    h.set_device_major(7).unwrap();
    h.set_device_minor(0).unwrap();
    b.append_data(&mut h, "dev/loop0", &[][..]).unwrap();
    let mut h = header(EntryType::Fifo, 0o600, 0, 0);
    b.append_data(&mut h, "dev/fifo", &[][..]).unwrap();
    // PAX: long name, xattrs (some of which must be ignored), nanosecond mtime, big uid.
    let cap = capability_xattr();
    append_pax(
        &mut b,
        &[
            ("path", pax_name().as_bytes()),
            ("mtime", b"1600000000.5"),
            ("uid", b"100000"),
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:bin_t:s0",
            ),
        ],
    );
    let mut h = header(EntryType::Regular, 0o755, 0, 0);
    h.set_size(4);
    h.set_path("placeholder").unwrap();
    h.set_cksum();
    b.append(&h, &b"pax\n"[..]).unwrap();
    // A directory whose mtime must survive the creation of its contents.
    let mut h = header(EntryType::Directory, 0o755, 0, 0);
    h.set_mtime(1_000_000_000);
    b.append_data(&mut h, "var/", &[][..]).unwrap();
    file(&mut b, "var/late", 0o644, 0, b"late\n");
    b.into_inner().unwrap()
}

fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check_rootfs(diff: &Path) {
    assert_eq!(fs::read(diff.join("etc/hostname")).unwrap(), b"berth\n");
    let m = meta(&diff.join("etc/hostname"));
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o644, 0, 1));
    assert_eq!(m.mtime(), MTIME as i64);
    assert_eq!(meta(&diff.join("bin/su")).mode() & 0o7777, 0o4755);
    assert_eq!(meta(&diff.join("bin/wall")).mode() & 0o7777, 0o2755);
    assert_eq!(meta(&diff.join("tmp")).mode() & 0o7777, 0o1777);
    let home = meta(&diff.join("home/user"));
    assert_eq!(
        (home.mode() & 0o7777, home.uid(), home.gid()),
        (0o700, 1000, 1000)
    );
    let notes = meta(&diff.join("home/user/notes"));
    assert_eq!((notes.uid(), notes.gid()), (1000, 1001));
    assert_eq!(
        fs::read_link(diff.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(diff.join("etc/abs-link")).unwrap(),
        Path::new("/etc/hostname")
    );
    assert_eq!(meta(&diff.join("bin/sh")).mtime(), MTIME as i64);
    assert_eq!(
        meta(&diff.join("bin/ls")).ino(),
        meta(&diff.join("bin/busybox")).ino()
    );
    assert_eq!(meta(&diff.join("bin/busybox")).nlink(), 2);
    assert_eq!(fs::read(diff.join(long_name())).unwrap(), b"long\n");
    let null = meta(&diff.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (libc::makedev(1, 3), 0o666)
    );
    let lo = meta(&diff.join("dev/loop0"));
    assert!(lo.file_type().is_block_device());
    assert_eq!((lo.rdev(), lo.gid()), (libc::makedev(7, 0), 6));
    assert!(meta(&diff.join("dev/fifo")).file_type().is_fifo());
    let pax = diff.join(pax_name());
    assert_eq!(fs::read(&pax).unwrap(), b"pax\n");
    let pm = meta(&pax);
    assert_eq!(
        (pm.uid(), pm.mtime(), pm.mtime_nsec()),
        (100000, MTIME as i64, 500_000_000)
    );
    assert_eq!(
        fsutil::lgetxattr(&pax, "user.note").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        fsutil::lgetxattr(&pax, "security.capability").unwrap(),
        Some(capability_xattr())
    );
    assert_eq!(
        fsutil::lgetxattr(&pax, "trusted.overlay.opaque").unwrap(),
        None
    );
    let selinux = fsutil::lgetxattr(&pax, "security.selinux").unwrap();
    assert_ne!(selinux.as_deref(), Some(&b"system_u:object_r:bin_t:s0"[..]));
    assert_eq!(meta(&diff.join("var")).mtime(), 1_000_000_000);
    assert_eq!(meta(diff).mtime(), MTIME as i64);
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

#[test]
fn import_plain_tar_preserves_files_and_computes_digests() {
    let tmp = tempdir();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let tar = rootfs_tar();
    let tar_path = tmp.path().join("rootfs.tar");
    fs::write(&tar_path, &tar).unwrap();

    let changes = ImportConfig {
        cmd: Some(vec!["/bin/sh".into()]),
        env: vec!["A=b".into()],
        exposed_ports: vec!["80".into(), "53/udp".into()],
        labels: [("k".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    let summary = store
        .import_rootfs(
            fs::File::open(&tar_path).unwrap(),
            &reference("myimg:1"),
            &changes,
        )
        .unwrap();
    let image = store.resolve("myimg:1").unwrap();
    assert_eq!(image.id, summary.id);
    assert_eq!(
        image.references,
        vec![reference("docker.io/library/myimg:1")]
    );
    assert_eq!(image.references[0].to_string(), "myimg:1");

    // Digests against independent computations: the blob is the tar itself.
    let independent = sha256sum(&tar_path);
    assert_eq!(independent, sha256_hex(&tar));
    let layer = &image.layers[0];
    assert_eq!(layer.digest.hex(), independent);
    assert_eq!(layer.diff_id.hex(), independent);
    assert_eq!(layer.chain_id.hex(), independent);
    assert_eq!(
        layer.path,
        tmp.path()
            .join("store/layers")
            .join(&independent)
            .join("diff")
    );
    assert_eq!(fs::read(store.blob_path(&layer.digest)).unwrap(), tar);
    assert_eq!(image.id.hex(), sha256sum(&store.blob_path(&image.id)));
    assert_eq!(
        image.manifest_digest.hex(),
        sha256sum(&store.blob_path(&image.manifest_digest))
    );
    assert!(layer.size >= 100_000);

    // The config docker import would write.
    let cfg = image.config.config().as_ref().unwrap();
    assert_eq!(
        cfg.env().as_ref().unwrap(),
        &vec![DEFAULT_PATH.to_string(), "A=b".to_string()]
    );
    assert_eq!(cfg.cmd().as_ref().unwrap(), &vec!["/bin/sh".to_string()]);
    let mut ports = cfg.exposed_ports().clone().unwrap();
    ports.sort();
    assert_eq!(ports, vec!["53/udp".to_string(), "80/tcp".to_string()]);
    assert_eq!(
        cfg.labels().as_ref().unwrap().get("k").map(String::as_str),
        Some("v")
    );
    assert_eq!(image.config.os(), &oci_spec::image::Os::Linux);
    assert_eq!(
        image.config.rootfs().diff_ids(),
        &vec![format!("sha256:{independent}")]
    );
    let history = image.config.history().as_ref().unwrap();
    assert_eq!(history[0].comment().as_deref(), Some("Imported from -"));
    let raw_manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(store.blob_path(&image.manifest_digest)).unwrap())
            .unwrap();
    assert_eq!(
        raw_manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(raw_manifest["layers"][0]["size"], tar.len() as u64);

    check_rootfs(&layer.path);
    assert_eq!(store.lowerdirs(&image), vec![layer.path.clone()]);
    let meta_json: serde_json::Value = serde_json::from_slice(
        &fs::read(
            tmp.path()
                .join("store/layers")
                .join(&independent)
                .join("meta.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta_json["diff_id"], format!("sha256:{independent}"));
    assert_eq!(meta_json["parent"], serde_json::Value::Null);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

#[test]
fn import_gzip_and_zstd_store_the_blob_as_received() {
    let tmp = tempdir();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let tar = rootfs_tar();
    let diff_hex = sha256_hex(&tar);
    for (name, blob, media) in [
        (
            "gz",
            gzip(&tar),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "zst",
            zstd_compress(&tar),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ] {
        let path = tmp.path().join(format!("rootfs.tar.{name}"));
        fs::write(&path, &blob).unwrap();
        let s = store
            .import_rootfs(
                fs::File::open(&path).unwrap(),
                &reference(&format!("img:{name}")),
                &ImportConfig::default(),
            )
            .unwrap();
        let image = store.resolve(s.id.hex()).unwrap();
        let layer = &image.layers[0];
        assert_eq!(layer.digest.hex(), sha256sum(&path), "{name}");
        assert_eq!(layer.diff_id.hex(), diff_hex, "{name}");
        assert_eq!(layer.chain_id.hex(), diff_hex, "{name}");
        assert_eq!(
            fs::read(store.blob_path(&layer.digest)).unwrap(),
            blob,
            "{name}"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&image.manifest_digest).unwrap()).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], media);
        check_rootfs(&layer.path);
    }
    // The same content thrice: one layer directory, three blobs counting the plain one never made.
    let layers: Vec<_> = fs::read_dir(tmp.path().join("store/layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(layers, vec![std::ffi::OsString::from(&diff_hex)]);
}

/// Raw tar writing for hostile archives the Builder refuses to produce.
struct RawTar(Vec<u8>);

impl RawTar {
    fn new() -> Self {
        RawTar(Vec::new())
    }

    fn entry(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        data: &[u8],
        declared: Option<u64>,
    ) -> &mut Self {
        let mut h = header(kind, 0o644, 0, 0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_size(declared.unwrap_or(data.len() as u64));
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn end(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.0);
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

/// Files under `dir`, recursively, as relative paths.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing_behind() {
    let tmp = tempdir();
    let store_root = tmp.path().join("store");
    let store = Store::open(&store_root).unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("passwd"), b"root:x:0:0\n").unwrap();
    let suffix = fsutil::random_hex(4);
    let evil = format!("evil-{suffix}");
    let etc_probe = format!("berth-test-{suffix}");
    let outside_abs = outside.to_str().unwrap().as_bytes().to_vec();

    let mut garbage = vec![0u8; 4096];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    let mut huge_pax = RawTar::new();
    let mut h = header(EntryType::XHeader, 0o644, 0, 0);
    h.set_path("PaxHeaders/x").unwrap();
    h.set_size(2 << 20);
    h.set_cksum();
    huge_pax.0.extend_from_slice(h.as_bytes());
    huge_pax.0.extend(std::iter::repeat_n(b'9', 4096));

    let dotdot = format!("../{evil}");
    let up_evil = format!("up/{evil}");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "dot-dot",
            RawTar::new()
                .entry(dotdot.as_bytes(), EntryType::Regular, b"", b"x", None)
                .end(),
            dotdot.clone(),
        ),
        (
            "absolute",
            RawTar::new()
                .entry(
                    format!("/{evil}").as_bytes(),
                    EntryType::Regular,
                    b"",
                    b"x",
                    None,
                )
                .end(),
            format!("/{evil}"),
        ),
        (
            "write through symlink to /etc",
            RawTar::new()
                .entry(b"link", EntryType::Symlink, b"/etc", b"", None)
                .entry(
                    format!("link/{etc_probe}").as_bytes(),
                    EntryType::Regular,
                    b"",
                    b"x",
                    None,
                )
                .end(),
            format!("link/{etc_probe}"),
        ),
        (
            "write through absolute symlink",
            RawTar::new()
                .entry(b"link", EntryType::Symlink, &outside_abs, b"", None)
                .entry(b"link/passwd", EntryType::Regular, b"", b"pwned", None)
                .end(),
            "link/passwd".into(),
        ),
        (
            "write through relative symlink",
            RawTar::new()
                .entry(b"up", EntryType::Symlink, b"../../..", b"", None)
                .entry(up_evil.as_bytes(), EntryType::Regular, b"", b"x", None)
                .end(),
            up_evil.clone(),
        ),
        (
            "write through symlinked directory deeper",
            RawTar::new()
                .entry(b"a/", EntryType::Directory, b"", b"", None)
                .entry(b"a/up", EntryType::Symlink, b"../../../../..", b"", None)
                .entry(
                    format!("a/up/{evil}").as_bytes(),
                    EntryType::Regular,
                    b"",
                    b"x",
                    None,
                )
                .end(),
            format!("a/up/{evil}"),
        ),
        (
            "hardlink to /etc/shadow",
            RawTar::new()
                .entry(b"shadow", EntryType::Link, b"/etc/shadow", b"", None)
                .end(),
            "shadow".into(),
        ),
        (
            "hardlink to ../x",
            RawTar::new()
                .entry(b"x", EntryType::Link, b"../x", b"", None)
                .end(),
            "x".into(),
        ),
        (
            "hardlink through a symlink",
            RawTar::new()
                .entry(b"link", EntryType::Symlink, &outside_abs, b"", None)
                .entry(b"pw", EntryType::Link, b"link/passwd", b"", None)
                .end(),
            "pw".into(),
        ),
        (
            "hardlink to a missing entry",
            RawTar::new()
                .entry(b"pw", EntryType::Link, b"etc/passwd", b"", None)
                .end(),
            "pw".into(),
        ),
        (
            "huge declared size, truncated data",
            {
                let mut t = RawTar::new();
                t.entry(
                    b"big",
                    EntryType::Regular,
                    b"",
                    &[7u8; 1000],
                    Some(10 << 30),
                );
                t.0
            },
            "big".into(),
        ),
        ("garbage", garbage, "byte 0".into()),
        (
            "oversized PAX header",
            huge_pax.0,
            "PAX extended header".into(),
        ),
        (
            "NUL in a PAX path",
            {
                let mut b = tar::Builder::new(Vec::new());
                append_pax(&mut b, &[("path", b"a\0b")]);
                let mut h = header(EntryType::Regular, 0o644, 0, 0);
                h.set_path("placeholder").unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
                b.into_inner().unwrap()
            },
            "NUL".into(),
        ),
    ];

    let before = tree(tmp.path());
    for (what, bytes, needle) in cases {
        let err = store
            .import_rootfs(&bytes[..], &reference("hostile"), &ImportConfig::default())
            .expect_err(what)
            .to_string();
        assert!(
            err.contains(&needle),
            "{what}: error {err:?} does not name {needle:?}"
        );
        assert_eq!(
            fs::read_dir(store_root.join("layers")).unwrap().count(),
            0,
            "{what}: layers/ is not empty"
        );
        assert_eq!(
            fs::read_dir(store_root.join("blobs/tmp")).unwrap().count(),
            0,
            "{what}"
        );
        assert_eq!(
            fs::read_dir(store_root.join("blobs/sha256"))
                .unwrap()
                .count(),
            0,
            "{what}"
        );
        assert_eq!(tree(tmp.path()), before, "{what}: something was created");
        assert_eq!(
            fs::read(outside.join("passwd")).unwrap(),
            b"root:x:0:0\n",
            "{what}"
        );
        assert!(!Path::new("/etc").join(&etc_probe).exists(), "{what}");
        assert!(!tmp.path().parent().unwrap().join(&evil).exists(), "{what}");
        assert!(store.resolve("hostile").is_err());
    }
}

#[test]
fn oci_whiteouts_become_overlay_whiteouts() {
    let tmp = tempdir();
    let dest = tmp.path().join("layer");
    fs::create_dir(&dest).unwrap();
    let tar = RawTar::new()
        .entry(b"a/", EntryType::Directory, b"", b"", None)
        .entry(b"a/.wh.b", EntryType::Regular, b"", b"", None)
        .entry(b".wh.c", EntryType::Regular, b"", b"", None)
        .entry(b"d/.wh..wh..opq", EntryType::Regular, b"", b"", None)
        .entry(b"d/e", EntryType::Regular, b"", b"e", None)
        // Same-layer entries win over whiteouts, whatever the order.
        .entry(b".wh.f", EntryType::Regular, b"", b"", None)
        .entry(b"f", EntryType::Regular, b"", b"f", None)
        .entry(b"g", EntryType::Regular, b"", b"g", None)
        .entry(b".wh.g", EntryType::Regular, b"", b"", None)
        // A deleted directory re-created in the same layer is opaque.
        .entry(b".wh.h", EntryType::Regular, b"", b"", None)
        .entry(b"h/new", EntryType::Regular, b"", b"n", None)
        .end();
    let stats = unpack_layer(&tar[..], &dest).unwrap();
    for w in ["a/b", "c"] {
        let m = meta(&dest.join(w));
        assert!(m.file_type().is_char_device(), "{w}");
        assert_eq!(m.rdev(), 0, "{w}");
    }
    assert!(!dest.join("a/.wh.b").exists());
    assert_eq!(
        fsutil::lgetxattr(&dest.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(dest.join("d/e")).unwrap(), b"e");
    assert!(!dest.join("d/.wh..wh..opq").exists());
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"f");
    assert_eq!(fs::read(dest.join("g")).unwrap(), b"g");
    assert_eq!(fs::read(dest.join("h/new")).unwrap(), b"n");
    assert_eq!(
        fsutil::lgetxattr(&dest.join("h"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(stats.whiteouts, 5);
}

#[test]
fn duplicate_entries_replace_earlier_ones() {
    let tmp = tempdir();
    let dest = tmp.path().join("layer");
    fs::create_dir(&dest).unwrap();
    let tar = RawTar::new()
        .entry(b"x/", EntryType::Directory, b"", b"", None)
        .entry(b"x/inner", EntryType::Regular, b"", b"1", None)
        .entry(b"x", EntryType::Regular, b"", b"now a file", None)
        .entry(b"y", EntryType::Regular, b"", b"old", None)
        .entry(b"y", EntryType::Symlink, b"x", b"", None)
        .entry(b"z/", EntryType::Directory, b"", b"", None)
        .entry(b"z/keep", EntryType::Regular, b"", b"k", None)
        .entry(b"z/", EntryType::Directory, b"", b"", None)
        .end();
    unpack_layer(&tar[..], &dest).unwrap();
    assert_eq!(fs::read(dest.join("x")).unwrap(), b"now a file");
    assert_eq!(fs::read_link(dest.join("y")).unwrap(), Path::new("x"));
    assert_eq!(fs::read(dest.join("z/keep")).unwrap(), b"k");
}

#[test]
fn rejects_empty_and_unsupported_archives() {
    let tmp = tempdir();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let err = store
        .import_rootfs(&b""[..], &reference("x"), &ImportConfig::default())
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2, 3];
    let err = store
        .import_rootfs(&xz[..], &reference("x"), &ImportConfig::default())
        .unwrap_err();
    assert!(err.to_string().contains("xz"), "{err}");
    let err = store
        .import_rootfs(
            &gzip(b"not a tar at all, just text padded out")[..],
            &reference("x"),
            &ImportConfig::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("layer archive"), "{err}");
    let mut corrupt = gzip(&rootfs_tar());
    let n = corrupt.len();
    corrupt.truncate(n / 2);
    let err = store
        .import_rootfs(&corrupt[..], &reference("x"), &ImportConfig::default())
        .unwrap_err();
    assert!(err.to_string().contains("layer"), "{err}");
    assert_eq!(
        fs::read_dir(tmp.path().join("store/layers"))
            .unwrap()
            .count(),
        0
    );
    // An empty tar (just the end marker) is a valid, empty layer.
    let s = store
        .import_rootfs(
            &[0u8; 1024][..],
            &reference("empty"),
            &ImportConfig::default(),
        )
        .unwrap();
    assert_eq!(s.size, 0);
}

#[test]
fn open_cleans_what_a_crash_left() {
    let tmp = tempdir();
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    store
        .import_rootfs(
            &rootfs_tar()[..],
            &reference("keep"),
            &ImportConfig::default(),
        )
        .unwrap();
    fs::write(root.join("blobs/tmp/0123abcd"), b"half a blob").unwrap();
    fs::create_dir_all(root.join("layers/tmp-x/diff/etc")).unwrap();
    fs::write(root.join("layers/tmp-x/diff/etc/passwd"), b"half").unwrap();
    fs::create_dir_all(root.join("layers/tmp-rm-y/diff")).unwrap();
    let store = Store::open(&root).unwrap();
    assert_eq!(fs::read_dir(root.join("blobs/tmp")).unwrap().count(), 0);
    let left: Vec<_> = fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left[0].starts_with("tmp-"));
    check_rootfs(&store.resolve("keep").unwrap().layers[0].path);
}

#[test]
fn concurrent_imports_of_one_layer_corrupt_nothing() {
    let tmp = tempdir();
    let root = tmp.path().join("store");
    Store::open(&root).unwrap();
    let tar = std::sync::Arc::new(gzip(&rootfs_tar()));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let root = root.clone();
            let tar = tar.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                store
                    .import_rootfs(
                        &tar[..],
                        &reference(&format!("same:{i}")),
                        &ImportConfig::default(),
                    )
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let store = Store::open(&root).unwrap();
    let layers: Vec<_> = fs::read_dir(root.join("layers")).unwrap().collect();
    assert_eq!(layers.len(), 1);
    assert_eq!(fs::read_dir(root.join("blobs/tmp")).unwrap().count(), 0);
    for (i, r) in results.iter().enumerate() {
        let img = store.resolve(&format!("same:{i}")).unwrap();
        assert_eq!(img.id, r.id);
        check_rootfs(&img.layers[0].path);
        assert_eq!(
            sha256sum(&store.blob_path(&img.layers[0].digest)),
            sha256_hex(&tar)
        );
    }
    assert_eq!(store.list().unwrap().len(), 4);
}

#[test]
fn resolve_list_tag_and_remove_with_garbage_collection() {
    let tmp = tempdir();
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    let tar = rootfs_tar();
    let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a = store
        .import_rootfs(
            &tar[..],
            &reference("a"),
            &ImportConfig {
                created: Some(t0),
                ..Default::default()
            },
        )
        .unwrap();
    let b = store
        .import_rootfs(
            &tar[..],
            &reference("localhost:5000/team/b:v1"),
            &ImportConfig {
                created: Some(t0 + Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(a.id, b.id);
    // Resolution by reference spellings, full id, short id.
    for s in [
        "a",
        "a:latest",
        "docker.io/library/a:latest",
        a.id.hex(),
        &a.id.to_string(),
        &a.id.hex()[..12],
    ] {
        assert_eq!(store.resolve(s).unwrap().id, a.id, "{s}");
    }
    let by_digest = format!("a@{}", store.resolve("a").unwrap().manifest_digest);
    assert_eq!(store.resolve(&by_digest).unwrap().id, a.id);
    assert!(matches!(
        store.resolve(&a.id.hex()[..11]),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        store.resolve("nope"),
        Err(ImageError::NotFound(_))
    ));
    let list = store.list().unwrap();
    assert_eq!(
        list.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![b.id.clone(), a.id.clone()]
    );
    assert_eq!(
        list[0].references[0].to_string(),
        "localhost:5000/team/b:v1"
    );

    store.tag("a", &reference("a:extra")).unwrap();
    assert_eq!(store.resolve("a:extra").unwrap().references.len(), 2);
    assert!(store.tag("missing", &reference("x")).is_err());

    // Removing one of two references only untags.
    let r = store.remove_reference(&reference("a:extra")).unwrap();
    assert!(r.deleted.is_empty());
    assert!(store.resolve("a:extra").is_err());
    // Removing image a keeps the shared layer (b uses it).
    let layer = store.resolve("a").unwrap().layers[0].clone();
    let r = store.remove_image("a").unwrap();
    assert_eq!(r.deleted, vec![a.id.clone()]);
    assert!(r.deleted_layers.is_empty());
    assert!(layer.path.is_dir());
    assert!(store.has_blob(&layer.digest));
    assert!(!store.has_blob(&a.id));
    // Removing b's last reference deletes it and now the layer and its blob.
    let b_img = store.resolve("localhost:5000/team/b:v1").unwrap();
    let r = store
        .remove_reference(&reference("localhost:5000/team/b:v1"))
        .unwrap();
    assert_eq!(r.deleted, vec![b.id.clone()]);
    assert_eq!(r.deleted_layers, vec![layer.chain_id.clone()]);
    assert!(!layer.path.exists());
    assert!(!store.has_blob(&layer.digest));
    assert!(!store.has_blob(&b_img.manifest_digest));
    assert!(store.list().unwrap().is_empty());
    assert_eq!(fs::read_dir(root.join("blobs/sha256")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("layers")).unwrap().count(), 0);
    assert!(matches!(
        store.remove_reference(&reference("a")),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn retag_leaves_a_dangling_image_that_can_be_removed_by_id() {
    let tmp = tempdir();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let first = store
        .import_rootfs(
            &rootfs_tar()[..],
            &reference("app"),
            &ImportConfig::default(),
        )
        .unwrap();
    let other = RawTar::new()
        .entry(b"only", EntryType::Regular, b"", b"1", None)
        .end();
    let second = store
        .import_rootfs(&other[..], &reference("app"), &ImportConfig::default())
        .unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    let dangling = list.iter().find(|s| s.id == first.id).unwrap();
    assert!(dangling.references.is_empty());
    assert_eq!(store.resolve("app").unwrap().id, second.id);
    store.remove_image(first.id.short()).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(
        fs::read_dir(tmp.path().join("store/layers"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn expected_digest_mismatch_is_refused() {
    let tmp = tempdir();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let tar = rootfs_tar();
    let wrong = Digest::of(b"something else");
    let err = store
        .import_layer(&tar[..], None, Some(&wrong))
        .unwrap_err();
    assert!(err.to_string().contains(&wrong.to_string()), "{err}");
    assert_eq!(
        fs::read_dir(tmp.path().join("store/layers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(tmp.path().join("store/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    let right = Digest::of(&tar);
    let l = store.import_layer(&tar[..], None, Some(&right)).unwrap();
    assert_eq!(l.blob.digest, right);
    // A second layer on top has the OCI chain id.
    let top = RawTar::new()
        .entry(b"top", EntryType::Regular, b"", b"t", None)
        .end();
    let l2 = store
        .import_layer(&top[..], Some(&l.chain_id), None)
        .unwrap();
    let expect = sha256_hex(format!("{} sha256:{}", l.chain_id, sha256_hex(&top)).as_bytes());
    assert_eq!(l2.chain_id.hex(), expect);
    assert!(store.has_layer(&l2.chain_id));
    let _ = Digest::from_str(&l2.chain_id.to_string()).unwrap();
    assert!(
        fs::metadata(store.layer_path(&l2.chain_id))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
            != 0
    );
}

/// A deterministic xorshift generator for benchmark content.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Bytes that compress about like executables (~2.5-3x with gzip).
    fn fill(&mut self, dict: &[u64], out: &mut Vec<u8>, len: usize) {
        out.clear();
        while out.len() < len {
            let r = self.next();
            let word = if r & 1 == 0 {
                dict[(r >> 8) as usize % dict.len()]
            } else {
                self.next() & 0x3f3f_3f3f_3f3f_3f3f
            };
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.truncate(len);
    }
}

/// A ~200 MB layer shaped like a distribution image: 30 large files (120 MB) and 20,000 small ones
/// (~80 MB) in 400 directories, plus symlinks.
fn write_bench_layer(path: &Path) -> (u64, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dict: Vec<u64> = (0..256).map(|_| rng.next()).collect();
    let f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut b = tar::Builder::new(f);
    let mut buf = Vec::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    for d in 0..400 {
        let mut h = header(EntryType::Directory, 0o755, 0, 0);
        b.append_data(&mut h, format!("usr/share/d{d:03}/"), &[][..])
            .unwrap();
        for i in 0..50 {
            let len = (rng.next() % 8192) as usize;
            rng.fill(&dict, &mut buf, len);
            let mut h = header(EntryType::Regular, 0o644, 0, 0);
            h.set_size(len as u64);
            b.append_data(&mut h, format!("usr/share/d{d:03}/f{i:02}"), &buf[..])
                .unwrap();
            files += 1;
            bytes += len as u64;
        }
        let mut h = header(EntryType::Symlink, 0o777, 0, 0);
        b.append_link(&mut h, format!("usr/share/d{d:03}/link"), "f00")
            .unwrap();
    }
    let mut h = header(EntryType::Directory, 0o755, 0, 0);
    b.append_data(&mut h, "usr/bin/", &[][..]).unwrap();
    for i in 0..30 {
        let len = 4 << 20;
        rng.fill(&dict, &mut buf, len);
        let mut h = header(EntryType::Regular, 0o755, 0, 0);
        h.set_size(len as u64);
        b.append_data(&mut h, format!("usr/bin/big{i:02}"), &buf[..])
            .unwrap();
        files += 1;
        bytes += len as u64;
    }
    b.into_inner().unwrap().flush().unwrap();
    (files, bytes)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Unpack throughput of a ~200 MB layer against tar(1) on the same file system. Run with:
/// `cargo test -p runtime --lib bench_unpack -- --ignored --nocapture` (build the dependencies
/// optimised: `--config 'profile.dev.package."*".opt-level=3'`).
#[test]
#[ignore]
fn bench_unpack_200mb_layer() {
    let tmp = tempdir();
    let tar_path = tmp.path().join("layer.tar");
    let (files, content) = write_bench_layer(&tar_path);
    let gz = tmp.path().join("layer.tar.gz");
    let zst = tmp.path().join("layer.tar.zst");
    assert!(Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -6 -c {0} > {1} && zstd -q -3 -c {0} > {2}",
            tar_path.display(),
            gz.display(),
            zst.display()
        ))
        .status()
        .unwrap()
        .success());
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    println!(
        "layer: {files} files, {} MB content, tar {} MB, gzip {} MB, zstd {} MB",
        content >> 20,
        size(&tar_path) >> 20,
        size(&gz) >> 20,
        size(&zst) >> 20
    );
    let runs = 5;
    let fresh = |name: &str| {
        let d = tmp.path().join(name);
        let _ = fs::remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        // Start each run with no dirty pages from the previous one.
        // SAFETY: sync(2) has no arguments.
        unsafe { libc::sync() };
        d
    };
    let time_cmd = |cmd: String| {
        let d = fresh("peer");
        let t = std::time::Instant::now();
        let ok = Command::new("sh")
            .arg("-c")
            .arg(cmd.replace("DEST", d.to_str().unwrap()))
            .status()
            .unwrap()
            .success();
        assert!(ok, "{cmd}");
        t.elapsed()
    };
    let variants = [
        (
            "plain",
            &tar_path,
            Compression::None,
            format!("tar -xf {} -C DEST", tar_path.display()),
            "tar -x",
        ),
        (
            "gzip",
            &gz,
            Compression::Gzip,
            format!("gzip -dc {} | tar -xf - -C DEST", gz.display()),
            "gzip -dc | tar -x",
        ),
        (
            "zstd",
            &zst,
            Compression::Zstd,
            format!("zstd -q -dc {} | tar -xf - -C DEST", zst.display()),
            "zstd -dc | tar -x",
        ),
    ];
    let diff_hex = sha256_hex(&fs::read(&tar_path).unwrap());
    // Interleaved runs, so that load from other users of the machine hits every variant alike.
    let mut times: Vec<[Vec<Duration>; 3]> = variants.iter().map(|_| Default::default()).collect();
    for _ in 0..runs {
        for (i, (_, file, compression, peer, _)) in variants.iter().enumerate() {
            let d = fresh("ours");
            let t = std::time::Instant::now();
            let input = std::io::BufReader::with_capacity(256 << 10, fs::File::open(file).unwrap());
            let dec = super::compression::Decoder::new(*compression, input).unwrap();
            let stats = unpack_layer(dec, &d).unwrap();
            times[i][0].push(t.elapsed());
            assert_eq!(stats.bytes, content);

            let root = fresh("store");
            let store = Store::open(&root).unwrap();
            let t = std::time::Instant::now();
            let l = store
                .import_layer(fs::File::open(file).unwrap(), None, None)
                .unwrap();
            times[i][1].push(t.elapsed());
            assert_eq!(l.diff_id.hex(), diff_hex);

            times[i][2].push(time_cmd(peer.clone()));
        }
    }
    let mut rows: Vec<(String, Duration, u64)> = Vec::new();
    for ((label, _, _, _, peer_label), t) in variants.iter().zip(times) {
        let [ours, imports, peers] = t;
        rows.push((
            format!("{label}: unpack_layer (decompress + unpack)"),
            median(ours),
            content,
        ));
        rows.push((
            format!("{label}: Store::import_layer (+ sha256 x2, blob stored, fsync)"),
            median(imports),
            content,
        ));
        rows.push((format!("{label}: {peer_label}"), median(peers), content));
    }
    let _ = fs::remove_dir_all(tmp.path().join("ours"));
    let _ = fs::remove_dir_all(tmp.path().join("peer"));
    let _ = fs::remove_dir_all(tmp.path().join("store"));
    println!("median of {runs} runs, MB/s of file content written:");
    for (label, d, bytes) in rows {
        println!(
            "  {label:<72} {:>8.0} ms {:>7.0} MB/s",
            d.as_secs_f64() * 1e3,
            bytes as f64 / 1048576.0 / d.as_secs_f64()
        );
    }
}
