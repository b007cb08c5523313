#!/usr/bin/env bash
# The part of Apache Kafka's `bin/kafka-topics.sh` that librdkafka's test suite uses, done with
# `veritas topics` (there is no JVM here): librdkafka-suite.sh installs it as
# $KAFKA_PATH/bin/kafka-topics.sh, so the tests that create, grow or delete topics through
# Kafka's tool (with topic configs, such as 0077's compacted topic) run too.
#
#   kafka-topics.sh --bootstrap-server HOST:PORT --create --topic T [--partitions N]
#                   [--replication-factor R] [--config K=V]...
#   kafka-topics.sh --bootstrap-server HOST:PORT --alter --topic T --partitions N
#   kafka-topics.sh --bootstrap-server HOST:PORT --alter --topic T --config K=V...
#   kafka-topics.sh --bootstrap-server HOST:PORT --delete --topic T
#
# Needs VERITAS (the veritas binary). Anything else is refused, loudly.
set -euo pipefail
veritas=${VERITAS:?VERITAS must name the veritas binary}
action= topic= partitions= replication= bootstrap=
configs=()
while [ $# -gt 0 ]; do
  case $1 in
    --bootstrap-server) bootstrap=$2; shift 2 ;;
    --create|--alter|--delete) action=${1#--}; shift ;;
    --topic) topic=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --replication-factor) replication=$2; shift 2 ;;
    --config) configs+=("$2"); shift 2 ;;
    *) echo "kafka-topics.sh (veritas shim): unsupported argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$bootstrap" ] && [ -n "$topic" ] && [ -n "$action" ] \
  || { echo "kafka-topics.sh (veritas shim): need --bootstrap-server, --topic and an action" >&2; exit 2; }
common=(-b "$bootstrap" --log warn)
case $action in
  create)
    args=(topics create "$topic" "${common[@]}" -p "${partitions:-1}" -r "${replication:-1}")
    for c in "${configs[@]}"; do args+=(-c "$c"); done
    exec "$veritas" "${args[@]}" ;;
  alter)
    args=(topics alter-config "$topic" "${common[@]}")
    [ -n "$partitions" ] && args+=(--partitions "$partitions")
    for c in "${configs[@]}"; do args+=(--set "$c"); done
    exec "$veritas" "${args[@]}" ;;
  delete)
    exec "$veritas" topics delete "$topic" "${common[@]}" ;;
esac
