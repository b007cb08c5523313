#!/usr/bin/env bash
# Interop suite: starts `veritas broker` as a separate process on a free port and drives it with
# clients nobody here wrote. Any wrong result fails the run.
#
#   tests/interop/run.sh path/to/veritas
#
# Needs kcat, Go with Debian's sarama 1.22.1 (golang-go, golang-github-shopify-sarama-dev) and
# Python 3 with venv; .ci/run installs them. INTEROP_PYTHON names a Python that has
# confluent-kafka and kafka-python (.ci/run makes one); without it a venv is created here with
# the latest of both from PyPI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
veritas=$(realpath "${1:?usage: run.sh path/to/veritas}")
work=$(mktemp -d)
broker_pid=
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

failed=0
run() {
  local name=$1; shift
  printf -- '--- %s\n' "$name"
  local t0=$SECONDS
  if "$@" >"$work/$name.out" 2>&1; then
    echo "PASS $name ($((SECONDS - t0)) s)"
  else
    echo "FAIL $name ($((SECONDS - t0)) s)"; sed 's/^/    /' "$work/$name.out" | tail -60
    failed=1
  fi
}

# Clients first (a build failure is a failure, not a skip).
export GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= GOCACHE="$work/gocache"
run build-sarama-check bash -c "cd '$here/sarama' && go build -o '$work/sarama-check' ."
python=${INTEROP_PYTHON:-}
if [ -z "$python" ]; then
  run python-venv bash -c "python3 -m venv '$work/venv' && '$work/venv/bin/pip' install -q confluent-kafka kafka-python"
  python=$work/venv/bin/python
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export BOOTSTRAP="127.0.0.1:$port" SARAMA_CHECK="$work/sarama-check" VERITAS="$veritas"
# Default partitions 1, as Kafka's num.partitions: the tutorial's consumer reads partition 0 of
# an auto-created topic.
"$veritas" broker --listen "$BOOTSTRAP" --data-dir "$work/data" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

run api-versions python3 "$here/api_versions.py" "$BOOTSTRAP" --check "$here/../../COMPATIBILITY.md"
run kcat "$here/kcat.sh"
run sarama "$here/sarama.sh"
run seed-detect "$here/seed-detect.sh"
run confluent-kafka "$python" "$here/confluent_kafka_check.py"
run kafka-python "$python" "$here/kafka_python_check.py"

if ! kill -0 "$broker_pid" 2>/dev/null; then
  echo "FAIL broker died"; failed=1
fi
if (( failed )); then
  echo "broker log (tail):"; tail -50 "$work/broker.log" | sed 's/^/    /'
  exit 1
fi
echo "interop: all passed"
