#!/usr/bin/env bash
# librdkafka's own integration test suite (from Debian's source package of librdkafka 2.0.2)
# against `veritas broker`, in full mode (never -Q, which skips most sub-tests yet reports them
# passed). Any failure fails the run.
#
#   tests/interop/librdkafka-suite.sh path/to/veritas [TESTS]
#
# Without TESTS, runs every entry of librdkafka-tests.txt (the passing set; COMPATIBILITY.md
# lists what is excluded and why). TESTS is a comma-separated list of test numbers to run
# instead, whole, in the default scenario. Environment:
#   RDK_WORK            where the source is fetched and built (default: a temporary directory,
#                       removed afterwards); set it to keep the build between runs. Nothing is
#                       written into the repository.
#   TEST_KAFKA_VERSION  the Kafka version whose protocol the broker claims (default 3.6.0.0):
#                       the suite gates tests and sub-tests on it.
#   RDK_PARALLEL        tests one invocation runs at once (default 2).
#   RDK_JOBS            test-runner invocations at once (default 3).
#   RDK_TESTS_FILE      another list in librdkafka-tests.txt's format.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
veritas=$(realpath "${1:?usage: librdkafka-suite.sh path/to/veritas [TESTS]}")
export TEST_KAFKA_VERSION=${TEST_KAFKA_VERSION:-3.6.0.0}

if [ -n "${RDK_WORK:-}" ]; then
  work=$RDK_WORK; keep=1
else
  work=$(mktemp -d); keep=0
