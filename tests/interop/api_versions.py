"""Asks a running broker which API versions it serves (ApiVersions v0 over a plain socket, as
any client would) and prints them as the Markdown table of COMPATIBILITY.md.

    python3 api_versions.py HOST:PORT            # print the table
    python3 api_versions.py HOST:PORT --check F  # fail unless F holds exactly this table

Standard library only.
"""

import socket
import struct
import sys

# Kafka's API keys (clients/src/main/resources/common/message/*Request.json).
NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr",
    5: "StopReplica", 6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls",
    32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete", 48: "DescribeClientQuotas",
    49: "AlterClientQuotas", 50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials", 60: "DescribeCluster", 61: "DescribeProducers",
    65: "DescribeTransactions", 66: "ListTransactions", 68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe",
}

# The versions served through the veritas-legacy codecs (response header v0).
LEGACY = {
    0: "v0–2: message sets, up-converted to v2 batches",
    1: "v0–3: stored v2 batches down-converted to message sets (magic 0 for v0–1, 1 for v2–3)",
    2: "v0: offset lists, answered from v1",
    8: "v0–1: run as v2 (v0: a standalone commit)",
    9: "v0: run as v1",
}

BEGIN = "<!-- api-versions:begin (tests/interop/api_versions.py) -->"
END = "<!-- api-versions:end -->"


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("broker closed the connection")
        buf += chunk
    return buf


def api_versions(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        client = b"api_versions.py"
        body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    correlation, error, count = struct.unpack_from(">ihi", resp, 0)
    if correlation != 1 or error != 0:
        raise SystemExit(f"ApiVersions failed: correlation {correlation}, error {error}")
    keys = [struct.unpack_from(">hhh", resp, 10 + 6 * i) for i in range(count)]
    return sorted(keys)


def table(keys):
    lines = [
        "| key | API | versions | notes |",
        "|---:|---|---|---|",
    ]
    for key, lo, hi in keys:
        note = f"legacy {LEGACY[key]} (`veritas-legacy`)" if key in LEGACY else ""
        lines.append(f"| {key} | {NAMES.get(key, '?')} | {lo}–{hi} | {note} |")
    return "\n".join(lines)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    text = table(api_versions(sys.argv[1]))
    if len(sys.argv) == 4 and sys.argv[2] == "--check":
        doc = open(sys.argv[3], encoding="utf-8").read()
        try:
            documented = doc.split(BEGIN, 1)[1].split(END, 1)[0].strip()
        except IndexError:
            raise SystemExit(f"{sys.argv[3]}: no api-versions markers")
        if documented != text:
            print(f"{sys.argv[3]} does not match what the broker advertises:\n{text}")
            raise SystemExit(1)
        print(f"{sys.argv[3]}: the API table matches the broker ({text.count(chr(10)) - 1} APIs)")
    else:
        print(text)


if __name__ == "__main__":
    main()
