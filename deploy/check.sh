#!/usr/bin/env bash
# Checks what deploy/ holds against promtool, amtool and a real node:
#   1. promtool check rules / test rules on deploy/prometheus/alerts.yml (and the
#      dashboard's expressions, put in a temporary rules file, so their PromQL parses);
#   2. amtool check-config on deploy/alertmanager/alertmanager.yml;
#   3. a real local cluster (`cascade cluster up`: origin, two relays, an edge, every node
#      on 127.0.0.1 with ports chosen at run time), a publisher on the origin and viewers on
#      the edge (`cascade loadtest`), the edge's relay killed once (so a parent move is
#      counted), a garbage datagram to a media port (so a drop is counted), one API
#      request (so the control plane's request histogram has a series); then every
#      `cascade_…` name used in alerts.yml and grafana/cascade.json must be on some node's
#      /metrics (`_bucket`, `_sum`, `_count` of a histogram count as the histogram).
# Exits non-zero, saying what failed, on any failure; removes what it started.
#
#   deploy/check.sh [path/to/cascade]        # default: ./target/debug/cascade
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deploy=$root/deploy
CASCADE=${1:-$root/target/debug/cascade}
fail() { echo "deploy/check.sh: FAILED: $*" >&2; exit 1; }
step() { printf '\n-- %s\n' "$*"; }

for tool in promtool amtool python3 curl; do
    command -v "$tool" >/dev/null || fail "$tool not found (Debian: apt-get install prometheus prometheus-alertmanager python3 curl)"
done
python3 -c 'import yaml' 2>/dev/null || fail "python3's yaml module not found (Debian: apt-get install python3-yaml)"
[[ -x $CASCADE ]] || fail "no cascade binary at $CASCADE (give its path as the first argument)"

