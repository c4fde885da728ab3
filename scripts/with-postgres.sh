#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL cluster, then removes the cluster:
#
#   scripts/with-postgres.sh cargo test --release postgres
#
# The cluster lives in a temporary folder, listens on 127.0.0.1 on a free port, and has one
# superuser, quarry_admin (password auth over TCP). The command sees its URL as
# QUARRY_TEST_POSTGRES=postgres://quarry_admin:…@127.0.0.1:PORT/postgres. Installs Debian's
# postgresql package when no server binaries are found (as root), and runs the server as the
# `postgres` user when run as root (initdb refuses root).
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin="$(find_bin)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(find_bin)"
  else
    echo "with-postgres.sh: PostgreSQL's server is not installed: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/quarry-pg.XXXXXX")"
run_as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  run_as=(runuser -u postgres --)
fi
stop() {
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

password="quarry-test-$$-$RANDOM"
printf '%s\n' "$password" > "$dir/pw"
[ "$(id -u)" = 0 ] && chown postgres "$dir/pw"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${run_as[@]}" "$bin/initdb" -D "$dir/data" -U quarry_admin --pwfile="$dir/pw" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo "with-postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
export QUARRY_TEST_POSTGRES="postgres://quarry_admin:$password@127.0.0.1:$port/postgres"
"$@"
