//! What a pull relies on from the store: layers unpacked out of order (a child before its parent,
//! as parallel transfers finish) and a received manifest registered byte for byte.

use std::fs;

use crate::image::{Digest, Reference, Store};

fn layer(path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn layers_arrive_out_of_order_and_the_manifest_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (base, top) = (layer("base.txt", b"base\n"), layer("top.txt", b"top\n"));
    let diff_ids = [Digest::of(&base), Digest::of(&top)];
    let chains = Digest::chain_ids(&diff_ids);

    // The top layer finishes first: its parent is not there yet.
    let t = store
        .import_layer_onto(&top[..], Some(&chains[0]), Some(&diff_ids[1]))
        .unwrap();
    assert_eq!(t.chain_id, chains[1]);
    assert!(
        store
            .import_layer(&top[..], Some(&chains[0]), None)
            .is_err(),
        "import_layer still checks"
    );
    store.import_layer_onto(&base[..], None, None).unwrap();

    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
        diff_ids[0], diff_ids[1]
    );
    let config = store.write_blob_bytes(config.as_bytes()).unwrap();
    // Registry-style JSON: key order and spacing our serializer would not produce.
    let manifest = format!(
        "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n  \"config\": {{\"mediaType\": \"application/vnd.docker.container.image.v1+json\", \"size\": {}, \"digest\": \"{}\"}},\n  \"layers\": [\n    {{\"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar\", \"size\": {}, \"digest\": \"{}\"}},\n    {{\"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar\", \"size\": {}, \"digest\": \"{}\"}}\n  ]\n}}\n",
        config.size, config.digest, base.len(), diff_ids[0], top.len(), diff_ids[1]
    );
    let r = Reference::parse("127.0.0.1:5000/app:1").unwrap();
    let image = store.add_image_manifest(manifest.as_bytes(), &[r]).unwrap();
    assert_eq!(image.manifest_digest, Digest::of(manifest.as_bytes()));
    assert_eq!(
        store.read_blob(&image.manifest_digest).unwrap(),
        manifest.as_bytes()
    );
    let lowers = store.lowerdirs(&store.resolve("127.0.0.1:5000/app:1").unwrap());
    assert_eq!(fs::read(lowers[0].join("top.txt")).unwrap(), b"top\n");
    assert_eq!(fs::read(lowers[1].join("base.txt")).unwrap(), b"base\n");
}

#[test]
fn a_manifest_whose_blobs_are_missing_is_not_registered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let missing = Digest::of(b"never stored");
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,"digest":"{missing}"}},"layers":[]}}"#
    );
    let r = Reference::parse("127.0.0.1:5000/app:1").unwrap();
    let e = store
        .add_image_manifest(manifest.as_bytes(), &[r])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&missing.to_string()), "{e}");
    assert!(store.list().unwrap().is_empty());
    assert!(!store.has_blob(&Digest::of(manifest.as_bytes())));
}
