#!/usr/bin/env bash
# Soak benchmark: does a node's memory come back after load, round after round?
#
# Starts one release node, runs ROUNDS rounds of `cascade loadtest` (VIEWERS viewers for
# DURATION seconds each), and after each round, once the node reports no session, prints
# its idle memory: VmRSS, the anonymous part of it (heap and stacks; the rest is the
# mapped binary and libraries), and the heap glibc's malloc holds in use (from
# malloc_stats() through gdb, when gdb is installed). Ends with a verdict: flat when the
# last round's heap in use is within 10 % (or 1 MiB) of round 2's and its idle RSS within
# 25 % (or 8 MiB). Round 1 is the warm-up: thread stacks, arenas and caches made once.
#
# Not run in CI: it is a benchmark, about ROUNDS x (DURATION + ~15 s). Needs a release
# build (`cargo build --release --bin cascade`); CASCADE=path overrides the binary.
#
#   loadtest/soak.sh                     # 10 rounds x 300 viewers x 30 s
#   ROUNDS=3 VIEWERS=100 DURATION=10 loadtest/soak.sh
set -euo pipefail

ROUNDS=${ROUNDS:-10}
VIEWERS=${VIEWERS:-300}
DURATION=${DURATION:-30}
# Seconds to wait once the sessions are gone before reading memory.
SETTLE=${SETTLE:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
CASCADE=${CASCADE:-${CARGO_TARGET_DIR:-$root/target}/release/cascade}
[[ -x $CASCADE ]] || { echo "no $CASCADE: cargo build --release --bin cascade" >&2; exit 2; }

work=$(mktemp -d)
node_pid=
cleanup() {
    [[ -n $node_pid ]] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A free port, chosen now (the node takes the address from its flag).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target=http://127.0.0.1:$port
# One machine makes every viewer: the per-address caps are off (see README).
"$CASCADE" serve --http "127.0.0.1:$port" --auth open --data-dir "$work/data" \
    --max-pending-per-address 0 --max-viewers-per-address 0 \
    >"$work/node.out" 2>"$work/node.err" &
node_pid=$!

sessions() { curl -fsS "$target/healthz" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"])'; }
for _ in $(seq 100); do sessions >/dev/null 2>&1 && break; sleep 0.1; done
sessions >/dev/null || { echo "node did not start:" >&2; cat "$work/node.err" >&2; exit 1; }

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$node_pid/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# Bytes glibc's malloc has handed out and not had back, all arenas: malloc_stats() writes
# them to the node's stderr. "-" without gdb or glibc.
heap_in_use() {
    command -v gdb >/dev/null || { echo -; return; }
    local before
    before=$(wc -l <"$work/node.err")
    # gdb may complain about the thread state it restores yet still make the call.
    gdb -p "$node_pid" -batch -ex 'call (void)malloc_stats()' >/dev/null 2>&1 || true
    tail -n +"$((before + 1))" "$work/node.err" |
        awk '/^Total/ { t = 1 } t && /in use bytes/ { printf "%.1f", $NF / 1048576; exit }' |
        grep . || echo -
}

row() { printf '%-6s %9s %9s %9s %9s %9s\n' "$@"; }
row round "rss MiB" "anon MiB" "file MiB" "heap MiB" "load MiB"
row fresh "$(mib "$(kib VmRSS)")" "$(mib "$(kib RssAnon)")" "$(mib "$(kib RssFile)")" "$(heap_in_use)" -

declare -a idle heap
for r in $(seq "$ROUNDS"); do
    # Peak RSS under load, sampled while the round runs.
    peak=0
    "$CASCADE" loadtest --target "$target" --viewers "$VIEWERS" --duration "$DURATION" \
        --quiet --json >"$work/round$r.json" 2>"$work/round$r.err" &
    lt=$!
    while kill -0 "$lt" 2>/dev/null; do
        cur=$(kib VmRSS)
        ((cur > peak)) && peak=$cur
        sleep 1
    done
    wait "$lt" || { echo "round $r: loadtest failed:" >&2; cat "$work/round$r.err" >&2; exit 1; }
    for _ in $(seq 300); do [[ $(sessions) == 0 ]] && break; sleep 0.1; done
    [[ $(sessions) == 0 ]] || { echo "round $r: sessions left open" >&2; exit 1; }
    sleep "$SETTLE"
    rss=$(kib VmRSS)
    idle[r]=$rss
    h=$(heap_in_use)
    heap[r]=$([[ $h == - ]] && echo - || awk -v m="$h" 'BEGIN { printf "%d", m * 1024 }')
    row "$r" "$(mib "$rss")" "$(mib "$(kib RssAnon)")" "$(mib "$(kib RssFile)")" "$h" "$(mib "$peak")"
done

if ((ROUNDS >= 2)); then
    # A leak shows in the live heap: flat when round ROUNDS is within 10 % or 1 MiB of
    # round 2. Idle RSS also moves with what the allocator could not give back (measured:
    # +-4 MiB from round to round with a flat heap), so it fails only past 25 % or 8 MiB.
    verdict=flat
    judge() { # name, round-2 KiB, last KiB, minimum slack KiB, percent
        local slack=$(($2 * $5 / 100 > $4 ? $2 * $5 / 100 : $4)) delta=$(($3 - $2))
        ((delta > slack)) && verdict=GROWING
        echo "$1: round 2 $(mib "$2") MiB, round $ROUNDS $(mib "$3") MiB, change $(mib "$delta") MiB, allowed $(mib "$slack") MiB"
    }
    judge "idle RSS" "${idle[2]}" "${idle[ROUNDS]}" 8192 25
    if [[ ${heap[2]} != - && ${heap[ROUNDS]} != - ]]; then
        judge "heap in use" "${heap[2]}" "${heap[ROUNDS]}" 1024 10
    fi
    echo "verdict: $verdict"
    [[ $verdict == flat ]]
fi
