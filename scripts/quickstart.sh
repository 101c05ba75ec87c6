#!/usr/bin/env bash
# Fresh Debian 12, as root: install what is missing, build Berth, and run the main job end to end —
# a busybox container from an OCI bundle, printing what it sees from inside its namespaces, then the
# engine: busybox httpd in a container with `-p 8080:80`, answering curl on the host.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in busybox-static build-essential pkg-config python3 tar curl nftables iproute2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null || { echo "quickstart: cargo is missing: install Rust (rustup) first" >&2; exit 1; }

cargo build --release --quiet
berth=$PWD/target/release/berth

work=$(mktemp -d /tmp/berth-quickstart.XXXXXX)
daemon_pid=
# Only a bridge and table this run creates are removed at the end (another berth daemon may own them).
own_network=1
if ip link show berth0 >/dev/null 2>&1 || nft list table ip berth >/dev/null 2>&1; then
    own_network=0
fi
cleanup() {
    if [ -n "$daemon_pid" ]; then
        "$berth" --config "$work/root/client.toml" rm -f quickstart web >/dev/null 2>&1 || true
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
        # The demo daemon's bridge and nftables table go with it.
        if [ "$own_network" = 1 ]; then
            ip link delete berth0 2>/dev/null || true
            nft delete table ip berth 2>/dev/null || true
        fi
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# 1. The OCI runtime alone: a busybox bundle, run like runc would.
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in sh hostname id cat ls ps grep head cut sleep date httpd; do
    ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
"$berth" runtime spec --bundle "$work/bundle"
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c",
    'echo "hello from $(hostname), I am pid $$ as uid $(id -u)";'
    ' echo "processes I can see:"; ps;'
    ' echo "CapEff: $(grep CapEff /proc/self/status | cut -f2)"']
json.dump(spec, open(path, "w"), indent=2)
PY
echo "== berth runtime run (an OCI bundle, no daemon)"
"$berth" runtime --root "$work/state" run --bundle "$work/bundle" "quickstart-$$"

# 2. The engine: a daemon (controller + agent over QUIC/mTLS), an image made from the bundle's rootfs,
#    and a container run, listed, logged, stopped and removed through it.
"$berth" daemon --root "$work/root" --listen 127.0.0.1:0 2>"$work/daemon.log" &
daemon_pid=$!
export BERTH_CONFIG="$work/root/client.toml"
for _ in $(seq 100); do
    "$berth" info >/dev/null 2>&1 && break
    sleep 0.1
done
mkdir -p "$work/bundle/rootfs/www"
echo "hello from a berth container" >"$work/bundle/rootfs/www/index.html"
tar -C "$work/bundle/rootfs" -cf "$work/busybox.tar" .
echo "== berth import"
"$berth" import "$work/busybox.tar" busybox:latest
echo "== berth run -d"
"$berth" run -d --name quickstart busybox sh -c 'while true; do echo "tick $(date +%T) from $(hostname)"; sleep 1; done'
sleep 1.5
echo "== berth ps"
"$berth" ps
echo "== berth logs"
"$berth" logs quickstart
echo "== berth stop / rm"
"$berth" stop -t 1 quickstart
"$berth" rm quickstart
"$berth" ps -a

# 3. Networking: busybox httpd in a container on the default bridge, its port 80 published on the
#    host's 8080 (kernel DNAT in Berth's own nftables table), answering curl on the host.
echo "== berth run -d -p 8080:80 (httpd)"
"$berth" run -d --name web -p 8080:80 busybox httpd -f -p 80 -h /www
"$berth" port web
answered=0
for _ in $(seq 50); do
    if curl -fsS http://127.0.0.1:8080/ 2>/dev/null; then
        answered=1
        break
    fi
    sleep 0.1
done
if [ "$answered" = 0 ]; then
    echo "quickstart: http://127.0.0.1:8080/ did not answer" >&2
    exit 1
fi
echo "== curl http://127.0.0.1:8080/ answered; berth ps"
"$berth" ps
"$berth" rm -f web
