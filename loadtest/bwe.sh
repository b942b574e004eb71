#!/usr/bin/env bash
# What viewers' bandwidth estimation costs a node (docs/PERFORMANCE.md, "Viewer QoS"): the
# same load on a fresh node with estimation on (the default) and off (`--viewer-bwe 0`),
# for each viewer count, with a layer mix. Every run is bounded: ramp, settle and
# DURATION seconds of window.
#
#   loadtest/bwe.sh                 # VIEWERS="100 500 1000" LAYERS=low:70,mid:20,high:10
#
# Prints each loadtest's JSON report on one line, prefixed by the run's name, then a
# summary line per run: node CPU per forwarded packet, loss, join. Needs a release build
# (`cargo build --release --bin cascade`); CASCADE=path overrides the binary.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CASCADE=${CASCADE:-${CARGO_TARGET_DIR:-$root/target}/release/cascade}
[[ -x $CASCADE ]] || { echo "no $CASCADE: cargo build --release --bin cascade" >&2; exit 2; }
DURATION=${DURATION:-15}
VIEWERS=${VIEWERS:-100 500 1000}
LAYERS=${LAYERS:-low:70,mid:20,high:10}

work=$(mktemp -d)
node_pid=
stop_node() {
    if [[ -n $node_pid ]]; then
        kill -TERM "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
        node_pid=
    fi
}
trap 'stop_node; rm -rf "$work"' EXIT

# run NAME VIEWERS NODE-FLAGS...: one fresh node, one loadtest against it.
run() {
    local name=$1 n=$2
    shift 2
    local dir=$work/$name
    mkdir -p "$dir"
    "$CASCADE" serve --http 127.0.0.1:0 --auth open --data-dir "$dir" \
        --max-pending-per-address 0 --max-viewers-per-address 0 "$@" >"$dir/out" 2>"$dir/err" &
    node_pid=$!
    for _ in $(seq 100); do
        grep -q 'cascade listening on' "$dir/out" 2>/dev/null && break
        sleep 0.1
    done
    local base
    base=$(sed -n 's/^cascade listening on //p' "$dir/out" | head -1)
    [[ -n $base ]] || { cat "$dir/err" >&2; exit 1; }
    "$CASCADE" loadtest --target "$base" --viewers "$n" --ramp 100 --duration "$DURATION" \
        --layers "$LAYERS" --json --quiet >"$dir/report.json"
    stop_node
    printf '%s %s\n' "$name" "$(tr -d '\n' <"$dir/report.json")"
    python3 - "$name" "$dir/report.json" <<'EOF'
import json, sys
name, r = sys.argv[1], json.load(open(sys.argv[2]))
fwd = r.get("forwarded_pps") or 0
cpu = r.get("node_cpu_cores") or 0
us = cpu / fwd * 1e6 if fwd else float("nan")
print(f"summary {name}: {r['connected']} connected, node {cpu:.2f} cores, "
      f"{fwd:,.0f} forwarded/s, {us:.2f} µs per packet, loss {r['loss_pct']:.3f} %, "
      f"join p50/p95 {r['join_ms']['p50']:.0f}/{r['join_ms']['p95']:.0f} ms, "
      f"layers {r['layers']}")
EOF
}

for n in $VIEWERS; do
    run "bwe-on-$n" "$n"
    run "bwe-off-$n" "$n" --viewer-bwe 0
done
