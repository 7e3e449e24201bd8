"""Mixed clients: a 4.x remoting client and a 5.x gRPC client on one topic.

A message sent by the Go v2 client (github.com/apache/rocketmq-client-go/v2 v2.1.2, remoting, via
the name server) is received by the Python v5 SimpleConsumer, and a message sent by the Python v5
Producer is received by a Go v2 push consumer, with body, tag, keys, user properties and message id
intact. The Go side is interop/go/v2peer, built here with `go build` (Go and the module proxy, or a
warm module cache, are needed; V2PEER_BIN=path uses a prebuilt one).

Both directions send 5 messages with one tag, two keys and four user properties (spaces,
punctuation, non-ASCII), interleaved with 3 of another tag that the consumer's tag filter must
leave out; nothing else, no duplicate, may arrive. What Apache 5.5.0 does, and so what is asserted:
- Go v2 -> v5: the v5 message id is the v2 msgId (the UNIQ_KEY the Go client generated, with its
  mixed-case hex as is); user properties are exactly the sent ones (no system property of the v2
  message shows up among them); message type NORMAL, delivery attempt 1, no message group;
  born_host is the sender's IP without the port.
- v5 -> Go v2: the v2 msgId and UNIQ_KEY are the v5 message id; Tags/Keys (space-joined) as sent;
  the properties are the user ones plus the system ones listed in SERVER_PROPS and
  APACHE_ONLY_PROPS below, plus what the Go client adds itself (CLIENT_PROPS).
"""
import json
import os
import pathlib
import subprocess
import time

import pytest

from rocketmq.v5.util.misc import Misc

from harness import MIN_INVISIBLE, consumer, message, producer, receive_n
from target import Target

GO_DIR = pathlib.Path(__file__).resolve().parents[2] / "go"
SUFFIX = os.environ.get("V5_SUFFIX", "x")
TOPIC = f"PyV5_mixed_{SUFFIX}"
PY_GROUP = f"PyV5G_mixed_py_{SUFFIX}"  # the Python SimpleConsumer (Go -> Python)
GO_GROUP = f"PyV5G_mixed_go_{SUFFIX}"  # the Go push consumer (Python -> Go)

# Values that make the property encodings work: the remoting properties string separates names
# from values with \x01 and pairs with \x02, so spaces, '=', ':', ',' and non-ASCII must survive.
# (Keys must not contain a space: the remoting KEYS property is the keys joined by spaces.)
PROPS = {"color": "blue sky", "idx": "{i}", "expr": "a=1,b:2", "ünï": "çødé ✓"}


# What a Go v2 consumer finds in the properties of a message a v5 client sent, besides the user
# properties, as Apache 5.5.0 has them (proxy SendMessageActivity.buildMessageProperty, broker
# SendMessageProcessor): the message id as UNIQ_KEY, tag and keys, the producer group (the proxy
# uses the topic name), the broker's cluster, the client's own address and born time.
SERVER_PROPS = {"UNIQ_KEY", "TAGS", "KEYS", "PGROUP", "CLUSTER", "__BORNHOST", "BORN_TIMESTAMP"}
# Apache also stores these three (RECONSUME_TIME: the proxy copies the v5 delivery attempt, 0 on a
# send; MSG_REGION and TRACE_ON: AbstractSendMessageProcessor.buildMsgContext adds them to the
# stored properties whenever a send hook is registered, as in apache-local.sh, so a Go v2 send
# carries them too). FerroMQ stores none of them (it returns MSG_REGION/TRACE_ON only as send
# response fields); a v2 consumer needs none of them (the client writes RECONSUME_TIME itself when
# it sends a message back; TRACE_ON and MSG_REGION only feed trace hooks), so they are allowed
# to be missing on FerroMQ.
APACHE_ONLY_PROPS = {"RECONSUME_TIME": "0", "MSG_REGION": "DefaultRegion", "TRACE_ON": "true"}
# Added by the Go client itself when it pulls and consumes.
CLIENT_PROPS = {"MIN_OFFSET", "MAX_OFFSET", "CONSUME_START_TIME"}


def props(i):
    return {k: v.format(i=i) for k, v in PROPS.items()}


