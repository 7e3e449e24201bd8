"""Client helpers over the official Python client (rocketmq-python-client 5.1.2).

What the client itself does that shapes these helpers:
- Producer and SimpleConsumer `startup()` return before the server's Settings reply has arrived,
  and Apache answers a ReceiveMessage that comes before the settings with an internal error
  (a NullPointerException). `started()` waits for the client's own `_init_settings_event`, which the
  client sets when it applies the reply (it applies one only when it carries `metric`).
- `receive(max, invisible_seconds)` long-polls for `await_duration` seconds (the servers clamp the
  poll to 5..20 s), returns a list, and returns [] on MESSAGE_NOT_FOUND.
- `Message.delivery_timestamp` is whole seconds when sending, milliseconds when received.
- `change_invisible_duration(m, s)` replaces `m.receipt_handle` with the new handle.
"""
import contextlib
import time

from rocketmq import (ClientConfiguration, Credentials, FilterExpression, Message, Producer,
                      SimpleConsumer)

AWAIT_SECONDS = 5  # long-polling time of each receive (Apache's minimum)
MIN_INVISIBLE = 10  # Apache refuses an invisible time under 10 s on receive
# How long after its invisible time runs out an unacked message comes back, at most: Apache's
# revive service re-puts it after 1-3 s (measured), then a receive must pick it up.
REDELIVERY_GRACE = 5


def config(target):
    return ClientConfiguration(target.grpc, Credentials(), request_timeout=5)


def started(client, what):
    client.startup()
    if not client._init_settings_event.wait(10):
        with contextlib.suppress(Exception):
            client.shutdown()
        raise AssertionError(f"{what}: no Settings reply applied within 10 s (the Python client "
                             "applies a reply only when it carries `metric`)")
    return client


@contextlib.contextmanager
def producer(target, topics, checker=None, tls=False):
    p = started(Producer(config(target), tuple(topics), checker=checker, tls_enable=tls), "producer")
    try:
        yield p
    finally:
        with contextlib.suppress(Exception):
            p.shutdown()


@contextlib.contextmanager
def consumer(target, group, subscriptions, tls=False):
    """subscriptions: {topic: tag expression}."""
    subs = {t: FilterExpression(e) for t, e in subscriptions.items()}
    c = started(SimpleConsumer(config(target), group, subs, await_duration=AWAIT_SECONDS, tls_enable=tls),
                f"consumer {group}")
    try:
        yield c
    finally:
        with contextlib.suppress(Exception):
            c.shutdown()


def message(topic, body, tag=None, keys=(), props=None, group=None, deliver_at_s=None):
    m = Message()
    m.topic = topic
    m.body = body if isinstance(body, bytes) else body.encode()
    if tag:
        m.tag = tag
    for k in keys:
        m.keys = k
    for k, v in (props or {}).items():
        m.add_property(k, v)
    if group:
        m.message_group = group
    if deliver_at_s is not None:
        m.delivery_timestamp = deliver_at_s
    return m


class Received:
    """A received message with the monotonic time it arrived."""

    def __init__(self, msg, at):
        self.msg = msg
        self.at = at

    def __getattr__(self, name):
        return getattr(self.msg, name)


def receive_n(c, n, timeout, invisible=MIN_INVISIBLE, ack=True, batch=16):
    """Receives until n messages arrived or `timeout` seconds passed; acks each when `ack`."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for m in c.receive(batch, invisible):
            got.append(Received(m, time.monotonic()))
            if ack:
                c.ack(m)
    return got


def assert_nothing(c, seconds, invisible=MIN_INVISIBLE, what="message"):
    """Keeps receiving for `seconds`; fails on any message (acks nothing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ms = c.receive(16, invisible)
        assert not ms, f"unexpected {what}: " + ", ".join(
            f"{m.message_id} body={m.body!r} attempt={m.delivery_attempt} handle={m.receipt_handle}"
            for m in ms) + f" (at {time.time():.3f})"


def assert_acked(c, received_at, invisible=MIN_INVISIBLE):
    """Proves the acks of messages received (with `invisible`) at monotonic time `received_at`:
    nothing comes back until well after their invisible time would have run out."""
    assert_nothing(c, received_at + invisible + REDELIVERY_GRACE - time.monotonic(), invisible,
                   what="message after its ack (redelivered)")


def bodies(msgs):
    return [m.body.decode() for m in msgs]
