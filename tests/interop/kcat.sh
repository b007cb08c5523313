#!/usr/bin/env bash
# kcat (librdkafka inside): metadata, keyed produce, consume by partition, offset lookup,
# compressed produce, and consume as a group (commit, resume).
set -euo pipefail
b=${BOOTSTRAP:?}
topic="kcat-$RANDOM$RANDOM"

# Metadata: the broker lists itself; asking for an unknown topic auto-creates it with 1 partition.
kcat -b "$b" -L -t "$topic" | tee /dev/stderr | grep -q "topic \"$topic\" with 1 partitions"
kcat -b "$b" -L | grep -q "1 brokers:"

# Produce keyed messages with acks=all and read them back, keys included, by partition.
printf 'k1:v1\nk2:v2\nk3:{"FirstName":"Jimmie","Amount":644.78}\n' | kcat -b "$b" -P -t "$topic" -K: -X acks=all
out=$(kcat -b "$b" -C -t "$topic" -p 0 -o beginning -e -f '%k=%s@%o\n')
echo "$out"
expected=$'k1=v1@0\nk2=v2@1\nk3={"FirstName":"Jimmie","Amount":644.78}@2'
[ "$out" = "$expected" ]

# JSON envelope and offset lookup of the end.
kcat -b "$b" -C -t "$topic" -p 0 -o -1 -e -J | grep -q '"key":"k3"'
kcat -b "$b" -Q -t "$topic:0:-1" | grep -q "$topic \[0\] offset 3"

# Compressed produce (librdkafka picks record batches v2 from our ApiVersions).
for codec in gzip snappy lz4 zstd; do
  seq 1 100 | kcat -b "$b" -P -t "$topic-$codec" -z "$codec"
  n=$(kcat -b "$b" -C -t "$topic-$codec" -o beginning -e -q | wc -l)
  [ "$n" = 100 ] || { echo "$codec: got $n of 100"; exit 1; }
done
# As a consumer group (-G): everything from the beginning, once; the group's commit (made when
# kcat closes) makes a second run see nothing, and a third run only what was produced since.
group="kcat-group-$RANDOM$RANDOM"
out=$(kcat -b "$b" -G "$group" -X auto.offset.reset=earliest -e -q -f '%k=%s@%o\n' "$topic" | sort)
echo "$out"
[ "$out" = "$expected" ] || { echo "group read: $out"; exit 1; }
again=$(kcat -b "$b" -G "$group" -X auto.offset.reset=earliest -e -q "$topic")
[ -z "$again" ] || { echo "group re-read after its commit: $again"; exit 1; }
echo 'k4:late' | kcat -b "$b" -P -t "$topic" -K: -X acks=all
late=$(kcat -b "$b" -G "$group" -X auto.offset.reset=earliest -e -q -f '%k=%s@%o\n' "$topic")
[ "$late" = "k4=late@3" ] || { echo "group resumed with: $late"; exit 1; }
echo "kcat ok"
