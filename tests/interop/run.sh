#!/usr/bin/env bash
# Interop suite: starts `veritas broker` as a separate process on a free port and drives it with
# clients nobody here wrote. Any wrong result fails the run.
#
#   tests/interop/run.sh path/to/veritas
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
veritas=$(realpath "${1:?usage: run.sh path/to/veritas}")
work=$(mktemp -d)
trap 'kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export BOOTSTRAP="127.0.0.1:$port"
"$veritas" broker --listen "$BOOTSTRAP" --data-dir "$work/data" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 200); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

failed=0
run() {
  local name=$1; shift
  printf -- '--- %s\n' "$name"
  if "$@" >"$work/$name.out" 2>&1; then
    echo "PASS $name"
  else
    echo "FAIL $name"; sed 's/^/    /' "$work/$name.out" | tail -40
    failed=1
  fi
}

run kcat "$here/kcat.sh"

if ! kill -0 "$broker_pid" 2>/dev/null; then
  echo "FAIL broker died"; failed=1
fi
if (( failed )); then
  echo "broker log (tail):"; tail -50 "$work/broker.log" | sed 's/^/    /'
  exit 1
fi
echo "interop: all passed"
