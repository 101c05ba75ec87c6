#!/usr/bin/env bash
# Fresh Debian 12, as root: install what is missing, build Berth, and run the main job end to end —
# a busybox container from an OCI bundle, printing what it sees from inside its namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in busybox-static build-essential pkg-config; do
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
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in sh hostname id cat ls ps grep head; do
    ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
"$berth" runtime spec --bundle "$work/bundle"
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c",
    'echo "hello from $(hostname), I am pid $$ as $(id -un 2>/dev/null || id -u)";'
    ' echo "processes I can see:"; ps;'
    ' echo "CapEff: $(grep CapEff /proc/self/status | cut -f2)";'
    ' echo "/proc/sys is $(grep " /proc/sys " /proc/self/mounts | cut -d" " -f4 | cut -d, -f1)"']
json.dump(spec, open(path, "w"), indent=2)
PY
"$berth" runtime --root "$work/state" run --bundle "$work/bundle" "quickstart-$$"