fi
mkdir -p "$work"
broker_pid=
broker_data=
# Stopping a broker also removes its data: the suite writes about a gigabyte per scenario.
stop_broker() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  broker_pid=
  if [ -n "$broker_data" ]; then rm -rf "$broker_data"; fi
  broker_data=
}
cleanup() {
  stop_broker
  if [ "$keep" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# --- fetch and build (Debian's source package, through a private apt state: /etc/apt untouched)
src=$(ls -d "$work"/librdkafka-*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ] || [ ! -x "$src/tests/test-runner" ]; then
  D=$work/apt-src
  mkdir -p "$D/lists/partial" "$D/parts"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$D/parts/src.sources"
  O=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$D/parts"
     -o "Dir::State::Lists=$D/lists" -o APT::Sandbox::User=root)
  apt-get "${O[@]}" update -qq
  (cd "$D" && apt-get "${O[@]}" source --download-only -qq librdkafka)
  tar -xzf "$D"/librdkafka_*.orig.tar.gz -C "$work"
  src=$(ls -d "$work"/librdkafka-*/ | head -1)
  echo "building $(basename "$src") and its tests (about two minutes)"
  (cd "$src" && ./configure --disable-lz4-ext >"$work/configure.log" 2>&1 \
     && make -j"$(nproc)" libs >"$work/make.log" 2>&1 \
     && make -j"$(nproc)" -C tests build >>"$work/make.log" 2>&1) \
    || { tail -40 "$work/configure.log" "$work/make.log"; exit 1; }
fi
cd "$src/tests"
mkdir -p "$work/kafka/bin"
cp "$here/kafka-topics.sh" "$work/kafka/bin/kafka-topics.sh"
export KAFKA_PATH=$work/kafka VERITAS=$veritas

# --- a fresh broker on a free port, configured as the suite's own test clusters are
# (tests/scenarios/*.json): topics auto-created with four partitions (or not at all, for the
# `noautocreate` scenario). Retention is off: several tests write 1970 timestamps, which
# Kafka's five-minute retention check would not get to before the test ends.
start_broker() { # auto-create: true|false
  local port data
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  data=$(mktemp -d "$work/data.XXXXXX")
  broker_data=$data
  "$veritas" broker --listen "127.0.0.1:$port" --data-dir "$data" --default-partitions 4 \
    --auto-create-topics "$1" --retention-ms -1 --log info >>"$work/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  # librdkafka re-seeds rand() with the current millisecond (0-999) when a test creates its
  # first client, and the tests draw their "random" topic and group names from rand(): two
  # invocations started in the same millisecond then share names, and one test's consumers join
  # the other's group. Each invocation gets its own TEST_SEED instead (from its process id, unique
  # among the invocations running at once; see run below).
  printf 'bootstrap.servers=127.0.0.1:%s\nbroker.address.family=v4\nenable.random.seed=false\n' \
    "$port" >test.conf
  # Tests that drive Kafka's own `kafka-topics.sh` get kafka-topics.sh, the shim over
  # `veritas topics` (--bootstrap-server BROKERS, as the suite does for Kafka >= 3).
  export BROKERS="127.0.0.1:$port"
}

# run LOG NAME SCENARIO TESTS [SUBTESTS]: one test-runner invocation through run-test.sh (which
# puts the freshly built library first on LD_LIBRARY_PATH; the system may have another). Writes
# its output to LOG and, last, a result line to LOG.result.
run() {
  local log=$1 name=$2 scenario=$3 tests=$4 subtests=${5:-} status=0 t0=$SECONDS
  TEST_SEED=$(((BASHPID << 15 ^ RANDOM) & 0x7fffffff)) \
  TESTS=$tests SUBTESTS=$subtests TEST_SCENARIO=$scenario ./run-test.sh -E -L -p"${RDK_PARALLEL:-2}" \
    >"$log" 2>&1 </dev/null || status=$?
  if [ "$status" = 0 ] && ! grep -q 'TEST FAILURE' "$log"; then
    echo "PASS $name ($((SECONDS - t0)) s)" >"$log.result"
  else
    {
      echo "FAIL $name ($((SECONDS - t0)) s, exit $status): $log"
      sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E -A6 'TEST FAILURE' | head -40 || true
    } >"$log.result"
  fi
}

# Invocations run up to RDK_JOBS at once against the same broker (tests use unique topic and
# group names, as they do when the suite runs its own tests in parallel); most of their time is
# spent waiting on rebalances and timeouts.
jobs_max=${RDK_JOBS:-3}
results=()
pids=()
spawn() {
  local alive p
  while :; do # keep the invocations still running (the broker is a job too: never wait on it)
    alive=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    pids=("${alive[@]}")
    [ "${#pids[@]}" -lt "$jobs_max" ] && break
    wait -n "${pids[@]}" 2>/dev/null || true
  done
  local log
  log=$(printf '%s/suite-%03d.log' "$work" "${#results[@]}")
  rm -f "$log" "$log.result"
  run "$log" "$@" &
  pids+=($!)
  results+=("$log.result")
}
wait_all() {
  local p
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

echo "librdkafka $(basename "$src") suite against veritas broker (TEST_KAFKA_VERSION=$TEST_KAFKA_VERSION)"
if [ -n "${2:-}" ]; then
  start_broker true
  spawn "$2" default "$2"
  wait_all
  stop_broker
else
  # librdkafka-tests.txt: `[scenario:]TEST [SUBTEST...]` per line, `#` comments. Whole tests of
  # a scenario run in one invocation; a line with a SUBTEST (the rest of the line, a substring
  # of the sub-test names to run) runs those sub-tests alone.
  list=$(sed 's/#.*//' "${RDK_TESTS_FILE:-$here/librdkafka-tests.txt}" | awk 'NF')
  for scenario in default noautocreate; do
    if [ "$scenario" = default ]; then
      lines=$(echo "$list" | grep -v '^[a-z]*:' || true)
    else
      lines=$(echo "$list" | grep "^$scenario:" | sed "s/^$scenario://" || true)
    fi
    [ -n "$lines" ] || continue
    auto=true; [ "$scenario" = noautocreate ] && auto=false
    start_broker "$auto"
    whole=$(echo "$lines" | awk 'NF == 1 {print $1}' | paste -sd, -)
    [ -z "$whole" ] || spawn "$scenario: $whole" "$scenario" "$whole"
    while read -r test sub; do
      spawn "$scenario: $test $sub" "$scenario" "$test" "$sub"
    done < <(echo "$lines" | awk 'NF >= 2')
    wait_all
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      echo "FAIL the broker died"; tail -40 "$work/broker.log"; exit 1
    fi
    stop_broker
  done
fi
failed=0
for r in "${results[@]}"; do
  if [ ! -s "$r" ]; then echo "FAIL no result: $r"; failed=1; continue; fi
  grep -q '^PASS' "$r" || failed=1
  cat "$r"
done
if [ "$failed" != 0 ]; then
  # The broker's side of a failure: group joins, rebalances and topic changes are logged at
  # info (about 300 KB for the whole suite); the work directory is gone after the run.
  echo "--- broker log (last 150 lines of $work/broker.log)"; tail -n 150 "$work/broker.log"
  echo "librdkafka suite: FAILED"; exit 1
fi
echo "librdkafka suite: all passed"