def keys(prefix, i):
    return [f"{prefix}-key-{i}", f"{prefix}-alt-{i}"]


@pytest.fixture(scope="module")
def mixed(target, tmp_path_factory):
    """Creates the topic and both groups (the SimpleConsumer's group must exist before it
    connects, on Apache), builds the Go program."""
    _create(target)
    if os.environ.get("V2PEER_BIN"):  # prebuilt
        return pathlib.Path(os.environ["V2PEER_BIN"])
    exe = tmp_path_factory.mktemp("v2peer") / "v2peer"
    env = dict(os.environ, GOFLAGS="-buildvcs=false", CGO_ENABLED="0")
    try:
        r = subprocess.run(["go", "build", "-o", str(exe), "./v2peer"], cwd=GO_DIR, env=env,
                           capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        pytest.fail("`go` is not on PATH (needed to build interop/go/v2peer; or set V2PEER_BIN)")
    assert r.returncode == 0, f"go build ./v2peer failed:\n{r.stdout}\n{r.stderr}"
    return exe


class _Commands(Target):
    """Collects the admin commands Target.create makes."""

    def __init__(self, namesrv):
        self.namesrv, self.commands = namesrv, []

    def _admin(self, commands):
        self.commands += commands


def _create(target):
    topics = {TOPIC: "NORMAL"}
    groups = {PY_GROUP: {"retries": 16}, GO_GROUP: {"retries": 16}}
    batch = pathlib.Path(target.admin_cmd[0]).with_name("mqadmin-batch")
    if target.kind != "apache" or not batch.exists():
        target.create(topics=topics, groups=groups)
        return
    # Apache: all three in one JVM (apache-local.sh's mqadmin-batch) rather than a JVM each (~9 s
    # apiece on a loaded machine).
    c = _Commands(target.namesrv)
    c.create(topics=topics, groups=groups)
    r = subprocess.run([str(batch)], input="".join(" ".join(cmd) + "\n" for cmd in c.commands),
                       capture_output=True, text=True, timeout=180)
    sections = r.stdout.split("### ")[1:]
    if r.returncode != 0 or len(sections) != len(c.commands) or any("success" not in s for s in sections):
        raise RuntimeError(f"mqadmin-batch failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


def go(exe, target, *args, timeout=60):
    r = subprocess.run([str(exe), "-namesrv", target.namesrv, *args], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"v2peer {' '.join(args[:1])} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_go_v2_to_python_v5(target, mixed):
    n = 5
    out = []
    for i in range(n):
        out.append({"topic": TOPIC, "tag": "FromGo", "keys": keys("go", i), "props": props(i),
                    "body": f"go-to-py-{i} ✓"})
        if i % 2 == 0:  # another tag: the consumer's filter leaves these out
            out.append({"topic": TOPIC, "tag": "FromGoOther", "keys": [f"other-{i}"], "body": f"go-other-{i}"})
    t0 = time.time()
    sent = {s["body"]: s for s in go(mixed, target, "send", "-msgs", json.dumps(out))}
    t1 = time.time()
    assert len(sent) == len(out)
    assert len({s["msgId"] for s in sent.values()}) == len(out), "v2 msgIds not unique"

    with consumer(target, PY_GROUP, {TOPIC: "FromGo"}) as c:
        got = receive_n(c, n, timeout=30)
        # filtered-out tags and duplicates: one more (empty) long poll
        extra = c.receive(16, MIN_INVISIBLE)
        for m in extra:
            c.ack(m)
    if got:
        m = got[0]
        print(f"\n[{target.kind}] Go v2 -> Python v5: {m.message_id} user properties "
              f"{dict(sorted(m.properties.items()))} born_host={m.born_host} "
              f"born_timestamp={m.born_timestamp}")
    bodies = sorted(m.body.decode() for m in got)
    assert bodies == sorted(o["body"] for o in out if o["tag"] == "FromGo"), f"received {bodies}"
    assert not extra, "unexpected further messages: " + ", ".join(
        f"{m.message_id} tag={m.tag} body={m.body!r}" for m in extra)
    for m in got:
        body = m.body.decode()
        i = int(body.split("-")[3].split()[0])
        s = sent[body]
        assert m.topic == TOPIC
        assert m.tag == "FromGo"
        assert m.keys == set(keys("go", i))
        assert m.message_id == s["msgId"], f"v5 message_id {m.message_id} != v2 msgId (UNIQ_KEY) {s['msgId']}"
        assert m.message_type == 1, f"message type {m.message_type} (1 = NORMAL)"
        assert m.delivery_attempt == 1
        assert m.message_group is None
        assert t0 * 1000 - 1000 <= m.born_timestamp <= t1 * 1000 + 1000, (m.born_timestamp, t0, t1)
        user = dict(m.properties)
        for k, v in props(i).items():
            assert user.pop(k, None) == v, f"property {k!r}: {m.properties}"
        assert user == {}, f"properties beyond the sent ones: {user}"
        # Apache: the remoting message's born host as an address without the port
        # (GrpcConverter: MessageExt.getBornHostString()); the Go client connected from 127.0.0.1.
        assert m.born_host == "127.0.0.1", f"born_host {m.born_host!r}"


def test_python_v5_to_go_v2(target, mixed):
    n = 5
    sent = {}
    t0 = time.time()
    with producer(target, [TOPIC]) as p:
        for i in range(n):
            body = f"py-to-go-{i} ✓"
            r = p.send(message(TOPIC, body, tag="FromPy", keys=keys("py", i), props=props(i)))
            sent[body] = r.message_id
            if i % 2 == 0:
                p.send(message(TOPIC, f"py-other-{i}", tag="FromPyOther", keys=[f"other-{i}"]))
    t1 = time.time()

    got = go(mixed, target, "receive", "-topic", TOPIC, "-group", GO_GROUP, "-expr", "FromPy",
             "-count", str(n), "-timeout", "40s", "-linger", "3s", timeout=60)
    if got:
        g = got[0]
        print(f"\n[{target.kind}] Python v5 -> Go v2: {g['msgId']} properties "
              f"{dict(sorted(g['properties'].items()))} bornHost={g['bornHost']} "
              f"bornTimestamp={g['bornTimestamp']} offsetMsgId={g['offsetMsgId']}")
    bodies = sorted(g["body"] for g in got)
    assert bodies == sorted(sent), f"received {bodies} (duplicates or other tags?)"
    for g in got:
        body = g["body"]
        i = int(body.split("-")[3].split()[0])
        assert g["topic"] == TOPIC
        assert g["tags"] == "FromPy"
        assert set(g["keys"].split(" ")) == set(keys("py", i)), g["keys"]
        assert g["msgId"] == sent[body], f"v2 msgId {g['msgId']} != v5 message_id {sent[body]}"
        assert g["properties"].get("UNIQ_KEY") == sent[body]
        assert g["reconsumeTimes"] == 0
        assert t0 * 1000 - 1000 <= g["bornTimestamp"] <= t1 * 1000 + 1000, (g["bornTimestamp"], t0, t1)
        p = dict(g["properties"])
        for k, v in props(i).items():
            assert p.pop(k, None) == v, f"property {k!r}: {g['properties']}"
        assert p["UNIQ_KEY"] == sent[body]
        assert p["TAGS"] == "FromPy" and p["KEYS"] == g["keys"]
        assert p["PGROUP"] == TOPIC, "producer group: the proxy names it after the topic"
        assert p["CLUSTER"] == "DefaultCluster"
        assert p["__BORNHOST"] == Misc.get_local_ip(), "__BORNHOST: the address the v5 client reports"
        assert p["BORN_TIMESTAMP"] == str(g["bornTimestamp"]), (p["BORN_TIMESTAMP"], g["bornTimestamp"])
        for k in CLIENT_PROPS:
            p.pop(k, None)
        apache_only = {k: p.pop(k) for k in APACHE_ONLY_PROPS if k in p}
        if target.kind == "apache":
            assert apache_only == APACHE_ONLY_PROPS, apache_only
        else:  # FerroMQ leaves them out (see APACHE_ONLY_PROPS); whatever it adds must match
            assert all(APACHE_ONLY_PROPS[k] == v for k, v in apache_only.items()), apache_only
        assert set(p) == SERVER_PROPS, f"properties beyond the sent ones: {sorted(set(p) - SERVER_PROPS)}"
