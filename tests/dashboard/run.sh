#!/usr/bin/env bash
# Browser test against the real thing: starts `veritas demo` (embedded broker, producer, detector,
# dashboard) on free ports, waits for the dashboard URL it prints, drives the page in headless
# Chromium with check.mjs (live numbers must move, decisions must show, charts must draw, nothing
# may load from elsewhere), saves a screenshot, then stops the demo with Ctrl+C (SIGINT) and
# requires a clean exit.
#
#   tests/dashboard/run.sh path/to/veritas [screenshot.png]
#
# Needs chromium (/usr/bin/chromium, or $CHROMIUM), node >= 18 and npm; runs `npm ci` here when
# node_modules is missing. Extra demo flags go in $DEMO_ARGS (e.g. "--model m.json"); the rate is
# $VERITAS_RATE (default here 1000 events/s);
# $WAIT_SECS bounds the wait for the dashboard URL (model training included, default 900).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
veritas=$(realpath "${1:?usage: run.sh path/to/veritas [screenshot.png]}")
out=$(realpath -m "${2:-${TMPDIR:-/tmp}/veritas-dashboard.png}")
wait_secs=${WAIT_SECS:-900}
work=$(mktemp -d)
demo_pid=
cleanup() {
  if [[ -n $demo_pid ]] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -INT "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ ! -d $here/node_modules/playwright-core ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

# shellcheck disable=SC2086 # DEMO_ARGS is a list of flags
VERITAS_RATE=${VERITAS_RATE:-1000} "$veritas" demo --data-dir "$work/data" \
  --broker-listen 127.0.0.1:0 --dashboard-listen 127.0.0.1:0 ${DEMO_ARGS:-} >"$work/demo.log" 2>&1 &
demo_pid=$!

url=
deadline=$((SECONDS + wait_secs))
while [[ -z $url ]]; do
  url=$(grep -o 'dashboard: .*http://[^ ]*' "$work/demo.log" | grep -o 'http://[^ ]*' | head -1 || true)
  if [[ -n $url ]]; then break; fi
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    echo "FAIL the demo exited before serving the dashboard:"; sed 's/^/    /' "$work/demo.log" | tail -40
    exit 1
  fi
  if (( SECONDS >= deadline )); then
    echo "FAIL no dashboard URL within ${wait_secs}s:"; sed 's/^/    /' "$work/demo.log" | tail -40
    exit 1
  fi
  sleep 0.5
done
echo "dashboard at $url"

status=0
node "$here/check.mjs" "$url" "$out" --timeout-secs 180 >"$work/check.out" 2>&1 || status=$?
cat "$work/check.out"

# /metrics on the same server: Prometheus text carrying the broker's, the producer's and the
# detector's metrics, with counters that moved.
metrics=$(curl -fsS "${url%/}/metrics" || true)
for family in veritas_broker_requests_total veritas_broker_records_in_total \
  veritas_producer_sent_total veritas_detector_events_total veritas_detector_decisions_total; do
  value=$(printf '%s\n' "$metrics" | awk -v f="$family" '$1 ~ "^"f"({|$)" { s += $2 } END { print s + 0 }')
  if ! awk -v v="$value" 'BEGIN { exit !(v > 0) }'; then
    echo "FAIL /metrics: $family missing or zero"; status=1
  fi
done
(( status == 0 )) && echo "PASS /metrics carries broker, producer and detector counters"

kill -INT "$demo_pid"
demo_status=0
wait "$demo_pid" || demo_status=$?
demo_pid=
if (( demo_status != 0 )); then
  echo "FAIL the demo exited with status $demo_status after Ctrl+C"; status=1
fi
if (( status != 0 )); then
  echo "demo log (tail):"; sed 's/^/    /' "$work/demo.log" | tail -40
  echo "FAIL dashboard browser test"
  exit 1
fi
echo "PASS dashboard browser test; screenshot: $out"
