#!/usr/bin/env python3
# Creates N topics one request at a time over the remoting protocol (UPDATE_AND_CREATE_TOPIC),
# timing each; then checks that the name server routes them, and times a whole-table
# registration of that size at the name server. Prints one JSON line.
#   create_topics.py BROKER_ADDR NAMESRV_ADDR N
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remoting import (GET_ALL_TOPIC_CONFIG, GET_ROUTEINFO_BY_TOPIC, REGISTER_BROKER,  # noqa: E402
                      UPDATE_AND_CREATE_TOPIC, Remoting)

broker, namesrv, n = Remoting(sys.argv[1]), Remoting(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
times = []
for i in range(n):
    a = time.time()
    hdr, _ = broker.call(UPDATE_AND_CREATE_TOPIC, {"topic": f"scale-topic-{i:05d}", "readQueueNums": "8",
                                                  "writeQueueNums": "8", "perm": "6", "topicFilterType": "SINGLE_TAG"})
    times.append(time.time() - a)
    assert hdr["code"] == 0, hdr
seconds = time.time() - t0

# Each creation is registered before it is answered: every topic is routed now.
missing = [i for i in list(range(0, n, max(1, n // 100))) + [n - 1]
           if namesrv.call(GET_ROUTEINFO_BY_TOPIC, {"topic": f"scale-topic-{i:05d}"})[0]["code"] != 0]
assert not missing, f"not routed by the name server: {missing[:10]}"

# The whole table as the broker registers it, sent by a stand-in broker of the same size.
_, table = broker.call(GET_ALL_TOPIC_CONFIG, {})
body = json.dumps({"topicConfigSerializeWrapper": json.loads(table), "filterServerList": []}).encode()
register_ms = []
for k in range(3):
    wrapper = json.loads(table)
    wrapper["dataVersion"] = {"timestamp": int(time.time() * 1000), "counter": k + 1, "stateVersion": 0}
    body = json.dumps({"topicConfigSerializeWrapper": wrapper, "filterServerList": []}).encode()
    a = time.time()
    hdr, _ = namesrv.call(REGISTER_BROKER, {"brokerName": "bench-stand-in", "brokerAddr": "127.0.0.1:1",
                                           "clusterName": "BenchCluster", "haServerAddr": "127.0.0.1:2",
                                           "brokerId": "0", "compressed": "false", "ferromqWholeTable": "true"}, body)
    register_ms.append((time.time() - a) * 1000)
    assert hdr["code"] == 0, hdr
print(json.dumps({
    "topics": n,
    "seconds": round(seconds, 2),
    "first_1000_mean_ms": round(sum(times[:1000]) / len(times[:1000]) * 1000, 2),
    "last_1000_mean_ms": round(sum(times[-1000:]) / len(times[-1000:]) * 1000, 2),
    "whole_registration_bytes": len(body),
    "whole_registration_ms_median_of_3": round(sorted(register_ms)[1], 1),
}))
