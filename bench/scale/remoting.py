"""A minimal RocketMQ remoting client for the scale benches (standard library only): JSON
headers, one connection, calls answered in order or pipelined by opaque; and a free local
port for the servers they start."""

import json
import socket
import struct
import time

SEND_MESSAGE, PULL_MESSAGE, UPDATE_AND_CREATE_TOPIC, UPDATE_AND_CREATE_TOPIC_LIST = 10, 11, 17, 18
GET_ALL_TOPIC_CONFIG, REGISTER_BROKER, UNREGISTER_BROKER, GET_ROUTEINFO_BY_TOPIC = 21, 103, 104, 105


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Remoting:
    def __init__(self, addr, timeout=120):
        host, port = addr.split(":")
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.opaque = 0

    def _read(self, k):
        b = bytearray()
        while len(b) < k:
            chunk = self.s.recv(k - len(b))
            if not chunk:
                raise RuntimeError("connection closed")
            b += chunk
        return bytes(b)

    def _frame(self, code, fields, body):
        self.opaque += 1
        header = json.dumps({"code": code, "language": "JAVA", "version": 0, "opaque": self.opaque,
                             "flag": 0, "extFields": {k: str(v) for k, v in (fields or {}).items()}}).encode()
        return struct.pack(">ii", 4 + len(header) + len(body), len(header)) + header + body

    def _response(self):
        total, hlen = struct.unpack(">ii", self._read(8))
        hdr = json.loads(self._read(hlen & 0xFFFFFF))
        return hdr, self._read(total - 4 - (hlen & 0xFFFFFF))

    def call(self, code, fields=None, body=b""):
        self.s.sendall(self._frame(code, fields, body))
        return self._response()

    def pipelined(self, requests, window=256):
        """Sends (code, fields, body) requests keeping `window` in flight; returns the
        response headers in request order."""
        out, pending, it = {}, 0, iter(requests)
        first = self.opaque + 1
        done = False
        while not done or pending:
            while not done and pending < window:
                try:
                    code, fields, body = next(it)
                except StopIteration:
                    done = True
                    break
                self.s.sendall(self._frame(code, fields, body))
                pending += 1
            if pending:
                hdr, _ = self._response()
                out[hdr["opaque"]] = hdr
                pending -= 1
        return [out[o] for o in range(first, self.opaque + 1)]

    def close(self):
        self.s.close()


def send_fields(topic, queue_id, properties=""):
    return {"producerGroup": "scale-bench", "topic": topic, "defaultTopic": "TBW102",
            "defaultTopicQueueNums": 4, "queueId": queue_id, "sysFlag": 0,
            "bornTimestamp": int(time.time() * 1000), "flag": 0, "properties": properties,
            "reconsumeTimes": 0, "unitMode": "false", "batch": "false"}


def pull_fields(group, topic, queue_id, offset):
    return {"consumerGroup": group, "topic": topic, "queueId": queue_id, "queueOffset": offset,
            "maxMsgNums": 32, "sysFlag": 0, "commitOffset": 0, "suspendTimeoutMillis": 0,
            "subscription": "*", "subVersion": 0, "expressionType": "TAG"}


def topic_list_body(names, queues):
    return json.dumps({"topicConfigList": [
        {"topicName": n, "readQueueNums": queues, "writeQueueNums": queues, "perm": 6,
         "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": False, "attributes": {}}
        for n in names]}).encode()
