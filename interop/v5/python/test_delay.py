"""Delay: a message with a delivery timestamp (a timer, not a delay level)."""
import time

from harness import assert_acked, consumer, message, producer, receive_n

SLACK_MS = 500


def test_delivery_timestamp(target, names):
    topic, group = names.topic("delay"), names.group("delay")
    with consumer(target, group, {topic: "*"}) as c:
        with producer(target, [topic]) as p:
            # The Python client sends the delivery timestamp in whole seconds.
            due_s = int(time.time()) + 4
            sent_at = time.time()
            receipt = p.send(message(topic, "delayed", tag="D", deliver_at_s=due_s))
        due_ms = due_s * 1000
        got = receive_n(c, 1, timeout=due_s - time.time() + 20)
        arrived_ms = int(time.time() * 1000)  # upper bound of the arrival (after the ack)
        assert len(got) == 1, "the delayed message never arrived"
        m = got[0]
        assert m.body == b"delayed" and m.tag == "D" and m.message_id == receipt.message_id
        assert m.delivery_timestamp == due_ms, f"delivery_timestamp {m.delivery_timestamp} != {due_ms}"
        # wall-clock arrival: not before the timestamp, and not long after it
        arrival_ms = int((time.time() - (time.monotonic() - m.at)) * 1000)
        assert arrival_ms >= due_ms - SLACK_MS, f"arrived {due_ms - arrival_ms} ms early (sent at {sent_at:.3f})"
        assert arrived_ms <= due_ms + 10_000, f"arrived {arrived_ms - due_ms} ms late"
        assert m.delivery_attempt == 1
        assert_acked(c, m.at)
