#!/usr/bin/env python3
"""Checks deploy/systemd, deploy/kubernetes and deploy/container against a real binary.

Run by deploy/check-deploy.sh (which says what it needs). Every check prints PASS or FAIL;
the last line is "N passed, N failed".

- systemd: `systemd-analyze verify` and `systemd-analyze security --offline` on each unit
  (the binary's path substituted), then each unit's ExecStart really started with its
  Environment= and EnvironmentFile= (the example file) applied, its %d/%S paths and
  credentials in temporary directories and its addresses on 127.0.0.1 with ports chosen
  at run time: a control plane on the PostgreSQL at 127.0.0.1:5432 (a fresh schema) and
  the NATS at 127.0.0.1:4222, a media node registering with it, an all-in-one `serve`.
  /healthz and /readyz are read, the node is found in the registry, the node's ExecStop
  (the drain) runs and /readyz turns 503 "draining", then SIGTERM and a clean exit.
- Kubernetes: every resource in kustomization.yaml exists and every manifest is listed;
  kubernetes-validate --strict on each, and on `kubectl kustomize`'s output when kubectl
  is there (with throw-away secrets); the three media DaemonSets differ only by role.
- Dockerfile: hadolint with no finding (an inline ignore must have a reason above it).
- Everywhere: every `cascade` subcommand, flag and CASCADE_ variable used in a unit, an
  env file, a manifest or the Dockerfile is one `cascade <cmd> --help` lists.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEMD = os.path.join(HERE, "systemd")
K8S = os.path.join(HERE, "kubernetes")
DOCKERFILE = os.path.join(HERE, "container", "Dockerfile")
UNIT_BIN = "/usr/local/bin/cascade"
PG = os.environ.get("CASCADE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
NATS = os.environ.get("CASCADE_TEST_NATS", "nats://127.0.0.1:4222")
# Variables the units define for their own commands, not read by the binary.
UNIT_ONLY_VARS = {"CASCADE_NODE_NAME"}

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}: {name}" + (f"\n      {detail}" if detail and not ok else ""))
    sys.stdout.flush()
    return ok


# --- what the binary accepts --------------------------------------------------------------

HELP = {}


def help_of(binary, words):
    key = tuple(words)
    if key not in HELP:
        # A clean environment: clap prints a set variable's value in the help.
        out = subprocess.run([binary, *words, "--help"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"})
        if out.returncode != 0:
            HELP[key] = None
        else:
            flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out.stdout))
            # `[env: NAME]`, and the variables the help names in prose (CASCADE_SECRET_KEY,
            # read from the environment only, never a flag).
            envs = set(re.findall(r"\b(CASCADE_[A-Z0-9_]+)", out.stdout))
            HELP[key] = (flags, envs)
    return HELP[key]


def known_env(binary, cmd):
    h = help_of(binary, cmd)
    return h[1] if h else set()


def check_invocation(binary, where, argv):
    """argv after the program name `cascade`: subcommand words, then flags."""
    words = []
    i = 0
    while i < len(argv) and not argv[i].startswith("-"):
        words.append(argv[i])
        i += 1
    # Subcommands are the leading words that name one (`cluster issue`); the rest are values.
    cmd = []
    for w in words:
        if help_of(binary, cmd + [w]) is None:
            break
        cmd.append(w)
    h = help_of(binary, cmd)
    if not cmd or h is None:
        return check(f"{where}: `cascade {' '.join(words)}` is a command", False, str(argv))
    flags = [a.split("=", 1)[0] for a in argv[i:] if a.startswith("--")]
    unknown = [f for f in flags if f not in h[0]]
    return check(f"{where}: `cascade {' '.join(cmd)}` takes {' '.join(flags) or 'no flags'}",
                 not unknown, f"not in `cascade {' '.join(cmd)} --help`: {unknown}")


def check_env_names(binary, where, cmd, names):
    known = known_env(binary, cmd)
    unknown = sorted(n for n in names if n.startswith("CASCADE_") and n not in known
                     and n not in UNIT_ONLY_VARS)
    return check(f"{where}: every CASCADE_ variable is one `cascade {' '.join(cmd)}` reads",
                 not unknown, f"unknown: {unknown}")


def cascade_calls(text):
    """The `cascade …` invocations in a shell command line (program name or path)."""
    calls = []
    for part in re.split(r"[;&|]+", text):
        try:
            argv = shlex.split(part)
        except ValueError:
            continue
        for j, a in enumerate(argv):
            if os.path.basename(a) == "cascade":
                calls.append(argv[j + 1:])
                break
    return calls


# --- systemd ------------------------------------------------------------------------------

def parse_unit(path):
    """[(section, key, value)] in order (repeated keys kept)."""
    items, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            items.append((section, key.strip(), value.strip()))
    return items


def unit_values(items, key):
    return [v for s, k, v in items if s == "Service" and k == key]


def parse_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip().strip('"')
    return env


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_run(n):
    """A first port with n free after it, for UDP and TCP (media workers)."""
    for _ in range(200):
        base = free_port(socket.SOCK_DGRAM)
        if base + n >= 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


def http_get(url, token=None, timeout=5):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


class Unit:
    """A unit's ExecStart/ExecStop as systemd would run them, in temporary directories."""

    def __init__(self, name, binary, tmp, credentials, overrides):
        self.name = name
        self.items = parse_unit(os.path.join(SYSTEMD, name))
        self.tmp = os.path.join(tmp, name)
        self.creds = os.path.join(self.tmp, "credentials")
        self.state = os.path.join(self.tmp, "state")
        os.makedirs(self.creds)
        os.makedirs(self.state)
        self.binary = binary
        # LoadCredential=ID:PATH: a private copy named ID, mode 0400.
        for spec in unit_values(self.items, "LoadCredential"):
            cid, _, src = spec.partition(":")
            if src not in credentials:
                raise RuntimeError(f"{name}: no test file for credential {src}")
            dst = os.path.join(self.creds, cid)
            shutil.copyfile(credentials[src], dst)
            os.chmod(dst, 0o400)
        for d in unit_values(self.items, "StateDirectory"):
            os.makedirs(os.path.join(self.state, d), mode=0o700)
        env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": self.creds}
        for spec in unit_values(self.items, "EnvironmentFile"):
            example = os.path.join(SYSTEMD, os.path.basename(spec.lstrip("-")) + ".example")
            env.update(parse_env_file(example))
        for spec in unit_values(self.items, "Environment"):
            for assignment in shlex.split(spec):
                k, _, v = assignment.partition("=")
                env[k] = self.specifiers(v)
        missing = sorted(set(overrides) - set(env))
        if missing:
            raise RuntimeError(f"{name}: the test sets {missing}, which the unit does not")
        env.update(overrides)
        self.env = env
        wd = unit_values(self.items, "WorkingDirectory")
        self.cwd = self.specifiers(wd[0]) if wd else self.tmp
        self.proc = None

    def specifiers(self, s):
        return s.replace("%d", self.creds).replace("%S", self.state).replace("%%", "%")

    def command(self, line):
        """(argv, ignore_failure) for an Exec line: prefixes, specifiers, ${VAR}."""
        ignore = False
        while line and line[0] in "-@+!:":
            ignore |= line[0] == "-"
            line = line[1:]
        line = self.specifiers(line)
        line = re.sub(r"\$\{(\w+)\}", lambda m: self.env.get(m.group(1), ""), line)
        argv = shlex.split(line)
        if argv[0] == UNIT_BIN:
            argv[0] = self.binary
        return argv, ignore

    def start(self):
        (start,) = unit_values(self.items, "ExecStart")
        argv, _ = self.command(start)
        self.log = open(os.path.join(self.tmp, "stderr.log"), "w")
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()
        m = re.match(r"cascade listening on (\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"{self.name}: no banner ({line!r}); log in {self.log.name}")
        self.base = m.group(1)
        return self.base

    def stop_commands(self):
        for line in unit_values(self.items, "ExecStop"):
            argv, ignore = self.command(line)
            env = dict(self.env, MAINPID=str(self.proc.pid))
            r = subprocess.run(argv, env=env, cwd=self.cwd, capture_output=True, text=True,
                               timeout=30)
            yield argv, ignore, r

    def terminate(self):
        """KillSignal=, then the exit code within TimeoutStopSec=."""
        sig = unit_values(self.items, "KillSignal") or ["SIGTERM"]
        timeout = float((unit_values(self.items, "TimeoutStopSec") or ["90"])[0])
        start = time.monotonic()
        self.proc.send_signal(getattr(signal, sig[0]))
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return code, time.monotonic() - start

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(probe, seconds):
    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def systemd_static(binary, tmp):
    units = sorted(f for f in os.listdir(SYSTEMD) if f.endswith(".service"))
    check("systemd: units exist", len(units) >= 2, str(units))
    vdir = os.path.join(tmp, "verify")
    os.makedirs(vdir)
    for u in units:
        text = open(os.path.join(SYSTEMD, u)).read().replace(UNIT_BIN, binary)
        path = os.path.join(vdir, u)
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        # Unknown keys are only warnings there: any word about the unit is a failure.
        said = (r.stdout + r.stderr).strip()
        check(f"systemd: systemd-analyze verify {u}", r.returncode == 0 and not said, said)
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=30",
                            "--no-pager", path], capture_output=True, text=True)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", r.stdout)
        level = m.group(0) if m else r.stdout[-300:] + r.stderr[-300:]
        print(f"      {level}")
        # 3.0 or less is systemd's "OK"; MemoryDenyWriteExecute etc. are all set.
        check(f"systemd: {u} exposure at most 3.0 (systemd-analyze security --offline)",
              m is not None and float(m.group(1)) <= 3.0, level)
        items = parse_unit(path)
        cmd = None
        for line in unit_values(items, "ExecStart") + unit_values(items, "ExecStop"):
            for call in cascade_calls(line.lstrip("-@+!:").replace(binary, UNIT_BIN)):
                check_invocation(binary, f"systemd {u}", call)
                if cmd is None:
                    cmd = [w for w in call if not w.startswith("-")][:1]
        names = set()
        for spec in unit_values(items, "Environment"):
            names |= {a.partition("=")[0] for a in shlex.split(spec)}
        for spec in unit_values(items, "EnvironmentFile"):
            names |= set(parse_env_file(os.path.join(
                SYSTEMD, os.path.basename(spec.lstrip("-")) + ".example")))
        check_env_names(binary, f"systemd {u}", cmd, names)
        for var in UNIT_ONLY_VARS & names:
            check(f"systemd {u}: {var} is used by the unit's commands",
                  any("${" + var + "}" in line for line in unit_values(items, "ExecStop")))


