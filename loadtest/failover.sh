#!/usr/bin/env bash
# Failover freeze: how long an edge's viewers see no video when the relay it pulls from is
# killed (SIGKILL), over KILLS kills.
#
# The cluster (`cascade cluster up --nodes 4 --relays 2 --restart-after-ms 1000`): origin,
# relay1 and relay2 (both children of the origin), edge1 (primary relay1, backup relay2).
# `cascade loadtest` publishes on the origin and puts VIEWERS viewers on edge1. Once they
# watch, the relay edge1 pulls from is killed every PERIOD seconds, alternately relay1 and
# relay2 (edge1 stays on the backup when the primary returns, so each kill hits the relay
# in use); `cluster up` restarts the killed relay a second later, on the same addresses.
# Each viewer's video gaps of at least FREEZE_MS are its freezes: one per kill per viewer
# is expected, and the report gives their p50, p95 and maximum.
#
#   loadtest/failover.sh                  # 20 kills, 3 s apart, 5 viewers: about 80 s
#   KILLS=5 PERIOD=2 loadtest/failover.sh
set -euo pipefail

KILLS=${KILLS:-20}
PERIOD=${PERIOD:-3}
VIEWERS=${VIEWERS:-5}
FREEZE_MS=${FREEZE_MS:-150}
root=$(cd "$(dirname "$0")/.." && pwd)
CASCADE=${CASCADE:-${CARGO_TARGET_DIR:-$root/target}/release/cascade}
[[ -x $CASCADE ]] || { echo "no $CASCADE: cargo build --release --bin cascade" >&2; exit 2; }

work=$(mktemp -d)
up_pid= lt_pid=
cleanup() {
    [[ -n $lt_pid ]] && kill "$lt_pid" 2>/dev/null || true
    [[ -n $up_pid ]] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$CASCADE" cluster up --nodes 4 --relays 2 --restart-after-ms 1000 --json --dir "$work/c" \
    >"$work/up.out" 2>"$work/up.err" &
up_pid=$!
for _ in $(seq 300); do
    grep -q '^cluster up:' "$work/up.out" 2>/dev/null && break
    sleep 0.1
done
grep -q '^cluster up:' "$work/up.out" || { cat "$work/up.err" >&2; exit 1; }
head -1 "$work/up.out" >"$work/nodes.json"
http() { python3 -c 'import json,sys; print(next(n["http"] for n in json.load(open(sys.argv[1]))["nodes"] if n["name"] == sys.argv[2]))' "$work/nodes.json" "$1"; }
pid_of() { curl -fsS "$(http "$1")/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
origin=$(http origin)
edge=$(http edge1)

# The window covers every kill (each takes PERIOD plus the look-ups), with margin.
duration=$(( (KILLS + 2) * (PERIOD + 1) ))
"$CASCADE" loadtest --json --target "$origin" --viewer-targets "$edge" --viewers "$VIEWERS" \
    --layers low:100 --duration "$duration" --freeze-ms "$FREEZE_MS" \
    >"$work/r.json" 2>"$work/lt.err" &
lt_pid=$!
for _ in $(seq 300); do
    grep -q "viewers $VIEWERS/$VIEWERS watching" "$work/lt.err" 2>/dev/null && break
    sleep 0.1
done
grep -q "viewers $VIEWERS/$VIEWERS watching" "$work/lt.err" || { cat "$work/lt.err" >&2; exit 1; }
# The window opens 2 s after every viewer joined; one period more of steady video.
sleep $((2 + PERIOD))

relay=relay1
for k in $(seq "$KILLS"); do
    pid=$(pid_of "$relay")
    kill -KILL "$pid"
    echo "kill $k: $relay (pid $pid) at $(date +%T.%N | cut -c1-12)" >&2
    sleep "$PERIOD"
    # The killed relay must be back before the other one is killed.
    for _ in $(seq 50); do pid_of "$relay" >/dev/null 2>&1 && break; sleep 0.1; done
    [[ $relay == relay1 ]] && relay=relay2 || relay=relay1
done
wait "$lt_pid"
lt_pid=
python3 - "$work/r.json" "$KILLS" "$VIEWERS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); kills = int(sys.argv[2]); viewers = int(sys.argv[3])
print(json.dumps(r))
f = r["freeze_ms"]
print(f"{kills} kills x {viewers} viewers: {r['freezes']} freezes (expected {kills * viewers}), "
      f"p50 {f['p50']:.0f} ms, p95 {f['p95']:.0f} ms, max {r['freeze_max_ms']:.0f} ms; "
      f"loss {r['loss_pct']:.3f} %, {r['connected']}/{r['viewers']} viewers connected")
EOF
