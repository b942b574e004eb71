#!/usr/bin/env bash
# Benchmarks of the tree (docs/PERFORMANCE.md, "A cluster on one machine"): local clusters
# made with `cascade cluster up`, measured with `cascade loadtest`. Every run is bounded:
# each loadtest lasts DURATION seconds of window plus its ramp and settle.
#
#   loadtest/cluster.sh hops       # added one-way delay per QUIC hop: origin vs edge viewers
#   loadtest/cluster.sh links      # origin CPU per packet: K relay links vs K*3 viewers
#   loadtest/cluster.sh thousand   # 1,000 viewers over a 5-process cluster vs one node
#   loadtest/cluster.sh all        # the three (about 6 minutes)
#
# Prints each loadtest's JSON report, one line each, prefixed by the run's name, then a
# summary line per measurement. Needs a release build (`cargo build --release --bin
# cascade`); CASCADE=path overrides the binary. RUNS (default 3) repeats hops and links.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CASCADE=${CASCADE:-${CARGO_TARGET_DIR:-$root/target}/release/cascade}
[[ -x $CASCADE ]] || { echo "no $CASCADE: cargo build --release --bin cascade" >&2; exit 2; }
DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
# Viewers of the `thousand` comparison.
VIEWERS=${VIEWERS:-1000}
# Edges a relay-link run uses (each an origin child).
LINKS=${LINKS:-8}

work=$(mktemp -d)
up_pid=
stop_cluster() {
    if [[ -n $up_pid ]]; then
        kill -TERM "$up_pid" 2>/dev/null || true
        wait "$up_pid" 2>/dev/null || true
        up_pid=
    fi
}
trap 'stop_cluster; rm -rf "$work"' EXIT

# start_cluster NODES RELAYS: a cluster whose listing is in $work/nodes.json. One machine
# makes every viewer: the per-address caps are off.
start_cluster() {
    local dir=$work/c$RANDOM
    "$CASCADE" cluster up --nodes "$1" --relays "$2" --json --dir "$dir" -- \
        --max-pending-per-address 0 --max-viewers-per-address 0 \
        >"$work/up.out" 2>"$work/up.err" &
    up_pid=$!
    for _ in $(seq 300); do
        grep -q '^cluster up:' "$work/up.out" 2>/dev/null && break
        kill -0 "$up_pid" 2>/dev/null || { cat "$work/up.err" >&2; exit 1; }
        sleep 0.1
    done
    grep -q '^cluster up:' "$work/up.out" || { echo "cluster did not start" >&2; exit 1; }
    head -1 "$work/up.out" >"$work/nodes.json"
}

# url ROLE|NAME...: the HTTP base URLs of the named nodes (or of every node of a role),
# comma-separated.
url() {
    python3 - "$work/nodes.json" "$@" <<'EOF'
import json, sys
nodes = json.load(open(sys.argv[1]))["nodes"]
want = sys.argv[2:]
print(",".join(n["http"] for n in nodes if n["name"] in want or n["role"] in want))
EOF
}

# lt NAME ARGS...: one loadtest, its JSON report on one line prefixed by NAME.
lt() {
    local name=$1
    shift
    "$CASCADE" loadtest --json --quiet --ramp 100 --duration "$DURATION" "$@" >"$work/r.json"
    echo "$name $(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$work/r.json")"
}

field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"r": r}))' "$work/r.json" "$1"; }

hops() {
    # origin -> relay1 -> edge1: viewers on the origin (0 relay hops) and on the edge (2).
    start_cluster 3 1
    local origin edge
    origin=$(url origin)
    edge=$(url edge1)
    for run in $(seq "$RUNS"); do
        lt "hops-$run" --target "$origin" --viewer-targets "$origin,$edge" --viewers 20 --layers low:100
        python3 - "$work/r.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
o, e = r["by_target"]
for q in ("p50", "p95", "p99"):
    d = e["delay_ms"][q] - o["delay_ms"][q]
    print(f"  {q}: origin {o['delay_ms'][q]:.2f} ms, edge {e['delay_ms'][q]:.2f} ms, "
          f"added {d:.2f} ms for 2 hops = {d / 2:.2f} ms per hop")
EOF
    done
    stop_cluster
}

