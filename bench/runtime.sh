#!/usr/bin/env bash
# Benchmarks container start-up of `berth runtime` against runc and crun.
#
# Usage: bench/runtime.sh [options]
#   --runtimes "berth runc crun"  runtimes to measure (default: all three)
#   --runs N / --warmup N         hyperfine runs / warm-up runs (default 100 / 5)
#   --keep-going                  a runtime that fails is reported as failed
#                                 instead of aborting the script
#   --no-split                    skip the create / start / delete split
#   --no-build                    use the existing release binary
#   --output FILE                 markdown file to update (default: BENCHMARKS.md
#                                 at the repository root)
#
# Each runtime runs the same busybox bundle (config.json from `runc spec`,
# terminal off, args ["/bin/true"]). The results go into the section between
# <!-- runtime:begin --> and <!-- runtime:end --> of the output file; the
# rest of the file is kept. Needs root, hyperfine, runc, crun, busybox-static
# and python3.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runtimes="berth runc crun"
runs=100
warmup=5
keep_going=0
split=1
build=1
output="$repo/BENCHMARKS.md"

while [ $# -gt 0 ]; do
    case "$1" in
    --runtimes) runtimes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --keep-going) keep_going=1; shift ;;
    --no-split) split=0; shift ;;
    --no-build) build=0; shift ;;
    --output) output=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

log() { printf '==> %s\n' "$*" >&2; }

for tool in hyperfine python3 unshare; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "busybox-static is required (/bin/busybox)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

target=${CARGO_TARGET_DIR:-$repo/target}
berth="$target/release/berth"
if [[ " $runtimes " == *" berth "* ]]; then
    if [ "$build" = 1 ]; then
        log "building berth (release)"
        (cd "$repo" && nice cargo build --release --bin berth --bin berth-shim --bin berthd)
    fi
fi

work=$(mktemp -d /tmp/berth-bench-XXXXXX)
mounted_hugetlb=0
declare -A prefix

cleanup() {
    set +e
    for rt in "${!prefix[@]}"; do
        for id in bench-$rt split-$rt sanity-$rt; do
            ${prefix[$rt]} --root "$work/root-$rt" delete --force "$id" >/dev/null 2>&1
        done
    done
    if [ "$mounted_hugetlb" = 1 ]; then
        log "unmounting the hugetlb hierarchy this script mounted"
        umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# crun refuses a hybrid (v1) cgroup layout without the hugetlb hierarchy.
if [[ " $runtimes " == *" crun "* ]] &&
    [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] &&
    ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo; then
    log "mounting the hugetlb v1 hierarchy for crun"
    mkdir -p /sys/fs/cgroup/hugetlb
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    mounted_hugetlb=1
fi

log "preparing the bundle in $work/bundle"
bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev" \
    "$bundle/rootfs/sys" "$bundle/rootfs/tmp"
cp "$busybox" "$bundle/rootfs/bin/busybox"
for applet in true sh; do ln -s busybox "$bundle/rootfs/bin/$applet"; done
runc spec --bundle "$bundle"
python3 - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
with open(path) as f:
    c = json.load(f)
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
with open(path, "w") as f:
    json.dump(c, f, indent=2)
EOF

results="$work/results"
mkdir -p "$results"
declare -A status

for rt in $runtimes; do
    case "$rt" in
    berth) prefix[$rt]="$berth runtime"; bin=$berth ;;
    *) prefix[$rt]=$rt; bin=$(command -v "$rt" || true) ;;
    esac
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        status[$rt]="not installed"
        [ "$keep_going" = 1 ] || { echo "$rt: not installed" >&2; exit 1; }
        continue
    fi
    root="$work/root-$rt"
    mkdir -p "$root"
    p="${prefix[$rt]} --root $root"
    log "$rt: sanity run"
    if ! $p run --bundle "$bundle" "sanity-$rt" </dev/null; then
        status[$rt]="failed: run"
        [ "$keep_going" = 1 ] || { echo "$rt: run failed" >&2; exit 1; }
        continue
    fi
    if $p state "sanity-$rt" >/dev/null 2>&1; then
        status[$rt]="failed: run left the container behind"
        [ "$keep_going" = 1 ] || { echo "$rt: run did not delete the container" >&2; exit 1; }
        continue
    fi
    status[$rt]=ok

    log "$rt: run"
    if ! hyperfine -N --warmup "$warmup" --runs "$runs" --style basic \
        --export-json "$results/run-$rt.json" -n "$rt" \
        "$p run --bundle $bundle bench-$rt" </dev/null; then
        status[$rt]="failed: hyperfine run"
        [ "$keep_going" = 1 ] || exit 1
        continue
    fi

    if [ "$split" = 1 ]; then
        id=split-$rt
        del="$p delete --force $id >/dev/null 2>&1 || true"
        for phase in create start delete; do
            case $phase in
            create) prep="$del"; cmd="$p create --bundle $bundle $id" ;;
            start) prep="$del; $p create --bundle $bundle $id"; cmd="$p start $id" ;;
            delete) prep="$del; $p create --bundle $bundle $id"; cmd="$p delete --force $id" ;;
            esac
            log "$rt: $phase"
            if ! hyperfine -N --warmup "$warmup" --runs "$runs" --style basic \
                --prepare "bash -c '$prep'" --cleanup "bash -c '$del'" \
                --export-json "$results/$phase-$rt.json" -n "$rt" "$cmd" </dev/null; then
                status[$rt]="failed: $phase"
                [ "$keep_going" = 1 ] || exit 1
                break
            fi
        done
    fi
