"""confluent-kafka (Python, bundled librdkafka) against a Kafka broker: admin, an idempotent
producer with every codec, a consumer group that commits, a second member that resumes from
the commit, and the admin calls a one-node broker without an authorizer answers as Kafka does
(elect_leaders: ELECTION_NOT_NEEDED; the ACL calls: SECURITY_DISABLED). Exits non-zero on any
wrong result.

    BOOTSTRAP=127.0.0.1:9092 python confluent_kafka_check.py
"""

import os
import sys
import time
import uuid

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ["BOOTSTRAP"]
DEADLINE = 60.0
PARTITIONS = 3
PER_CODEC = 200
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    print(f"confluent-kafka {confluent_kafka.version()}, librdkafka {confluent_kafka.libversion()[0]}")
    topic = f"ck-{uuid.uuid4().hex[:8]}"
    group = f"ck-group-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})

    # Admin: create, list.
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    futures[topic].result(timeout=30)
    md = admin.list_topics(topic, timeout=30)
    check(len(md.topics[topic].partitions) == PARTITIONS, f"{topic} has {PARTITIONS} partitions")
    check(len(md.brokers) == 1, "one broker")

    # Idempotent producer, every codec, keyed records with headers.
    sent = {}  # (partition, offset) -> (key, value)
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            sent[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    for codec in CODECS:
        p = Producer({
            "bootstrap.servers": BOOTSTRAP,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": 5,
        })
        for i in range(PER_CODEC):
            p.produce(topic, key=f"{codec}-{i % 17}".encode(), value=f'{{"codec":"{codec}","i":{i}}}'.encode(),
                      headers=[("codec", codec.encode())], on_delivery=on_delivery)
            p.poll(0)
        left = p.flush(30)
        check(left == 0, f"{codec}: {left} messages undelivered")
    check(not errors, f"delivery errors: {errors[:3]}")
    total = PER_CODEC * len(CODECS)
    check(len(sent) == total, f"{len(sent)} of {total} delivered")
    for part in range(PARTITIONS):
        offsets = sorted(o for (p_, o) in sent if p_ == part)
        check(offsets == list(range(len(offsets))), f"partition {part}: offsets consecutive from 0")

    # A consumer group reads everything once, commits synchronously.
    conf = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
    }
    c = Consumer(conf)
    c.subscribe([topic])
    got = {}
    start = time.time()
    while len(got) < total:
        check(time.time() - start < DEADLINE, f"group read {len(got)} of {total}")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        key = (m.partition(), m.offset())
        check(key not in got, f"{key} delivered twice")
        check(dict(m.headers() or []).get("codec") is not None, "headers kept")
        got[key] = (m.key(), m.value())
    check(got == sent, "the group read exactly what was produced")
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    ends = {p: 1 + max(o for (p_, o) in sent if p_ == p) for p in range(PARTITIONS)}
    for tp in committed:
        check(tp.error is None and tp.offset == ends[tp.partition], f"committed {tp} (end {ends[tp.partition]})")
    c.close()

    # A new member of the group resumes from the commit: it sees only what comes after.
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
    for i in range(5):
        p.produce(topic, key=b"late", value=f"late-{i}".encode(), partition=i % PARTITIONS)
    check(p.flush(30) == 0, "late messages delivered")
    c = Consumer(conf)
    c.subscribe([topic])
    late = []
    start = time.time()
    while len(late) < 5:
        check(time.time() - start < DEADLINE, f"resumed member read {len(late)} of 5")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        late.append(m.value())
    check(sorted(late) == [f"late-{i}".encode() for i in range(5)], f"resumed at the commit: {late}")
    c.close()

    cluster_admin(admin, topic)
    futures = admin.delete_topics([topic])
    futures[topic].result(timeout=30)
    print(f"confluent-kafka ok: {total} idempotent messages ({', '.join(CODECS)}), group commit and resume, "
          "leader election and ACL calls")


def cluster_admin(admin, topic):
    """Preferred-leader election is never needed (one replica, already the leader), an unknown
    partition is UNKNOWN_TOPIC_OR_PART, and ACLs cannot be created or listed: no authorizer."""
    from confluent_kafka import ElectionType
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    result = admin.elect_leaders(ElectionType.PREFERRED,
                                 [TopicPartition(topic, 0), TopicPartition(topic, 99)]).result(timeout=30)
    codes = {tp.partition: (err.name() if err else None) for tp, err in result.items()}
    check(codes == {0: "ELECTION_NOT_NEEDED", 99: "UNKNOWN_TOPIC_OR_PART"}, f"elect_leaders: {codes}")

    binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        try:
            future.result(timeout=30)
            check(False, "create_acls succeeded without an authorizer")
        except KafkaException as e:
            check(e.args[0].name() == "SECURITY_DISABLED", f"create_acls: {e}")
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    try:
        listed = admin.describe_acls(everything).result(timeout=30)
        check(listed == [], f"describe_acls listed {listed}")
    except KafkaException as e:
        check(e.args[0].name() == "SECURITY_DISABLED", f"describe_acls: {e}")
    print("cluster admin ok: elect_leaders ELECTION_NOT_NEEDED, create_acls SECURITY_DISABLED")


if __name__ == "__main__":
    main()
