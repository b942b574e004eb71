#!/usr/bin/env bash
# End to end: a real node, Debian's Prometheus and Alertmanager, a local webhook receiver.
#   1. `cascade serve` on 127.0.0.1 (HTTP port chosen at run time, media ports any free);
#   2. `prometheus` scrapes it under job="cascade" every 1 s, evaluates every 1 s, with
#      deploy/prometheus/alerts.yml loaded as it is (nothing shortened), and sends to
#   3. `prometheus-alertmanager` (clustering off) with deploy/alertmanager/alertmanager.yml's
#      routing: the webhook URLs point at the receiver, and group_interval is 5 s instead
#      of 5m so the resolved notification comes within the run (group_interval does not
#      delay a group's first notification: group_wait, kept as shipped, does);
#   4. a python3 http.server receiver that keeps every POST.
# Once Prometheus has the target up and CascadeNodeDown inactive (and the receiver has
# nothing for it), the node is killed (SIGKILL); the firing CascadeNodeDown must reach
# the receiver, on the critical route, within
#     for + group_wait + scrape_interval + 2 x evaluation_interval + 5 s slack
# (for and group_wait read from the files) and not before for + group_wait. Then the node
# is started again on the same port and the resolved notification must arrive too.
# Prints the measured times; exits non-zero, with the processes' logs, on any failure.
#
#   deploy/e2e.sh [path/to/cascade]        # default: ./target/debug/cascade
#
# Run it in its own loopback-only network namespace as scripts/test.sh does:
#   unshare --net sh -c 'ip link set lo up && timeout 240 deploy/e2e.sh'
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deploy=$root/deploy
CASCADE=${1:-./target/debug/cascade}
SCRAPE=1 EVAL=1 GROUP_INTERVAL=5 SLACK=5

fail() { echo "deploy/e2e.sh: FAILED: $*" >&2; exit 1; }
step() { printf '\n-- %s\n' "$*"; }
now() { date +%s.%N; }
since() { python3 -c 'import sys; print(f"{float(sys.argv[1]) - float(sys.argv[2]):.1f}")' "$1" "$2"; }

ALERTMANAGER=$(command -v prometheus-alertmanager || command -v alertmanager || true)
for tool in prometheus python3 curl; do
    command -v "$tool" >/dev/null || fail "$tool not found (Debian: apt-get install prometheus prometheus-alertmanager python3 curl)"
done
[[ -n $ALERTMANAGER ]] || fail "prometheus-alertmanager not found (Debian: apt-get install prometheus-alertmanager)"
python3 -c 'import yaml' 2>/dev/null || fail "python3's yaml module not found (Debian: apt-get install python3-yaml)"
[[ -x $CASCADE ]] || fail "no cascade binary at $CASCADE (give its path as the first argument)"

