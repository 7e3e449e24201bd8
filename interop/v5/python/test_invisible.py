"""Invisible time: redelivery after it runs out, extending it, and what a stale receipt handle gets."""
import time

import pytest
from rocketmq.v5.exception import BadRequestException

from harness import (MIN_INVISIBLE, REDELIVERY_GRACE, assert_acked, assert_nothing, consumer, message,
                     producer, receive_n)

INVALID_RECEIPT_HANDLE = 40013
EXTENDED = 20  # seconds, the changed invisible time


def test_redelivery_after_invisible_time(target, names):
    topic, group = names.topic("redeliver"), names.group("redeliver")
    with producer(target, [topic]) as p:
        receipt = p.send(message(topic, "again", tag="R", keys=["k-again"], props={"p": "v"}))
    with consumer(target, group, {topic: "*"}) as c:
        first = receive_n(c, 1, timeout=30, invisible=MIN_INVISIBLE, ack=False)
        assert len(first) == 1
        m1 = first[0]
        assert m1.message_id == receipt.message_id and m1.delivery_attempt == 1
        stale_handle = m1.receipt_handle

        second = receive_n(c, 1, timeout=MIN_INVISIBLE + 20, invisible=MIN_INVISIBLE, ack=False)
        assert len(second) == 1, "not redelivered after the invisible time"
        m2 = second[0]
        waited = m2.at - m1.at
        assert waited >= MIN_INVISIBLE - 0.5, f"redelivered after {waited:.1f} s, invisible time {MIN_INVISIBLE} s"
        assert m2.message_id == receipt.message_id
        assert m2.body == b"again" and m2.tag == "R" and m2.keys == {"k-again"}
        assert m2.properties.get("p") == "v"
        assert m2.delivery_attempt == 2
        assert m2.receipt_handle != stale_handle

        # The first delivery's handle ran out: acking it is refused, and acks nothing.
        m1.msg.receipt_handle = stale_handle
        with pytest.raises(BadRequestException) as err:
            c.ack(m1.msg)
        assert err.value.code == INVALID_RECEIPT_HANDLE, err.value
        c.ack(m2.msg)
        assert_acked(c, m2.at)


def test_change_invisible_duration_extends(target, names):
    topic, group = names.topic("invisible"), names.group("invisible")
    with producer(target, [topic]) as p:
        receipt = p.send(message(topic, "extend-me", tag="I"))
    with consumer(target, group, {topic: "*"}) as c:
        got = receive_n(c, 1, timeout=30, invisible=MIN_INVISIBLE, ack=False)
        assert len(got) == 1
        m = got[0]
        assert m.message_id == receipt.message_id
        old_handle = m.receipt_handle
        c.change_invisible_duration(m.msg, EXTENDED)  # replaces m.receipt_handle
        changed_at = time.monotonic()
        assert m.receipt_handle and m.receipt_handle != old_handle, "no new receipt handle"

        # Past the original 10 s (plus the time a redelivery takes): nothing comes back.
        assert_nothing(c, m.at + MIN_INVISIBLE + REDELIVERY_GRACE - time.monotonic(),
                       what=f"redelivery before the extended invisible time (received with {old_handle}, "
                            f"changed to {m.receipt_handle})")
        assert time.monotonic() - changed_at < EXTENDED - 1, "too slow to ack within the extended time"
        c.ack(m.msg)  # the new handle is still valid
        # ...and the ack holds: nothing after the extended time either.
        assert_acked(c, changed_at, invisible=EXTENDED)
