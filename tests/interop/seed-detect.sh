#!/usr/bin/env bash
# The real `veritas detect --seed-output` on what the tutorial's Go producer (sarama, default
# config) sends to `bankaccount`: for every record of the topic, in order, detect must print the
# tutorial's two lines,
#   Received message | Topic(bankaccount) | Message(<the JSON sent>)
#   --AUTHORIZED-- bank account for user <FirstName>     (or --UNAUTHORIZED--)
# and stop cleanly on SIGTERM.
set -euo pipefail
b=${BOOTSTRAP:?}
check=${SARAMA_CHECK:?}
veritas=${VERITAS:?}
tmp=$(mktemp -d)
detect=
trap '[ -n "$detect" ] && kill "$detect" 2>/dev/null; rm -rf "$tmp"' EXIT

"$check" -brokers "$b" -mode produce -topic bankaccount -n 10 >"$tmp/sent"
# Everything in the topic (earlier runs' records too), as detect will see it from the beginning.
kcat -b "$b" -C -t bankaccount -p 0 -o beginning -e -q -f '%s\n' >"$tmp/topic"
total=$(wc -l <"$tmp/topic")
[ "$(tail -n 10 "$tmp/topic")" = "$(cat "$tmp/sent")" ] || { echo "topic does not end with what was sent"; exit 1; }

"$veritas" detect -b "$b" --topic bankaccount --group "seed-check-$RANDOM$RANDOM" --from-beginning \
  --seed-output --log warn >"$tmp/out" 2>"$tmp/err" &
detect=$!
for _ in $(seq 1 1200); do
  [ "$(grep -c -- 'AUTHORIZED-- bank account for user' "$tmp/out" || true)" -ge "$total" ] && break
  kill -0 "$detect" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$detect"
status=0; wait "$detect" || status=$?
detect=
cat "$tmp/out"
[ "$status" = 0 ] || { echo "detect exited with $status"; cat "$tmp/err"; exit 1; }

python3 - "$tmp/topic" "$tmp/out" <<'EOF'
import json, re, sys
records = open(sys.argv[1]).read().splitlines()
lines = open(sys.argv[2]).read().splitlines()
expected_pairs = len(records)
assert len(lines) == 2 * expected_pairs, f"{len(lines)} lines for {expected_pairs} records"
for i, value in enumerate(records):
    received, verdict = lines[2 * i], lines[2 * i + 1]
    assert received == f"Received message | Topic(bankaccount) | Message({value})", received
    name = json.loads(value)["FirstName"]
    assert re.fullmatch(rf"--(UN)?AUTHORIZED-- bank account for user {re.escape(name)}", verdict), verdict
print(f"detect printed the tutorial's lines for all {expected_pairs} records")
EOF
