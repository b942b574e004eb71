#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1:5432 (trust authentication, database `test`,
# superuser `postgres`) for the test suite, on a machine where none runs: Debian's
# packaged server, a new cluster in a temporary directory, logging to its `log` file.
# The server outlives this script (the test run's processes use it); nothing else on the
# machine is changed. Root runs it as the `postgres` user the package creates.
set -euo pipefail

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(bin_dir)" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
bin=$(bin_dir)
[ -n "$bin" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }

dir=$(mktemp -d /tmp/cascade-test-pg.XXXXXX)
as_owner=()
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$dir"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log"
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-h 127.0.0.1 -p 5432 -k $dir" start >/dev/null
"${as_owner[@]}" "$bin/psql" -q -h 127.0.0.1 -U postgres -d postgres -c 'create database test'
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') started on 127.0.0.1:5432 ($dir)"
