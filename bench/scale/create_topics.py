#!/usr/bin/env python3
# Creates N topics one request at a time over the remoting protocol (UPDATE_AND_CREATE_TOPIC),
# timing each; prints total seconds and the last 1,000 creations' mean ms.
import json, socket, struct, sys, time
addr, n = sys.argv[1], int(sys.argv[2])
host, port = addr.split(":")
s = socket.create_connection((host, int(port)))
def call(opaque, fields):
    header = json.dumps({"code": 17, "language": "JAVA", "version": 0, "opaque": opaque, "flag": 0, "extFields": fields}).encode()
    s.sendall(struct.pack(">ii", 4 + len(header), len(header)) + header)
    def read(k):
        b = b""
        while len(b) < k:
            c = s.recv(k - len(b))
            if not c: raise SystemExit("closed")
            b += c
        return b
    total, hlen = struct.unpack(">ii", read(8))
    hdr = json.loads(read(hlen & 0xFFFFFF))
    read(total - 4 - (hlen & 0xFFFFFF))
    return hdr["code"]
t0 = time.time(); times = []
for i in range(n):
    a = time.time()
    code = call(i, {"topic": f"scale-topic-{i:05d}", "readQueueNums": "8", "writeQueueNums": "8", "perm": "6", "topicFilterType": "SINGLE_TAG"})
    times.append(time.time() - a)
    assert code == 0, code
print(json.dumps({"topics": n, "seconds": round(time.time() - t0, 2), "last_1000_mean_ms": round(sum(times[-1000:]) / len(times[-1000:]) * 1000, 2), "first_1000_mean_ms": round(sum(times[:1000]) / len(times[:1000]) * 1000, 2)}))
