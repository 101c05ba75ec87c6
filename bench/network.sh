#!/usr/bin/env bash
# Networking costs, side by side in one run, inside a network namespace this script makes (the
# daemon's bridge, veths and nftables table never touch the host's network):
#   berth run --rm IMG /bin/true with --network none, the default bridge, and -p 8080:80;
#   TCP throughput (iperf3, 5 s) through a published port (127.0.0.1 and the namespace's own
#   address, both DNAT) against straight to the container's address;
#   daemon RSS before and after publishing 100 ports (no per-port process, unlike docker-proxy).
# iperf3 runs inside the busybox container from the host's binary: /usr and /lib are bind-mounted
# read-only into it (Debian's iperf3 is dynamically linked), with a tmpfs /tmp for its stream buffers.
# Writes the section between <!-- network:begin --> and <!-- network:end --> of BENCHMARKS.md.
# Usage: bench/network.sh [--runs N] [--no-build]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=40
build=1
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
log() { printf '==> %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v iperf3 >/dev/null || apt-get install -y -q iperf3 >&2
for tool in hyperfine python3 busybox iperf3 ip nsenter; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# The namespace's own "host address", on a veth pair inside it.
bench_netns_setup() {
    local ns=$1
    ip -n "$ns" link add bhost0 type veth peer name bhost1
    ip -n "$ns" addr add 10.213.0.1/24 dev bhost0
    ip -n "$ns" link set bhost0 up
}
. "$repo/bench/netns.sh"

berth="${CARGO_TARGET_DIR:-$repo/target}/release/berth"
if [ "$build" = 1 ]; then
    log "building berth (release)"
    (cd "$repo" && nice cargo build --release --bin berth --bin berth-shim --bin berthd)
fi

work=$(mktemp -d /tmp/berth-net-bench-XXXXXX)
daemon_pid=
cleanup() {
    set +e
    if [ -n "$daemon_pid" ]; then
        ids=$("$berth" ps -aq 2>/dev/null)
        [ -n "$ids" ] && "$berth" rm -f $ids >/dev/null 2>&1
        kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/usr" "$work/rootfs/lib" "$work/rootfs/lib64"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$work/rootfs/bin/$a"; done
tar -C "$work/rootfs" -cf "$work/busybox.tar" .

"$berth" daemon --root "$work/root" --listen 127.0.0.1:0 2>"$work/daemon.log" &
daemon_pid=$!
export BERTH_CONFIG="$work/root/client.toml"
for _ in $(seq 200); do "$berth" info >/dev/null 2>&1 && break; sleep 0.05; done
"$berth" import "$work/busybox.tar" busybox:latest >/dev/null
"$berth" run --rm -p 8080:80 busybox /bin/true

log "latency: run --rm /bin/true with each network"
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/run.json" \
    -n "none" "$berth run --rm --network none busybox /bin/true" \
    -n "bridge" "$berth run --rm busybox /bin/true" \
    -n "bridge -p 8080:80" "$berth run --rm -p 8080:80 busybox /bin/true" >&2

log "throughput: iperf3 through a published port vs straight to the container"
"$berth" run -d --name iperf -p 5201:5201 --tmpfs /tmp -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro \
    busybox /usr/bin/iperf3 -s >/dev/null
cip=$("$berth" inspect -f '{{.NetworkSettings.IPAddress}}' iperf)
for _ in $(seq 100); do timeout 1 bash -c "</dev/tcp/$cip/5201" 2>/dev/null && break; sleep 0.1; done
gbits() { iperf3 -c "$1" -p 5201 -t 5 -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)'; }
direct=$(gbits "$cip")
via_lo=$(gbits 127.0.0.1)
via_host=$(gbits 10.213.0.1)
"$berth" rm -f iperf >/dev/null

log "memory: daemon RSS before and after publishing 100 ports"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
rss0=$(rss_kb "$daemon_pid")
"$berth" run -d --name ports -p 20000-20099:20000-20099 busybox sleep 1000 >/dev/null
rss1=$(rss_kb "$daemon_pid")
procs=$(pgrep -c -f 'proxy' || true)
"$berth" rm -f ports >/dev/null

PYTHONPATH="$repo/bench" python3 - "$repo/BENCHMARKS.md" "$work/run.json" "$direct" "$via_lo" "$via_host" "$rss0" "$rss1" \
    "$procs" "$(iperf3 --version | head -1)" "$(git -C "$repo" rev-parse --short HEAD)" <<'PY'
import json, sys, datetime, platform, re, section, os
(path, runj, direct, via_lo, via_host, rss0, rss1, procs, iperf_v, rev) = sys.argv[1:]
res = {r["command"]: r for r in json.load(open(runj))["results"]}
med = lambda r: sorted(r["times"])[len(r["times"]) // 2] * 1000
none, br, pub = res["none"], res["bridge"], res["bridge -p 8080:80"]
d, lo, ho = float(direct), float(via_lo), float(via_host)
row = lambda name, r: f"| {name} | {med(r):.1f} | {r['mean']*1000:.1f} ± {r['stddev']*1000:.1f} | {med(r)/med(none):.2f}× |"
lines = [
    "<!-- network:begin -->",
    "## Networking: bridge, published ports, throughput",
    "",
    f"Generated by `bench/network.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, berth {rev}, kernel {platform.release()}, {iperf_v};",
    "the daemon runs in a network namespace the script made. Docker cannot run on this kind of machine (no engine):",
    "its figures are the design notes' from this kind of machine: `run --rm -p` 332 ms, bridge 278 ms, `--network none` 197 ms",
    "(1.69× for a published port), and `ip` needs 33–80 ms to create, move and delete one veth. The machine is shared",
    f"(2 vCPU, load average {os.getloadavg()[0]:.2f} at the end): absolute times drift between runs, compare the ratios.",
    "",
    "| berth run --rm busybox /bin/true | median (ms) | mean ± σ (ms) | vs none |",
    "|---|---:|---:|---:|",
    row("--network none", none),
    row("default bridge", br),
    row("-p 8080:80", pub),
    "",
    f"Goal: a published port within 2× of `--network none`: {'met' if med(pub) <= 2 * med(none) else 'not met'}. How: the veth is created with its host end",
    "directly in the daemon's namespace (no move), through rtnetlink; the port is one element of an nftables map. A run",
    "without ports leaves the table alone; one with ports pays two `nft -f` transactions that add and remove its map",
    "elements, each an exec of `nft` plus the kernel's commit, run while the namespace and veth are made or removed.",
    "",
    "| iperf3 TCP, 5 s | Gbit/s | vs direct |",
    "|---|---:|---:|",
    f"| straight to the container's address (veth + bridge) | {d:.1f} | 1.00 |",
    f"| published port via 127.0.0.1 (DNAT, route_localnet, masquerade) | {lo:.1f} | {lo/d:.2f} |",
    f"| published port via the host's own address (DNAT) | {ho:.1f} | {ho/d:.2f} |",
    "",
    "Goal: ≥ 90 % of direct (kernel DNAT, no userland proxy).",
    f"- Daemon RSS {int(rss0)/1024:.1f} MB before and {int(rss1)/1024:.1f} MB after publishing 100 ports ({(int(rss1)-int(rss0))/100:.1f} kB per port; docker-proxy ≈ 1.2 MB per port); proxy processes: {procs}.",
    "<!-- network:end -->",
]
section.write(path, "network", "\n".join(lines))
PY
