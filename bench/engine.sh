#!/usr/bin/env bash
# End-to-end engine latency and memory, side by side in one run:
#   berth run --rm busybox /bin/true (daemon, QUIC, monitor, overlay)  vs  crun run of a bundle;
#   docker/podman when their daemons can run here (not on this kind of machine: reported as such).
#   100 x `berth run -d` then `rm -f` of all; daemon RSS idle and with the containers running; each
#   monitor's PSS.
# Writes the section between <!-- engine:begin --> and <!-- engine:end --> of BENCHMARKS.md.
# Usage: bench/engine.sh [--runs N] [--rounds R] [--containers N] [--no-build]
# The runs are split into R rounds, each timing berth then crun, so that both sample the same
# phases of a noisy host (one block of each puts them minutes apart).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=50
rounds=5
containers=100
build=1
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --containers) containers=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
log() { printf '==> %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
# The daemon makes a bridge and an nftables table: run it all in a network namespace of its own.
. "$repo/bench/netns.sh"
for tool in hyperfine crun python3 busybox; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
berth="${CARGO_TARGET_DIR:-$repo/target}/release/berth"
if [ "$build" = 1 ]; then
    log "building berth (release)"
    (cd "$repo" && nice cargo build --release --bin berth --bin berth-shim --bin berthd)
fi

work=$(mktemp -d /tmp/berth-engine-bench-XXXXXX)
daemon_pid=
mounted_hugetlb=0
cleanup() {
    set +e
    if [ -n "$daemon_pid" ]; then
        ids=$("$berth" ps -aq 2>/dev/null)
        [ -n "$ids" ] && "$berth" rm -f $ids >/dev/null 2>&1
        kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
    fi
    [ "$mounted_hugetlb" = 1 ] && umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
    rm -rf "$work"
}
trap cleanup EXIT

# crun refuses this hybrid cgroup layout unless hugetlb is on v1 too.
if [ -d /sys/fs/cgroup/unified ] && [ ! -d /sys/fs/cgroup/hugetlb ]; then
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    mounted_hugetlb=1
fi

mkdir -p "$work/bundle/rootfs/bin"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$work/bundle/rootfs/bin/$a"; done
(cd "$work/bundle" && crun spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False; c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY
tar -C "$work/bundle/rootfs" -cf "$work/busybox.tar" .

"$berth" daemon --root "$work/root" --listen 127.0.0.1:0 2>"$work/daemon.log" &
daemon_pid=$!
export BERTH_CONFIG="$work/root/client.toml"
for _ in $(seq 200); do "$berth" info >/dev/null 2>&1 && break; sleep 0.05; done
"$berth" import "$work/busybox.tar" busybox:latest >/dev/null
"$berth" run --rm --network none busybox /bin/true

log "latency: run --rm /bin/true, $rounds rounds"
per_round=$(( (runs + rounds - 1) / rounds ))
for r in $(seq "$rounds"); do
    hyperfine -N --warmup 5 --runs "$per_round" --export-json "$work/run-$r.json" \
        -n "berth run --rm --network none" "$berth run --rm --network none busybox /bin/true" \
        -n "crun run (bundle)" "crun --root $work/crun run --bundle $work/bundle bench-crun" >&2
done

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
idle_rss=$(rss_kb "$daemon_pid")

log "$containers x run -d, then rm -f"
start=$(date +%s.%N)
for i in $(seq "$containers"); do "$berth" run -d --network none busybox sleep 1000 >/dev/null; done
started=$(date +%s.%N)
busy_rss=$(rss_kb "$daemon_pid")
# The containers' monitors, as their live.json records them (the spare monitor waits for none).
monitor_pids=$(python3 -c 'import glob, json, sys
for f in glob.glob(sys.argv[1] + "/*/live.json"):
    m = json.load(open(f)).get("monitor")
    if m:
        print(m[0])' "$work/root/containers")
pss=$(for p in $monitor_pids; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"; done \
    | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}')
monitors=$(echo "$monitor_pids" | grep -c . || true)
"$berth" rm -f $("$berth" ps -aq) >/dev/null
removed=$(date +%s.%N)

PYTHONPATH="$repo/bench" python3 - "$repo/BENCHMARKS.md" "$work" "$containers" "$start" "$started" "$removed" \
    "$idle_rss" "$busy_rss" "$pss" "$monitors" "$(crun --version | head -1)" "$(git -C "$repo" rev-parse --short HEAD)" <<'PY'
import glob, json, sys, datetime, platform, re, section, statistics
(path, work, n, t0, t1, t2, idle, busy, pss, monitors, crun_v, rev) = sys.argv[1:]
rounds = [{r["command"]: r["times"] for r in json.load(open(f))["results"]}
          for f in sorted(glob.glob(work + "/run-*.json"))]
B, C = "berth run --rm --network none", "crun run (bundle)"
med = lambda t: statistics.median(t) * 1000
stats = lambda t: f"{statistics.mean(t)*1000:.1f} ± {statistics.pstdev(t)*1000:.1f}"
b = [t for r in rounds for t in r[B]]; c = [t for r in rounds for t in r[C]]
per_round = [med(r[B]) / med(r[C]) for r in rounds]
lines = [
    "<!-- engine:begin -->",
    "## Engine: `berth run` end to end, many containers, memory",
    "",
    f"Generated by `bench/engine.sh` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, berth {rev}, {crun_v}, kernel {platform.release()}.",
    "Docker and podman cannot run here: no Docker engine runs on this kind of machine, and Debian's podman 4.3.1",
    "fails every `run` (crun/runc: setrlimit RLIMIT_NOFILE/RLIMIT_NPROC: EPERM, as this sandbox's root lacks",
    "CAP_SYS_RESOURCE). Their figures are the ones the design notes measured on this kind of machine: docker",
    "197 ms, podman 126 ms for `run --rm --network none`.",
    "",
    "| what | median (ms) | mean ± σ (ms) | vs crun |",
    "|---|---:|---:|---:|",
    f"| berth run --rm --network none busybox /bin/true (CLI → controller → agent → monitor → runtime, over QUIC) | {med(b):.1f} | {stats(b)} | {med(b)/med(c):.2f}× |",
    f"| crun run of a bundle | {med(c):.1f} | {stats(c)} | 1.00× |",
    "",
    f"{len(b)} runs of each in {len(rounds)} rounds (berth, then crun); berth/crun median by round: "
    + ", ".join(f"{x:.2f}×" for x in per_round) + ".",
    "",
    f"- {n} × `berth run -d sleep`: {float(t1)-float(t0):.2f} s; `rm -f` of all: {float(t2)-float(t1):.2f} s (docker: ≈ 4 s for 20 starts here).",
    f"- Daemon (controller + agent) RSS: {int(idle)/1024:.1f} MB idle, {int(busy)/1024:.1f} MB with {n} containers running (dockerd + containerd ≈ 134 MB idle).",
    f"- Monitor (`berth-shim`) PSS, median of {monitors}: {int(pss)/1024:.2f} MB (conmon 0.41 MB, containerd-shim-runc-v2 2.9 MB).",
    "<!-- engine:end -->",
]
section.write(path, "engine", "\n".join(lines))
PY