work=$(mktemp -d)
node_pid= prom_pid= am_pid= recv_pid=
stop() { if [[ -n $1 ]]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
cleanup() {
    local rc=$?
    stop "$node_pid"; stop "$prom_pid"; stop "$am_pid"; stop "$recv_pid"
    if [[ $rc -ne 0 ]]; then
        for log in node prometheus alertmanager receiver; do
            [[ -s $work/$log.log ]] || continue
            printf '\n---- %s.log (last 60 lines)\n' "$log" >&2
            tail -n 60 "$work/$log.log" >&2
        done
        if ls "$work"/recv/*.json >/dev/null 2>&1; then
            printf '\n---- webhook POSTs received\n' >&2
            cat "$work"/recv/*.json >&2
        fi
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
# A timeout's SIGTERM (or ^C) also goes through cleanup, so the logs are printed.
trap 'exit 143' TERM INT

# Five distinct free ports on 127.0.0.1 (all bound at once, then released).
read -r node_port prom_port am_port recv_port spare_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))') || fail "choosing free ports"

# What the shipped files say.
read -r for_s group_wait_s < <(python3 - "$deploy" <<'EOF'
import re, sys, yaml
deploy = sys.argv[1]
def secs(d):
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(d))
    assert m and any(m.groups()), f"duration {d!r}"
    h, mi, s = (int(x or 0) for x in m.groups())
    return h * 3600 + mi * 60 + s
rules = [r for g in yaml.safe_load(open(f"{deploy}/prometheus/alerts.yml"))["groups"] for r in g["rules"]]
down = next(r for r in rules if r.get("alert") == "CascadeNodeDown")
assert down["labels"]["severity"] == "critical", "CascadeNodeDown is not critical"
route = yaml.safe_load(open(f"{deploy}/alertmanager/alertmanager.yml"))["route"]
# The route a critical alert takes: the first child matching severity="critical"
# (its group_wait, else the parent's, else Alertmanager's default of 30s).
child = next((r for r in route.get("routes", []) if 'severity="critical"' in r.get("matchers", [])), {})
print(secs(down.get("for", "0s")), secs(child.get("group_wait", route.get("group_wait", "30s"))))
EOF
) || fail "reading CascadeNodeDown's for and the critical route's group_wait from deploy/"
bound=$((for_s + group_wait_s + SCRAPE + 2 * EVAL + SLACK))
floor=$((for_s + group_wait_s))

step "webhook receiver on 127.0.0.1:$recv_port"
mkdir -p "$work/recv"
python3 - "$recv_port" "$work/recv" >"$work/receiver.log" 2>&1 <<'EOF' &
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, out = int(sys.argv[1]), sys.argv[2]
seq = 0
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        global seq
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        got = time.time()
        seq += 1
        rec = {"received": got, "path": self.path, "body": json.loads(body)}
        tmp = f"{out}/.{seq:04d}"
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, f"{out}/{seq:04d}.json")
        self.send_response(200)
        self.end_headers()
    def log_message(self, fmt, *args):
        print(f"{time.time():.3f} {self.address_string()} {fmt % args}", flush=True)
ThreadingHTTPServer.daemon_threads = True
srv = ThreadingHTTPServer(("127.0.0.1", port), H)
print(f"receiver on 127.0.0.1:{port}", flush=True)
srv.serve_forever()
EOF
recv_pid=$!

# The first POST received for CascadeNodeDown with the given status (firing, resolved,
# any): "<received epoch> <path> <receiver name> <instance>", or nothing.
posts() {
    python3 - "$work/recv" "$1" <<'EOF'
import glob, json, sys
for f in sorted(glob.glob(f"{sys.argv[1]}/*.json")):
    rec = json.load(open(f))
    b = rec["body"]
    for a in b.get("alerts", []):
        if a["labels"].get("alertname") == "CascadeNodeDown" and (sys.argv[2] == "any" or a["status"] == sys.argv[2]):
            print(f'{rec["received"]} {rec["path"]} {b.get("receiver")} {a["labels"].get("instance")}')
            sys.exit(0)
EOF
}

start_node() {
    "$CASCADE" serve --http "127.0.0.1:$node_port" --data-dir "$work/node-data" --workers 1 \
        >>"$work/node.log" 2>&1 &
    node_pid=$!
    for _ in $(seq 100); do
        curl -fsS --max-time 1 "http://127.0.0.1:$node_port/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$node_pid" 2>/dev/null || break
        sleep 0.1
    done
    fail "cascade serve did not answer /healthz on 127.0.0.1:$node_port"
}

step "cascade serve on 127.0.0.1:$node_port"
start_node
curl -fsS "http://127.0.0.1:$node_port/healthz"; echo
curl -fsS "http://127.0.0.1:$node_port/metrics" >"$work/metrics" || fail "the node's /metrics did not answer"
grep -q '^cascade_' "$work/metrics" || fail "the node's /metrics has no cascade_ series"

step "alertmanager on 127.0.0.1:$am_port (clustering off), deploy/alertmanager/alertmanager.yml's routing"
python3 - "$deploy/alertmanager/alertmanager.yml" "$work/alertmanager.yml" "$recv_port" "$GROUP_INTERVAL" <<'EOF' || fail "deriving the Alertmanager config"
import re, sys, yaml
src, dst, port, gi = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
cfg = yaml.safe_load(open(src))
changed = []
for r in cfg["receivers"]:
    for w in r.get("webhook_configs", []):
        new = re.sub(r"^https?://[^/]+", f"http://127.0.0.1:{port}", w["url"])
        changed.append(f"receiver {r['name']}: url {w['url']} -> {new}")
        w["url"] = new
def walk(route, path):
    if "group_interval" in route:
        changed.append(f"{path}: group_interval {route['group_interval']} -> {gi}s")
        route["group_interval"] = f"{gi}s"
    for i, r in enumerate(route.get("routes", [])):
        walk(r, f"{path}.routes[{i}]")
walk(cfg["route"], "route")
assert changed, "no webhook URL to point at the receiver"
yaml.safe_dump(cfg, open(dst, "w"), sort_keys=False)
for c in changed:
    print("changed:", c)
print("unchanged: everything else (group_by, group_wait, repeat_interval, routes, matchers, send_resolved, inhibit_rules)")
EOF
if command -v amtool >/dev/null; then
    amtool check-config "$work/alertmanager.yml" >/dev/null || fail "amtool check-config on the derived config"
fi
"$ALERTMANAGER" --config.file="$work/alertmanager.yml" --storage.path="$work/am-data" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= --log.level=debug \
    >"$work/alertmanager.log" 2>&1 &
am_pid=$!

step "prometheus on 127.0.0.1:$prom_port: scrape and evaluate every 1 s, deploy/prometheus/alerts.yml as it is"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: ${SCRAPE}s
  scrape_timeout: ${SCRAPE}s
  evaluation_interval: ${EVAL}s
rule_files:
  - $deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: cascade
    static_configs:
      - targets: ['127.0.0.1:$node_port']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$am_port']
EOF
cat "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
    --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!

prom="http://127.0.0.1:$prom_port"
am="http://127.0.0.1:$am_port"
for _ in $(seq 300); do
    curl -fsS --max-time 1 "$prom/-/ready" >/dev/null 2>&1 && curl -fsS --max-time 1 "$am/-/ready" >/dev/null 2>&1 && break
    kill -0 "$prom_pid" 2>/dev/null || fail "prometheus exited"
    kill -0 "$am_pid" 2>/dev/null || fail "alertmanager exited"
    sleep 0.1
done
curl -fsS --max-time 1 "$prom/-/ready" >/dev/null || fail "prometheus not ready"
curl -fsS --max-time 1 "$am/-/ready" >/dev/null || fail "alertmanager not ready"

# Prometheus' view: "<target health> <CascadeNodeDown rule state> <active CascadeNodeDown
# alerts' states> <alertmanagers>".
prom_state() {
    python3 - "$prom" <<'EOF'
import json, sys, urllib.request
base = sys.argv[1]
get = lambda p: json.load(urllib.request.urlopen(base + p, timeout=2))["data"]
t = [t for t in get("/api/v1/targets")["activeTargets"] if t["labels"].get("job") == "cascade"]
health = t[0]["health"] if t else "none"
rules = [r for g in get("/api/v1/rules?type=alert")["groups"] for r in g["rules"] if r["name"] == "CascadeNodeDown"]
rule = f'{rules[0]["state"]}/{rules[0]["health"]}' if rules else "none"
alerts = [a["state"] for a in get("/api/v1/alerts")["alerts"] if a["labels"].get("alertname") == "CascadeNodeDown"]
ams = len(get("/api/v1/alertmanagers")["activeAlertmanagers"])
print(health, rule, ",".join(alerts) or "-", ams)
EOF
}

step "wait: target up, CascadeNodeDown evaluated and inactive, the Alertmanager known"
state=
for _ in $(seq 150); do
    state=$(prom_state 2>/dev/null) || state=
    if [[ $state == "up inactive/ok - 1" ]]; then
        # Two more evaluations with the target up, then look again.
        sleep $((2 * EVAL))
        state=$(prom_state) || state=
        [[ $state == "up inactive/ok - 1" ]] && break
    fi
    sleep 0.2
done
echo "prometheus: target=${state%% *} (rule, alerts, alertmanagers: ${state#* })"
[[ $state == "up inactive/ok - 1" ]] || fail "prometheus never had the target up and CascadeNodeDown inactive: $state"
[[ -z $(posts any) ]] || fail "the receiver got a CascadeNodeDown notification while the node was up: $(posts any)"
echo "the receiver has nothing for CascadeNodeDown"

step "kill -9 the node; CascadeNodeDown must reach the receiver within ${bound} s (for ${for_s} s + group_wait ${group_wait_s} s + scrape ${SCRAPE} s + 2 x evaluation ${EVAL} s + ${SLACK} s), not before ${floor} s"
killed_at=$(now)
# (Inside braces with stderr closed off: bash's "Killed" job notice is not an error.)
{ kill -KILL "$node_pid"; wait "$node_pid"; } 2>/dev/null || true
node_pid=
seen_down= seen_pending= seen_firing= got=
deadline=$(python3 -c "import sys; print(float(sys.argv[1]) + $bound)" "$killed_at")
while :; do
    got=$(posts firing)
    [[ -n $got ]] && break
    state=$(prom_state 2>/dev/null) || state=
    t=$(now)
    [[ -z $seen_down && $state == down* ]] && seen_down=$(since "$t" "$killed_at") && echo "+${seen_down} s  prometheus: target down"
    [[ -z $seen_pending && $state == *" pending"* ]] && seen_pending=$(since "$t" "$killed_at") && echo "+${seen_pending} s  prometheus: CascadeNodeDown pending"
    [[ -z $seen_firing && $state == *" firing"* ]] && seen_firing=$(since "$t" "$killed_at") && echo "+${seen_firing} s  prometheus: CascadeNodeDown firing (sent to the Alertmanager)"
    python3 -c "import sys,time; sys.exit(time.time() > float(sys.argv[1]))" "$deadline" || break
    sleep 0.5
done
[[ -n $got ]] || fail "no firing CascadeNodeDown reached the receiver within ${bound} s of the kill"
read -r got_at got_path got_receiver got_instance <<<"$got"
took=$(since "$got_at" "$killed_at")
echo "+${took} s  receiver: firing CascadeNodeDown for $got_instance on $got_path (receiver $got_receiver)"
[[ $got_instance == "127.0.0.1:$node_port" ]] || fail "the alert names instance $got_instance, not 127.0.0.1:$node_port"
[[ $got_path == /alerts/critical && $got_receiver == cascade-webhook-critical ]] \
    || fail "CascadeNodeDown (critical) went to $got_receiver ($got_path), not the critical route"
python3 -c "import sys; sys.exit(not ($floor - 1 <= float(sys.argv[1]) <= $bound))" "$took" \
    || fail "CascadeNodeDown reached the receiver ${took} s after the kill: outside [$floor, $bound] s"

step "start the node again on 127.0.0.1:$node_port; the resolved notification must follow"
resolve_bound=$((SCRAPE + 2 * EVAL + GROUP_INTERVAL + SLACK))
restarted_at=$(now)
start_node
got=
deadline=$(python3 -c "import sys; print(float(sys.argv[1]) + $resolve_bound)" "$restarted_at")
while :; do
    got=$(posts resolved)
    [[ -n $got ]] && break
    python3 -c "import sys,time; sys.exit(time.time() > float(sys.argv[1]))" "$deadline" || break
    sleep 0.2
done
[[ -n $got ]] || fail "no resolved CascadeNodeDown reached the receiver within ${resolve_bound} s of the restart"
read -r got_at got_path got_receiver got_instance <<<"$got"
resolved=$(since "$got_at" "$restarted_at")
echo "+${resolved} s  receiver: resolved CascadeNodeDown for $got_instance on $got_path (bound ${resolve_bound} s: scrape + 2 x evaluation + the test's group_interval + ${SLACK} s)"

echo
echo "deploy/e2e.sh: passed: node killed -> firing CascadeNodeDown at the receiver in ${took} s (bound ${bound} s, floor ${floor} s); restarted -> resolved in ${resolved} s"
