#!/usr/bin/env bash
# Runs a command beside a throwaway Qdrant server when one can be had, and says which:
#
#   scripts/with-qdrant.sh cargo test --release --test it vectors
#
# - QDRANT_URL already set: the command runs against that server.
# - Else, a Qdrant server binary at $QUARRY_QDRANT_BIN (default
#   ~/.cache/quarry/qdrant/qdrant) is started on 127.0.0.1 on free ports, its storage in a
#   temporary folder, telemetry off; the command sees its gRPC URL as QDRANT_URL, and the server
#   is stopped and its folder removed afterwards.
# - Else the command runs without QDRANT_URL, and the tests' server variants print that they
#   are skipped.
#
# No Qdrant server binary is in any package registry this project installs from, and the
# project does not build one: README.md ("Qdrant server") says how to build and cache it.
set -euo pipefail

if [ -n "${QDRANT_URL:-}" ]; then
  echo "with-qdrant.sh: using the Qdrant server at $QDRANT_URL" >&2
  exec "$@"
fi

bin="${QUARRY_QDRANT_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/quarry/qdrant/qdrant}"
if [ ! -x "$bin" ]; then
  echo "with-qdrant.sh: no Qdrant server binary at $bin: the tests' Qdrant server variants are SKIPPED (README.md, 'Qdrant server', says how to build one)" >&2
  exec "$@"
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/quarry-qdrant.XXXXXX")"
pid=""
stop() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap stop EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port="$(free_port)"
grpc_port="$(free_port)"
while [ "$grpc_port" = "$http_port" ]; do grpc_port="$(free_port)"; done

(
  cd "$dir"
  export QDRANT__SERVICE__HOST=127.0.0.1
  export QDRANT__SERVICE__HTTP_PORT="$http_port"
  export QDRANT__SERVICE__GRPC_PORT="$grpc_port"
  export QDRANT__STORAGE__STORAGE_PATH="$dir/storage"
  export QDRANT__STORAGE__SNAPSHOTS_PATH="$dir/snapshots"
  export QDRANT__TELEMETRY_DISABLED=true
  export QDRANT__LOG_LEVEL=WARN
  exec "$bin"
) >"$dir/server.log" 2>&1 &
pid=$!

ready=""
for _ in $(seq 1 300); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$http_port/readyz', timeout=1)" 2>/dev/null; then
    ready=1
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "with-qdrant.sh: the Qdrant server at $bin did not start:" >&2
  cat "$dir/server.log" >&2
  exit 1
fi
version="$(python3 -c "import json, urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$http_port/'))['version'])" 2>/dev/null || echo unknown)"
echo "with-qdrant.sh: Qdrant server $version ($bin) on 127.0.0.1:$grpc_port (gRPC), telemetry off" >&2
export QDRANT_URL="http://127.0.0.1:$grpc_port"
"$@"