def systemd_runtime(binary, tmp):
    # Test files for the credentials the units load.
    fixtures = os.path.join(tmp, "fixtures")
    os.makedirs(fixtures)
    key = os.path.join(fixtures, "secret.key")
    with open(key, "w") as f:
        f.write(__import__("base64").b64encode(os.urandom(32)).decode() + "\n")
    os.chmod(key, 0o600)
    node_name = parse_env_file(os.path.join(SYSTEMD, "node.env.example"))["CASCADE_NODE_NAME"]
    subprocess.run([binary, "cluster", "init", "--dir", os.path.join(fixtures, "ca")],
                   check=True, capture_output=True)
    subprocess.run([binary, "cluster", "issue", "--ca", os.path.join(fixtures, "ca"),
                    "--name", node_name, "--out", os.path.join(fixtures, "node")],
                   check=True, capture_output=True)
    credentials = {"/etc/cascade/secret.key": key}
    for f in ("ca.pem", "node.pem", "node.key"):
        credentials[f"/etc/cascade/node/{f}"] = os.path.join(fixtures, "node", f)

    u = urllib.parse.urlsplit(PG)
    try:
        socket.create_connection((u.hostname, u.port or 5432), timeout=2).close()
    except OSError:
        # As scripts/test.sh does for the Rust tests: skipped, loudly, not passed.
        print("#" * 78)
        print(f"## SKIPPED: starting the units' command lines (no PostgreSQL at {u.hostname}:{u.port or 5432})")
        print("#" * 78)
        return
    # A fresh schema on the test PostgreSQL (test.sh drops cascade_t_* schemas left over).
    schema = f"cascade_t_deploy_{os.getpid()}"
    subprocess.run(["psql", "-q", PG, "-c", f"CREATE SCHEMA {schema}"], check=True)
    sep = "&" if "?" in PG else "?"
    db = f"{PG}{sep}options=-c%20search_path%3D{schema}"
    token = os.urandom(16).hex()
    units = []
    try:
        control = Unit("cascade-control.service", binary, tmp, credentials, {
            "CASCADE_HTTP": f"127.0.0.1:{free_port()}",
            "CASCADE_DATABASE_URL": db,
            "CASCADE_NATS_URL": NATS,
            "CASCADE_CLUSTER_TOKEN": token,
        })
        units.append(control)
        base = control.start()
        check("systemd cascade-control.service: ExecStart listens", True)
        status, body = http_get(base + "/readyz")
        check("systemd cascade-control.service: /readyz 200 (PostgreSQL answers)",
              status == 200, f"{status} {body}")
        status, body = http_get(base + "/healthz")
        check("systemd cascade-control.service: /healthz 200 (Kubernetes' liveness probe)",
              status == 200, f"{status} {body}")
        status, body = http_get(base + "/metrics")
        check("systemd cascade-control.service: /metrics 200", status == 200, str(status))

        workers = os.cpu_count() or 1
        media = free_port_run(workers)
        http = free_port()
        node = Unit("cascade-node.service", binary, tmp, credentials, {
            "CASCADE_CONTROL_PLANE": base,
            "CASCADE_CLUSTER_TOKEN": token,
            "CASCADE_HTTP": f"127.0.0.1:{http}",
            "CASCADE_PUBLIC_URL": f"http://127.0.0.1:{http}",
            "CASCADE_BIND_IP": "127.0.0.1",
            "CASCADE_PUBLIC_IP": "127.0.0.1",
            "CASCADE_UDP_PORT": str(media),
            "CASCADE_TCP_PORT": str(media),
            "CASCADE_RELAY_LISTEN": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
        })
        units.append(node)
        nbase = node.start()
        check("systemd cascade-node.service: ExecStart listens", True)
        for path in ("/healthz", "/readyz"):
            status, body = http_get(nbase + path)
            check(f"systemd cascade-node.service: {path} 200", status == 200, f"{status} {body}")
        status, body = http_get(nbase + "/healthz")
        want = [f"127.0.0.1:{media + i}" for i in range(workers)]
        check("systemd cascade-node.service: media on the configured UDP ports",
              status == 200 and json.loads(body).get("media") == want, body)

        def registered():
            s, b = http_get(base + "/api/v1/cluster/nodes", token)
            if s != 200:
                return None
            return [n for n in json.loads(b) if n["name"] == node_name and n["alive"]]
        found = wait_for(registered, 10)
        check(f"systemd: node {node_name} registered and alive with the control plane",
              bool(found), str(found))
        if found:
            check("systemd: registered with its role, public URL and relay address",
                  found[0]["role"] == node.env["CASCADE_ROLE"]
                  and found[0]["http_url"] == node.env["CASCADE_PUBLIC_URL"]
                  and found[0]["relay_addr"] == node.env["CASCADE_RELAY_LISTEN"], str(found[0]))

        # systemctl stop: ExecStop (drain, pause), then KillSignal.
        for argv, ignore, r in node.stop_commands():
            shown = " ".join(os.path.basename(a) if a == binary else a for a in argv)
            check(f"systemd cascade-node.service: ExecStop {shown} exits 0", r.returncode == 0,
                  r.stdout + r.stderr)
            if "drain" in argv:
                def draining():
                    s, b = http_get(nbase + "/readyz")
                    return s == 503 and "draining" in b
                check("systemd cascade-node.service: /readyz 503 'draining' after the drain",
                      wait_for(draining, 5))
        code, took = node.terminate()
        check(f"systemd cascade-node.service: SIGTERM, exit 0 ({took:.1f} s)", code == 0,
              f"exit {code}; log {node.log.name}")
        code, took = control.terminate()
        check(f"systemd cascade-control.service: SIGTERM, exit 0 ({took:.1f} s)", code == 0,
              f"exit {code}; log {control.log.name}")

        media = free_port_run(workers)
        serve = Unit("cascade-serve.service", binary, tmp, credentials, {
            "CASCADE_HTTP": f"127.0.0.1:{free_port()}",
            "CASCADE_BIND_IP": "127.0.0.1",
            "CASCADE_PUBLIC_IP": "127.0.0.1",
            "CASCADE_UDP_PORT": str(media),
            "CASCADE_TCP_PORT": str(media),
        })
        units.append(serve)
        sbase = serve.start()
        for path in ("/healthz", "/readyz"):
            status, body = http_get(sbase + path)
            check(f"systemd cascade-serve.service: {path} 200", status == 200, f"{status} {body}")
        data = serve.env["CASCADE_DATA_DIR"]
        check("systemd cascade-serve.service: database and secret key in the state directory",
              os.path.exists(os.path.join(data, "cascade.db"))
              and os.path.exists(os.path.join(data, "secret.key")), str(os.listdir(data)))
        code, took = serve.terminate()
        check(f"systemd cascade-serve.service: SIGTERM, exit 0 ({took:.1f} s)", code == 0,
              f"exit {code}")
    except Exception as e:  # a unit that would not start is a failure, not a crash
        check("systemd: units start", False, repr(e))
    finally:
        for u in units:
            u.kill()
        subprocess.run(["psql", "-q", PG, "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                       capture_output=True)


# --- Kubernetes ---------------------------------------------------------------------------

def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def k8s(binary, tmp):
    kust = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
    listed = kust.get("resources", [])
    missing = [r for r in listed if not os.path.isfile(os.path.join(K8S, r))]
    check("kubernetes: every resource in kustomization.yaml exists", not missing, str(missing))
    manifests = sorted(f for f in os.listdir(K8S)
                       if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
    orphans = [m for m in manifests if m not in listed]
    check("kubernetes: every manifest is in kustomization.yaml", not orphans, str(orphans))
    for m in manifests:
        r = subprocess.run(["kubernetes-validate", "--strict", "--quiet",
                            os.path.join(K8S, m)], capture_output=True, text=True)
        check(f"kubernetes: kubernetes-validate --strict {m}", r.returncode == 0,
              (r.stdout + r.stderr).strip())
    gen_files = []
    for g in kust.get("secretGenerator", []):
        for e in g.get("envs", []):
            gen_files.append(e)
            example = os.path.join(K8S, e + ".example")
            ok = os.path.isfile(example)
            check(f"kubernetes: {e}.example shows the secret's variables", ok)
            if ok:
                names = set(parse_env_file(example))
                cmds = [["control"]] if "control" in g["name"] else [["control"], ["node"]]
                for cmd in cmds:
                    check_env_names(binary, f"kubernetes secret {g['name']}", cmd, names)
        for f in g.get("files", []):
            gen_files.append(f.partition("=")[2] or f)

    docs = [d for m in manifests for d in load_docs(os.path.join(K8S, m))]
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]
    for w in workloads:
        spec = w["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"kubernetes {w['kind']}/{w['metadata']['name']} {c['name']}"
            if c["image"] != "cascade":
                continue
            argv = c.get("command", [])[1:] if c.get("command") else c.get("args", [])
            check_invocation(binary, where, argv)
            cmd = [a for a in argv if not a.startswith("-")][:1]
            if cmd == ["cluster"]:
                cmd = argv[:2]
            names = {e["name"] for e in c.get("env", [])}
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef:
                    names |= set(configmaps[ef["configMapRef"]["name"]])
            check_env_names(binary, where, cmd, names)
            pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            for call in cascade_calls(" ".join(shlex.quote(a) for a in pre[2:]) if pre[:2] == ["/bin/sh", "-c"] else ""):
                check_invocation(binary, where + " preStop", call)
                sub = [w for w in call if not w.startswith("-")][:2]
                check_env_names(binary, where + " preStop", sub, names)
                # `cluster drain` needs its URL and token from the container's environment.
                need = {"CASCADE_CONTROL_PLANE", "CASCADE_CLUSTER_TOKEN"} - names
                secrets = {ef["secretRef"]["name"] for ef in c.get("envFrom", []) if "secretRef" in ef}
                if "cascade-cluster" in secrets:
                    need.discard("CASCADE_CLUSTER_TOKEN")
                check(where + " preStop: the drain's control plane and token are in its environment",
                      not need, str(need))

    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    dep = by_name.get(("Deployment", "cascade-control"))
    pdb = by_name.get(("PodDisruptionBudget", "cascade-control"))
    check("kubernetes: control plane Deployment with more than one replica and a PDB",
          dep is not None and dep["spec"]["replicas"] > 1 and pdb is not None
          and pdb["spec"]["selector"]["matchLabels"].items()
          <= dep["spec"]["template"]["metadata"]["labels"].items())
    if dep:
        c = dep["spec"]["template"]["spec"]["containers"][0]
        check("kubernetes: control plane readiness on /readyz",
              c["readinessProbe"]["httpGet"]["path"] == "/readyz")
    daemonsets = [d for d in docs if d["kind"] == "DaemonSet"]
    roles = {}
    for d in daemonsets:
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        role = next(e["value"] for e in c["env"] if e["name"] == "CASCADE_ROLE")
        roles[role] = d
        check(f"kubernetes: {d['metadata']['name']}: host network, readiness on /readyz, preStop drain",
              spec.get("hostNetwork") is True
              and spec.get("dnsPolicy") == "ClusterFirstWithHostNet"
              and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
              and "cluster drain" in " ".join(c["lifecycle"]["preStop"]["exec"]["command"]))
    check("kubernetes: a DaemonSet per role", sorted(roles) == ["edge", "origin", "relay"], str(sorted(roles)))
    if "edge" in roles:
        same = all(yaml.safe_dump(roles["edge"]).replace("edge", r) == yaml.safe_dump(roles[r])
                   for r in roles)
        check("kubernetes: the media DaemonSets differ only by role", same)

    # The whole kustomization rendered (kubectl kustomize), with throw-away secrets.
    if shutil.which("kubectl"):
        copy = os.path.join(tmp, "kustomize")
        shutil.copytree(K8S, copy)
        for rel in gen_files:
            path = os.path.join(copy, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.exists(path + ".example"):
                shutil.copyfile(path + ".example", path)
        subprocess.run([binary, "cluster", "init", "--dir", os.path.join(copy, "secrets", "ca")],
                       check=True, capture_output=True)
        r = subprocess.run(["kubectl", "kustomize", copy], capture_output=True, text=True)
        check("kubernetes: kubectl kustomize renders", r.returncode == 0, r.stderr)
        if r.returncode == 0:
            rendered = os.path.join(tmp, "rendered.yaml")
            with open(rendered, "w") as f:
                f.write(r.stdout)
            v = subprocess.run(["kubernetes-validate", "--strict", "--quiet", rendered],
                               capture_output=True, text=True)
            check("kubernetes: kubernetes-validate --strict on the rendered kustomization",
                  v.returncode == 0, (v.stdout + v.stderr).strip())
            out = list(yaml.safe_load_all(r.stdout))
            check("kubernetes: every rendered object is in namespace cascade",
                  all(o["metadata"].get("namespace") == "cascade" for o in out
                      if o["kind"] != "Namespace"))
    else:
        print("      (kubectl not installed: the rendered kustomization is not checked)")


# --- Dockerfile ---------------------------------------------------------------------------

def dockerfile(binary, tmp):
    r = subprocess.run(["hadolint", "--no-color", "--failure-threshold", "style", DOCKERFILE],
                       capture_output=True, text=True)
    check("container: hadolint finds nothing", r.returncode == 0 and not r.stdout.strip(),
          r.stdout + r.stderr)
    lines = open(DOCKERFILE).read().splitlines()
    bare = [i + 1 for i, l in enumerate(lines) if l.startswith("# hadolint ignore")
            and (i == 0 or not lines[i - 1].startswith("#") or lines[i - 1].startswith("# hadolint"))]
    check("container: every hadolint ignore has its reason above it", not bare, f"lines {bare}")
    text = "\n".join(lines)
    check("container: builds `cargo build --release --locked --bin cascade`",
          "cargo build --release --locked --bin cascade" in text)
    m = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
    check(f"container: ENTRYPOINT is {UNIT_BIN}, as in the units", m and m.group(1) == UNIT_BIN)
    cmd = re.search(r'^CMD \[(.*)\]', text, re.M)
    check_invocation(binary, "container CMD", json.loads("[" + cmd.group(1) + "]"))
    users = re.findall(r"^USER (\S+)", text, re.M)
    check("container: runs as a non-root numeric user",
          users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0")
    env = re.search(r"^ENV ((?:.*\\\n)*.*)", text, re.M)
    names = set(re.findall(r"(CASCADE_[A-Z0-9_]+)=", env.group(1) if env else ""))
    for cmd in (["serve"], ["node"], ["control"]):
        check_env_names(binary, "container ENV", cmd, names)
    exposed = set(re.findall(r"(\d+/(?:tcp|udp))", " ".join(re.findall(r"^EXPOSE (.*)", text, re.M))))
    node_cm = {}
    for d in load_docs(os.path.join(K8S, "media-nodes.yaml")):
        if d["kind"] == "ConfigMap":
            node_cm = d["data"]
    want = {node_cm["CASCADE_HTTP"].rsplit(":", 1)[1] + "/tcp",
            node_cm["CASCADE_UDP_PORT"] + "/udp", node_cm["CASCADE_TCP_PORT"] + "/tcp",
            node_cm["CASCADE_RELAY_LISTEN"].rsplit(":", 1)[1] + "/udp"}
    check("container: EXPOSE the media node's ports of the Kubernetes manifests",
          want <= exposed, f"want {sorted(want)}, EXPOSE {sorted(exposed)}")
    # The build context (the repository less Dockerfile.dockerignore) has what cargo reads.
    ignore = [l.strip() for l in open(DOCKERFILE + ".dockerignore")
              if l.strip() and not l.startswith("#")]
    root = os.path.dirname(HERE)
    ctx = os.path.join(tmp, "context")
    top = {p for p in ignore if "/" not in p and "*" not in p}
    sub = [p for p in ignore if "/" in p and "*" not in p]
    shutil.copytree(root, ctx, ignore=lambda d, names: [
        n for n in names
        if (d == root and n in top) or n in ("target", "node_modules")
        or os.path.relpath(os.path.join(d, n), root) in sub])
    r = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked",
                        "--offline"], cwd=ctx, capture_output=True, text=True)
    check("container: the build context holds every workspace member (cargo metadata)",
          r.returncode == 0, r.stderr[-500:])
    included = subprocess.run(["grep", "-rhoE", r'include_(str|bytes)!\("[^"]+"\)', "--include=*.rs",
                               "src", "sfu", "signaling", "control-plane", "edge-relay", "loadtest"],
                              cwd=root, capture_output=True, text=True).stdout.split()
    lost = []
    for path in subprocess.run(["grep", "-rlE", r"include_(str|bytes)!", "--include=*.rs", "src",
                                "sfu", "signaling", "control-plane", "edge-relay", "loadtest"],
                               cwd=root, capture_output=True, text=True).stdout.split():
        for rel in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', open(os.path.join(root, path)).read()):
            if not os.path.exists(os.path.join(ctx, os.path.dirname(path), rel)):
                lost.append(f"{path}: {rel}")
    check(f"container: the build context holds the {len(included)} files the code includes",
          not lost, str(lost))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--only", choices=["systemd", "kubernetes", "container"])
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="cascade-deploy-")
    try:
        if a.only in (None, "systemd"):
            print("== systemd")
            systemd_static(binary, tmp)
            systemd_runtime(binary, tmp)
        if a.only in (None, "kubernetes"):
            print("== Kubernetes")
            k8s(binary, tmp)
        if a.only in (None, "container"):
            print("== container")
            dockerfile(binary, tmp)
    finally:
        failed = results.count(False)
        if failed:
            print(f"(temporary files and logs kept in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{results.count(True)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
