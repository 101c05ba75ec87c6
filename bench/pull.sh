#!/usr/bin/env bash
# Pull of a small multi-layer image from a local docker-registry, side by side in one run:
#   berth pull (CLI → controller → agent → registry; layers verified, unpacked, image registered)
#   vs skopeo copy of the same image to an OCI directory (download and verify only, no unpack).
# docker pull cannot run here (no Docker engine on this kind of machine): reported as such.
# Before each berth run the image's content is removed from the daemon's store (`--prepare`), so
# every run downloads everything; skopeo's destination directory is removed likewise.
# Writes the section between <!-- pull:begin --> and <!-- pull:end --> of BENCHMARKS.md.
# Usage: bench/pull.sh [--runs N] [--no-build]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=30
build=1
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
# The daemon makes a bridge and an nftables table when it starts: run the whole benchmark (registry,
# skopeo, daemon) in a network namespace of its own.
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
. "$repo/bench/netns.sh"
log() { printf '==> %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for tool in hyperfine skopeo docker-registry python3 busybox zstd; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
berth="${CARGO_TARGET_DIR:-$repo/target}/release/berth"
if [ "$build" = 1 ]; then
    log "building berth (release)"
    (cd "$repo" && nice cargo build --release --bin berth --bin berth-shim --bin berthd)
fi

work=$(mktemp -d /tmp/berth-pull-bench-XXXXXX)
daemon_pid=
registry_pid=
cleanup() {
    set +e
    [ -n "$daemon_pid" ] && kill "$daemon_pid" && wait "$daemon_pid" 2>/dev/null
    [ -n "$registry_pid" ] && kill "$registry_pid" && wait "$registry_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The image: busybox (gzip), a zstd layer and a gzip layer, as an OCI layout.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for a in sh true cat ls; do ln -s busybox "$work/rootfs/bin/$a"; done
python3 - "$work" <<'PY'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
work = sys.argv[1]
layout = os.path.join(work, "layout")
os.makedirs(os.path.join(layout, "blobs/sha256"))
def blob(data, mt):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(layout, "blobs/sha256", d), "wb").write(data)
    return {"mediaType": mt, "digest": "sha256:" + d, "size": len(data)}
def tar_dir(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(path, arcname=".")
    return buf.getvalue()
def tar_files(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name); info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
tars = [tar_dir(os.path.join(work, "rootfs")),
        tar_files({"etc/app.conf": b"answer=42\n" * 200}),
        tar_files({"etc/motd": b"pulled\n"})]
layers = [
    blob(gzip.compress(tars[0], 6), "application/vnd.oci.image.layer.v1.tar+gzip"),
    blob(subprocess.run(["zstd", "-q", "-c"], input=tars[1], capture_output=True, check=True).stdout,
         "application/vnd.oci.image.layer.v1.tar+zstd"),
    blob(gzip.compress(tars[2], 6), "application/vnd.oci.image.layer.v1.tar+gzip"),
]
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = blob(json.dumps({"architecture": arch, "os": "linux",
    "config": {"Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]}}).encode(),
    "application/vnd.oci.image.config.v1+json")
manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": config, "layers": layers}).encode(), "application/vnd.oci.image.manifest.v1+json")
manifest["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
json.dump({"schemaVersion": 2, "manifests": [manifest]}, open(os.path.join(layout, "index.json"), "w"))
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
print(sum(l["size"] for l in layers), file=open(os.path.join(work, "size"), "w"))
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" 2>"$work/registry.log" &
registry_pid=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
image="127.0.0.1:$port/bench:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:v1" "docker://$image"

"$berth" daemon --root "$work/root" --listen 127.0.0.1:0 2>"$work/daemon.log" &
daemon_pid=$!
export BERTH_CONFIG="$work/root/client.toml"
for _ in $(seq 200); do "$berth" info >/dev/null 2>&1 && break; sleep 0.05; done
"$berth" pull -q "$image" >/dev/null

# No `rmi` on this branch: with no container using it, the image's content is removed from the
# store on disk (the daemon keeps no image state in memory).
forget="sh -c 'rm -rf $work/root/blobs/sha256/* $work/root/layers/* $work/root/images/references.json'"
log "pull: berth vs skopeo, $runs runs each"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/pull.json" \
    --prepare "$forget" \
    -n "berth pull" "$berth pull -q $image" \
    --prepare "rm -rf $work/oci-out" \
    -n "skopeo copy to an oci dir" "skopeo copy --quiet --src-tls-verify=false docker://$image oci:$work/oci-out:v1" >&2

PYTHONPATH="$repo/bench" python3 - "$repo/BENCHMARKS.md" "$work/pull.json" "$(cat "$work/size")" "$(skopeo --version)" \
    "$(git -C "$repo" rev-parse --short HEAD)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import datetime, json, os, platform, re, section, sys
(path, pj, size, skopeo_v, rev, cpus, load) = sys.argv[1:]
res = {r["command"]: r for r in json.load(open(pj))["results"]}
med = lambda r: sorted(r["times"])[len(r["times"]) // 2] * 1000
b = res["berth pull"]; s = res["skopeo copy to an oci dir"]
lines = [
    "<!-- pull:begin -->",
    "## Pull: a small multi-layer image from a local registry",
    "",
    f"Generated by `bench/pull.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, berth {rev}, {skopeo_v},",
    f"Debian's docker-registry (distribution 2.8) on 127.0.0.1, kernel {platform.release()}, {cpus} vCPUs,",
    f"load average {load} when it ended (the machine is shared: compare the ratio, not the milliseconds).",
    f"Image: 3 layers (busybox gzip, a zstd layer, a gzip layer), {int(size)/1024:.0f} KiB of blobs. Each berth",
    "run starts from an empty store (all layers downloaded, verified, unpacked, the image registered, every",
    "blob and layer fsynced before it becomes visible); each skopeo run from an empty OCI directory",
    "(download and verify only: skopeo does not unpack).",
    "docker pull cannot be measured here: no Docker engine runs on this kind of machine (the design notes",
    "measured 110 ms for docker pull and 282 ms for podman pull on this kind of machine).",
    "",
    "| what | median (ms) | mean ± σ (ms) | vs skopeo |",
    "|---|---:|---:|---:|",
    f"| berth pull (CLI → controller → agent → registry, over QUIC) | {med(b):.1f} | {b['mean']*1000:.1f} ± {b['stddev']*1000:.1f} | {med(b)/med(s):.2f}× |",
    f"| skopeo copy docker:// → oci: | {med(s):.1f} | {s['mean']*1000:.1f} ± {s['stddev']*1000:.1f} | 1.00× |",
    "<!-- pull:end -->",
]
section.write(path, "pull", "\n".join(lines))
PY
