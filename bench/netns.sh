# Sourced by the benchmarks whose daemon makes a bridge and an nftables table: re-runs the calling
# script (its "${args[@]}") inside a fresh network namespace with loopback up, deleted afterwards
# whatever happens, so the host's network is never touched. A caller may define
# `bench_netns_setup NS` to add to the namespace first.
if [ -z "${BERTH_BENCH_NETNS:-}" ]; then
    ns="berth-bench-$$"
    ip netns add "$ns"
    trap 'ip netns delete "$ns"' EXIT
    ip -n "$ns" link set lo up
    if declare -F bench_netns_setup >/dev/null; then
        bench_netns_setup "$ns"
    fi
    BERTH_BENCH_NETNS=$ns nsenter --net="/run/netns/$ns" "$0" "${args[@]}"
    exit $?
fi