links() {
    # An origin with LINKS edges as children, each with 3 viewers (low, mid, high), so each
    # relay link carries every layer; then the same origin with the 3*LINKS viewers itself.
    start_cluster $((LINKS + 1)) 0
    local origin edges n=$((LINKS * 3))
    origin=$(url origin)
    edges=$(url edge)
    for run in $(seq "$RUNS"); do
        lt "links-idle-$run" --target "$origin" --viewers 0
        local idle
        idle=$(field 'r["node_cpu_cores"]')
        lt "links-relay-$run" --target "$origin" --viewer-targets "$edges" --viewers "$n" \
            --layers low:1,mid:1,high:1
        python3 - "$work/r.json" "$idle" relay <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); idle = float(sys.argv[2])
pps = r["relay_forwarded_pps"]
cpu = r["node_cpu_cores"]
print(f"  relay links: origin {cpu:.3f} cores (idle with the publisher {idle:.3f}), "
      f"{pps:.0f} packets/s to children: {(cpu - idle) / pps * 1e6:.2f} us per packet "
      f"(all in: {cpu / pps * 1e6:.2f})")
EOF
        sleep 4 # the edges let the stream go (RELEASE_GRACE, 3 s)
        lt "links-viewers-$run" --target "$origin" --viewers "$n" --layers low:1,mid:1,high:1
        python3 - "$work/r.json" "$idle" viewers <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); idle = float(sys.argv[2])
pps = r["forwarded_pps"]
cpu = r["node_cpu_cores"]
print(f"  viewers: origin {cpu:.3f} cores, {pps:.0f} packets/s to viewers: "
      f"{(cpu - idle) / pps * 1e6:.2f} us per packet (all in: {cpu / pps * 1e6:.2f})")
EOF
    done
    stop_cluster
}

thousand() {
    # 1,000 (VIEWERS) low-layer viewers spread over 3 edges (origin -> relay1 -> edge1..3), then on
    # one node; the same layer mix and window as the one-node figures.
    start_cluster 5 1
    local origin edges relays
    origin=$(url origin)
    edges=$(url edge)
    relays=$(url relay)
    lt "thousand-cluster" --target "$origin" --viewer-targets "$edges" --cpu-of "$relays" \
        --viewers "$VIEWERS" --layers low:100
    local cluster_us
    cluster_us=$(field 'r["cpu_us_per_delivered"]')
    python3 - "$work/r.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  cluster: {r['connected']}/{r['viewers']} connected, loss {r['loss_pct']:.3f} %, "
      f"join p95 {r['join_ms']['p95']:.0f} ms, delay p95 {r['delay_ms']['p95']:.1f} ms, "
      f"CPU {r['cluster_cpu_cores']:.2f} cores over {r['cluster_nodes']} processes, "
      f"{r['delivered_pps']:.0f} packets/s delivered: {r['cpu_us_per_delivered']:.2f} us each")
EOF
    stop_cluster
    start_cluster 1 0
    origin=$(url origin)
    lt "thousand-node" --target "$origin" --viewers "$VIEWERS" --layers low:100
    python3 - "$work/r.json" "$cluster_us" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); cluster_us = float(sys.argv[2])
us = r["cpu_us_per_delivered"]
print(f"  one node: {r['connected']}/{r['viewers']} connected, loss {r['loss_pct']:.3f} %, "
      f"join p95 {r['join_ms']['p95']:.0f} ms, delay p95 {r['delay_ms']['p95']:.1f} ms, "
      f"CPU {r['node_cpu_cores']:.2f} cores, {r['delivered_pps']:.0f} packets/s delivered: "
      f"{us:.2f} us each; cluster / node = {cluster_us / us:.2f}x")
EOF
    stop_cluster
}

case ${1:-all} in
    hops) hops ;;
    links) links ;;
    thousand) thousand ;;
    all) hops; links; thousand ;;
    *) echo "usage: $0 hops|links|thousand|all" >&2; exit 2 ;;
esac