work=$(mktemp -d)
up_pid= lt_pid= backup_pid=
cleanup() {
    [[ -n $backup_pid ]] && kill "$backup_pid" 2>/dev/null && wait "$backup_pid" 2>/dev/null || true
    [[ -n $lt_pid ]] && kill "$lt_pid" 2>/dev/null && wait "$lt_pid" 2>/dev/null || true
    # `cluster up` stops its nodes (and removes its directory) when it gets SIGTERM.
    [[ -n $up_pid ]] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step "promtool check rules"
promtool check rules "$deploy/prometheus/alerts.yml" || fail "promtool check rules deploy/prometheus/alerts.yml"

step "promtool test rules"
(cd "$deploy/prometheus" && promtool test rules alerts_test.yml) || fail "promtool test rules deploy/prometheus/alerts_test.yml"

step "every alert has severity, summary, description, a runbook_url and its runbook, and a test"
python3 - "$deploy" <<'EOF' || fail "alerts' labels, annotations, runbooks or tests (above)"
import os, sys, yaml
deploy = sys.argv[1]
rules = [r for g in yaml.safe_load(open(f"{deploy}/prometheus/alerts.yml"))["groups"] for r in g["rules"]]
tests = yaml.safe_load(open(f"{deploy}/prometheus/alerts_test.yml"))["tests"]
firing, quiet = set(), set()
for t in tests:
    for a in t.get("alert_rule_test", []):
        (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
bad = []
for r in rules:
    n = r["alert"]
    if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
        bad.append(f"{n}: no severity label")
    ann = r.get("annotations", {})
    for k in ("summary", "description"):
        if not ann.get(k):
            bad.append(f"{n}: no {k} annotation")
    if ann.get("runbook_url") != f"deploy/runbooks/{n}.md":
        bad.append(f"{n}: runbook_url is not deploy/runbooks/{n}.md")
    if not os.path.isfile(f"{deploy}/runbooks/{n}.md"):
        bad.append(f"{n}: no deploy/runbooks/{n}.md")
    if n not in firing:
        bad.append(f"{n}: no firing case in alerts_test.yml")
    if n not in quiet:
        bad.append(f"{n}: no quiet case in alerts_test.yml")
for b in bad:
    print(b)
print(f"{len(rules)} alerts checked")
sys.exit(1 if bad else 0)
EOF

step "the dashboard's expressions parse (promtool check rules on a temporary rules file)"
python3 - "$deploy/grafana/cascade.json" "$work/dashboard-rules.yml" <<'EOF' || fail "deploy/grafana/cascade.json is not a dashboard with a datasource variable"
import json, sys, yaml
d = json.load(open(sys.argv[1]))
vars = {v["name"]: v for v in d["templating"]["list"]}
assert vars.get("datasource", {}).get("type") == "datasource", "no datasource variable"
exprs = []
def walk(panels):
    for p in panels:
        assert p.get("type") == "row" or p.get("type") == "text" or p.get("datasource", {}).get("uid") == "${datasource}", f"panel {p.get('title')} does not use ${{datasource}}"
        walk(p.get("panels", []))
        exprs.extend(t["expr"] for t in p.get("targets", []))
walk(d["panels"])
rules = [{"record": f"dashboard:expr{i}", "expr": e.replace("$instance", ".*").replace("$stream", ".*")} for i, e in enumerate(exprs)]
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print(f"{len(exprs)} expressions")
EOF
promtool check rules "$work/dashboard-rules.yml" >/dev/null || { promtool check rules "$work/dashboard-rules.yml" || true; fail "a PromQL expression in deploy/grafana/cascade.json does not parse"; }

step "amtool check-config"
amtool check-config "$deploy/alertmanager/alertmanager.yml" || fail "amtool check-config deploy/alertmanager/alertmanager.yml"

step "a real cluster: origin, relay1, relay2, edge1 (on 127.0.0.1, ports chosen at run time)"
"$CASCADE" cluster up --nodes 4 --relays 2 --restart-after-ms 1000 --json --dir "$work/c" \
    >"$work/up.out" 2>"$work/up.err" &
up_pid=$!
for _ in $(seq 300); do
    grep -q '^cluster up:' "$work/up.out" 2>/dev/null && break
    kill -0 "$up_pid" 2>/dev/null || break
    sleep 0.1
done
grep -q '^cluster up:' "$work/up.out" || { cat "$work/up.err" >&2; fail "cascade cluster up did not start"; }
head -1 "$work/up.out" >"$work/nodes.json"
nodes=$(python3 -c 'import json,sys; print(" ".join(n["name"] for n in json.load(open(sys.argv[1]))["nodes"]))' "$work/nodes.json")
http() { python3 -c 'import json,sys; print(next(n["http"] for n in json.load(open(sys.argv[1]))["nodes"] if n["name"] == sys.argv[2]))' "$work/nodes.json" "$1"; }
healthz() { curl -fsS --max-time 2 "$(http "$1")/healthz"; }
for n in $nodes; do
    url=$(http "$n")
    case $url in http://127.0.0.1:*) ;; *) fail "node $n is not on 127.0.0.1: $url" ;; esac
    echo "$n $url"
done
origin=$(http origin)
edge=$(http edge1)

step "publish on the origin, 3 viewers on edge1, kill relay1 once, a garbage datagram to edge1"
"$CASCADE" loadtest --target "$origin" --viewer-targets "$edge" --viewers 3 --duration 8 \
    --layers low:100 >"$work/lt.out" 2>"$work/lt.err" &
lt_pid=$!
for _ in $(seq 300); do
    grep -q "viewers 3/3 watching" "$work/lt.err" 2>/dev/null && break
    kill -0 "$lt_pid" 2>/dev/null || break
    sleep 0.1
done
grep -q "viewers 3/3 watching" "$work/lt.err" || { cat "$work/lt.err" >&2; fail "the viewers did not start watching"; }
sleep 2
# edge1 pulls from relay1 first (relay2 is its backup): this kill is counted as a move on
# edge1. `cluster up` starts relay1 again a second later.
relay_pid=$(healthz relay1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
kill -KILL "$relay_pid"
media=$(healthz edge1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["media"][0])')
printf 'not a media packet' >"/dev/udp/${media%:*}/${media##*:}"
# One API request, so the control plane's request histogram has a series.
curl -fsS --max-time 3 "$(http origin)/api/v1/channels" >/dev/null
sleep 3

# A single node with scheduled backups and TLS (what `serve --backup-dir` and `--tls-cert`
# export: the backup metrics and the certificate's expiry, which the cluster's nodes lack).
backup_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# It serves HTTPS with a self-signed certificate: its certificate's expiry is a metric too.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null \
    || fail "openssl could not make a test certificate"
"$CASCADE" serve --http "127.0.0.1:$backup_port" --data-dir "$work/backup-node" --workers 1 \
    --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
    --backup-dir "$work/backups" --backup-every 1h >"$work/backup-node.log" 2>&1 &
backup_pid=$!
for _ in $(seq 100); do
    curl -kfsS --max-time 2 "https://127.0.0.1:$backup_port/metrics" >"$work/metrics.backup-node" 2>/dev/null \
        && grep -q '^cascade_backup_last_success_timestamp_seconds ' "$work/metrics.backup-node" && break
    sleep 0.1
done
curl -kfsS --max-time 3 "https://127.0.0.1:$backup_port/metrics" >"$work/metrics.backup-node" \
    || { cat "$work/backup-node.log" >&2; fail "the node with scheduled backups did not answer"; }
kill "$backup_pid" 2>/dev/null || true
wait "$backup_pid" 2>/dev/null || true
backup_pid=

scrape() {
    local tag=$1
    for n in $nodes; do
        curl -fsS --max-time 3 "$(http "$n")/metrics" >"$work/metrics.$n.$tag" 2>/dev/null || true
    done
}
scrape during
wait "$lt_pid" || { cat "$work/lt.err" >&2; fail "cascade loadtest failed"; }
lt_pid=
sleep 1
scrape after

step "every cascade_ metric used in alerts.yml and grafana/cascade.json is on a node's /metrics"
python3 - "$deploy" "$work" <<'EOF' || fail "metrics used by the alerts or the dashboard are missing from /metrics (above)"
import glob, json, re, sys, yaml
deploy, work = sys.argv[1], sys.argv[2]
exposed, histograms = set(), set()
for f in glob.glob(f"{work}/metrics.*"):
    for line in open(f):
        m = re.match(r"# TYPE (\w+) (\w+)", line)
        if m:
            if m.group(2) == "histogram":
                histograms.add(m.group(1))
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
        if m:
            exposed.add(m.group(1))
if not exposed:
    print("no metrics scraped at all")
    sys.exit(1)
used = {}
rules = [r for g in yaml.safe_load(open(f"{deploy}/prometheus/alerts.yml"))["groups"] for r in g["rules"]]
for r in rules:
    for n in re.findall(r"\bcascade_[a-zA-Z0-9_]+", r["expr"]):
        used.setdefault(n, set()).add(f"alert {r['alert']}")
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            for n in re.findall(r"\bcascade_[a-zA-Z0-9_]+", t["expr"]):
                used.setdefault(n, set()).add(f"panel {p['title']!r}")
d = json.load(open(f"{deploy}/grafana/cascade.json"))
walk(d["panels"])
for v in d["templating"]["list"]:
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    for n in re.findall(r"\bcascade_[a-zA-Z0-9_]+", q):
        used.setdefault(n, set()).add(f"variable {v['name']}")
missing = []
for n in sorted(used):
    base = re.sub(r"_(bucket|sum|count)$", "", n)
    ok = n in exposed or (base != n and base in histograms)
    print(f"{'ok     ' if ok else 'MISSING'} {n}")
    if not ok:
        missing.append(f"{n} (used by {', '.join(sorted(used[n]))})")
for m in missing:
    print(f"missing from /metrics: {m}")
sys.exit(1 if missing else 0)
EOF

echo
echo "deploy/check.sh: all checks passed"