done

log "baseline: unshare"
hyperfine -N --warmup "$warmup" --runs "$runs" --style basic \
    --export-json "$results/run-baseline.json" \
    -n "unshare --mount --uts --ipc --net --pid --fork /bin/true (baseline)" \
    "unshare --mount --uts --ipc --net --pid --fork /bin/true" </dev/null

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
version() { "$@" 2>/dev/null | head -n1 || echo "n/a"; }
berth_version="n/a"
if [ -x "$berth" ]; then
    berth_version="$(version "$berth" --version) ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
fi
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
    echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel=$(uname -sr)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "cgroups=$(stat -fc %T /sys/fs/cgroup | sed 's/cgroup2fs/v2 (unified)/; s/tmpfs/v1 (hybrid)/')"
    echo "berth=$berth_version"
    echo "runc=$(version runc --version)"
    echo "crun=$(version crun --version)"
    echo "hyperfine=$(version hyperfine --version)"
    echo "runs=$runs"
    echo "warmup=$warmup"
    for rt in $runtimes; do echo "status.$rt=${status[$rt]:-skipped}"; done
} >"$results/meta.txt"

PYTHONPATH="$repo/bench" python3 - "$results" "$output" "$runtimes" <<'EOF'
import json, os, statistics, sys
import section as bench_section

results, output, runtimes = sys.argv[1], sys.argv[2], sys.argv[3].split()
meta = {}
with open(os.path.join(results, "meta.txt")) as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("=")
        meta[k] = v

def load(phase, who):
    p = os.path.join(results, f"{phase}-{who}.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)["results"][0]

ms = lambda s: s * 1000.0
rows = []
for phase in ["run", "create", "start", "delete"]:
    who = runtimes + (["baseline"] if phase == "run" else [])
    data = {w: load(phase, w) for w in who}
    if not any(data.values()):
        continue
    ref = data.get("crun")
    for w in who:
        r = data[w]
        label = f"`{r['command']}`" if w == "baseline" and r else w
        if r is None:
            st = meta.get(f"status.{w}", "skipped")
            if w != "baseline":
                rows.append(f"| {phase} | {w} | {st} | | | |")
            continue
        median = statistics.median(r["times"])
        ratio = (f"{median / statistics.median(ref['times']):.2f}×" if ref else "n/a")
        rows.append(
            f"| {phase} | {label} | {ms(median):.2f} | "
            f"{ms(r['mean']):.2f} ± {ms(r['stddev'] or 0):.2f} | "
            f"{ms(r['min']):.2f} | {ratio} |"
        )

section = f"""<!-- runtime:begin -->
## Runtime start-up: `berth runtime` vs runc vs crun

Generated by `bench/runtime.sh` on {meta['date']}.

- Machine: {meta['cpu']}, {meta['memory']}; {meta['os']}; kernel {meta['kernel']}; cgroups {meta['cgroups']}
- Versions: {meta['berth']}; {meta['runc']}; {meta['crun']}; {meta['hyperfine']}
- Method: hyperfine `-N`, {meta['warmup']} warm-up runs, {meta['runs']} runs per command. One busybox bundle
  (config.json from `runc spec`, terminal off, args `["/bin/true"]`). `run` is the whole life cycle
  (create, start, wait, delete); `create`, `start` and `delete --force` (of a created container) are
  timed alone, the other steps being done in hyperfine's `--prepare`.

| operation | runtime | median (ms) | mean ± σ (ms) | min (ms) | median vs crun |
|---|---|---:|---:|---:|---:|
""" + "\n".join(rows) + "\n<!-- runtime:end -->"

bench_section.write(output, "runtime", section)
EOF
log "wrote $output"
