"""kafka-python (pure Python; idempotence on by default, opens with ApiVersions v4) against a
Kafka broker: admin, a producer, a consumer with assign(), consumers with group_id that
commit and resume, a compacted topic read back after the broker's log cleaner ran (gaps in
the offsets), and the topic configs that refuse a produce (a timestamp outside
`message.timestamp.difference.max.ms`, acks=all under `min.insync.replicas=2`) raising the
client's own errors. Exits non-zero on any wrong result.

    BOOTSTRAP=127.0.0.1:9092 python kafka_python_check.py
"""

import os
import sys
import time
import uuid

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

BOOTSTRAP = os.environ["BOOTSTRAP"]
DEADLINE = 60.0
PARTITIONS = 2
N = 300


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def drain(consumer, want, what):
    got = []
    start = time.time()
    while len(got) < want:
        check(time.time() - start < DEADLINE, f"{what}: read {len(got)} of {want}")
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
    return got


def main():
    print(f"kafka-python {kafka.__version__}")
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    group = f"kp-group-{uuid.uuid4().hex[:8]}"

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    check(topic in admin.list_topics(), "created topic listed")

    # The producer: idempotent by default in kafka-python 3 (InitProducerId, sequences).
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    check(producer.config.get("enable_idempotence", False), "idempotence on by default")
    futures = [
        producer.send(topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
        for i in range(N)
    ]
    producer.flush(timeout=30)
    sent = {}
    for i, f in enumerate(futures):
        md = f.get(timeout=30)
        sent[(md.partition, md.offset)] = (f"k{i % 7}".encode(), f"v{i}".encode())
    producer.close()
    for p in range(PARTITIONS):
        offsets = sorted(o for (q, o) in sent if q == p)
        check(offsets == list(range(N // PARTITIONS)), f"partition {p}: offsets consecutive from 0")

    # assign(): no group, explicit partitions, from the beginning.
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    c.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    c.seek_to_beginning()
    records = drain(c, N, "assign()")
    got = {(r.partition, r.offset): (r.key, r.value) for r in records}
    check(got == sent, "assign() read exactly what was produced")
    ends = c.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    check(all(v == N // PARTITIONS for v in ends.values()), f"end offsets {ends}")
    c.close()

    # group_id: subscribe, read all once, commit.
    c = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False)
    records = drain(c, N, "group")
    check(len(records) == N, f"group read {len(records)} records, expected {N} (no duplicates)")
    check({(r.partition, r.offset): (r.key, r.value) for r in records} == sent, "group read exactly what was produced")
    c.commit()
    for p in range(PARTITIONS):
        committed = c.committed(TopicPartition(topic, p))
        check(committed == N // PARTITIONS, f"partition {p} committed {committed}")
    c.close()

    # A new member of the group resumes from the commit.
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for i in range(4):
        producer.send(topic, value=f"late-{i}".encode(), partition=i % PARTITIONS)
    producer.flush(timeout=30)
    producer.close()
    c = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest")
    late = drain(c, 4, "resumed member")
    check(sorted(r.value for r in late) == [f"late-{i}".encode() for i in range(4)],
          f"resumed at the commit: {[r.value for r in late]}")
    c.close()

    admin.delete_topics([topic])
    compacted(admin)
    refusals(admin)
    admin.close()
    print(f"kafka-python ok: {N} idempotent messages, assign(), group commit and resume, compaction, "
          "refused produces")


def compacted(admin):
    """A `cleanup.policy=compact` topic with small segments: after the log cleaner has run, a
    consumer reading from the beginning sees the latest value of every key, at its original
    offset, with gaps where superseded records were."""
    topic = f"kp-compact-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs={
        "cleanup.policy": "compact", "segment.bytes": "1024"})])
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0)
    keys, rounds = 8, 25
    latest = {}
    for r in range(rounds):
        for k in range(keys):
            md = producer.send(topic, key=f"key-{k}".encode(), value=f"value {r} of key {k}".encode()).get(timeout=30)
            latest[f"key-{k}".encode()] = (md.offset, f"value {r} of key {k}".encode())
    for i in range(20):  # closes the segments holding the last round
        producer.send(topic, key=b"filler", value=f"filler {i} {'x' * 40}".encode()).get(timeout=30)
    producer.close()
    produced = keys * rounds + 20
    tp = TopicPartition(topic, 0)
    start = time.time()
    while True:
        check(time.time() - start < DEADLINE, "the log cleaner compacted the topic")
        c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
        c.assign([tp])
        c.seek_to_beginning()
        end = c.end_offsets([tp])[tp]
        check(end == produced, f"log end {end} after compaction")
        records = []
        while not records or records[-1].offset < end - 1:
            check(time.time() - start < DEADLINE, f"read to {end}: at {records[-1].offset if records else None}")
            for batch in c.poll(timeout_ms=500).values():
                records.extend(batch)
        c.close()
        if len(records) < produced // 2:
            break
        time.sleep(0.2)
    offsets = [r.offset for r in records]
    check(offsets == sorted(set(offsets)), "offsets increase")
    check(any(b > a + 1 for a, b in zip(offsets, offsets[1:])), "superseded records leave gaps")
    last = {r.key: (r.offset, r.value) for r in records}
    for key, want in latest.items():
        check(last.get(key) == want, f"{key}: read {last.get(key)}, latest was {want}")
    print(f"compaction ok: {len(records)} of {produced} records left, latest of every key kept")


def refusals(admin):
    """A topic that takes timestamps within an hour of the broker's clock and wants two in-sync
    replicas: a stale record fails with InvalidTimestampError, acks=all with
    NotEnoughReplicasError (a single node is one replica), and what the topic admits is stored."""
    topic = f"kp-limits-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs={
        "message.timestamp.difference.max.ms": "3600000", "min.insync.replicas": "2"})])

    def outcome(producer, timestamp_ms):
        try:
            producer.send(topic, key=b"k", value=b"v", partition=0, timestamp_ms=timestamp_ms).get(timeout=30)
            return None
        except kafka.errors.KafkaError as e:
            return type(e)

    now = int(time.time() * 1000)
    leader = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks=1, retries=0, enable_idempotence=False)
    check(outcome(leader, now) is None, "a current timestamp is stored")
    got = outcome(leader, now - 2 * 3600 * 1000)
    check(got is kafka.errors.InvalidTimestampError, f"a two-hour-old timestamp: {got}")
    leader.close()
    everyone = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", retries=0, enable_idempotence=False)
    got = outcome(everyone, now)
    check(got is kafka.errors.NotEnoughReplicasError, f"acks=all under min.insync.replicas=2: {got}")
    everyone.close()
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    end = c.end_offsets([tp])[tp]
    c.close()
    check(end == 1, f"only the admitted record was stored (log end {end})")
    admin.delete_topics([topic])
    print("refusals ok: InvalidTimestampError, NotEnoughReplicasError")


if __name__ == "__main__":
    main()
