#!/usr/bin/env bash
# Go's sarama 1.22.1 (the tutorial's client), built by run.sh as $SARAMA_CHECK:
#  1. the tutorial's flow with sarama's default config (the Kafka 0.8.2 protocol: Metadata v0,
#     Produce v0 message sets, ListOffsets v0, Fetch v0): the consumer on
#     ConsumePartition("bankaccount", 0, OffsetNewest) starts first, then the SyncProducer sends
#     N bank-account values without a key, and the consumer must print exactly them, in order;
#  2. config.Version = V2_0_0_0: idempotent producer and a ConsumerGroup that commits;
#  3. every codec, at the oldest protocol sarama allows for it;
#  4. a compacted topic, read back after the broker's log cleaner ran (old and new protocol).
set -euo pipefail
b=${BOOTSTRAP:?}
check=${SARAMA_CHECK:?}
n=10
tmp=$(mktemp -d)
trap 'kill "$consumer" 2>/dev/null || true; rm -rf "$tmp"' EXIT

"$check" -brokers "$b" -mode consume -topic bankaccount -n "$n" >"$tmp/consumer.out" 2>&1 &
consumer=$!
for _ in $(seq 1 600); do
  grep -q '^Consumer started' "$tmp/consumer.out" && break
  kill -0 "$consumer" 2>/dev/null || { cat "$tmp/consumer.out"; exit 1; }
  sleep 0.1
done
grep -q '^Consumer started' "$tmp/consumer.out" || { echo "consumer never started"; exit 1; }
"$check" -brokers "$b" -mode produce -topic bankaccount -n "$n" >"$tmp/producer.out"
wait "$consumer" || { echo "consumer failed:"; cat "$tmp/consumer.out"; exit 1; }
cat "$tmp/consumer.out"
expected=$(sed 's/.*/Received message | Topic(bankaccount) | Message(&) /' "$tmp/producer.out")
received=$(grep '^Received message' "$tmp/consumer.out")
[ "$received" = "$expected" ] || { echo "consumer printed something else than what was sent"; diff <(echo "$expected") <(echo "$received"); exit 1; }
echo "tutorial flow ok: $n messages, default config"

"$check" -brokers "$b" -mode v2 -topic "sarama-v2-$RANDOM" -group "sarama-v2-$RANDOM" -n 100
"$check" -brokers "$b" -mode codecs -topic "sarama-codec-$RANDOM" -n 200
"$check" -brokers "$b" -mode compacted -topic "sarama-compacted-$RANDOM" -n 25
echo "sarama ok"
