"""Dead-letter queue: after the group's max attempts (retryMaxTimes + 1) the message goes to %DLQ%<group>."""
import time

from harness import MIN_INVISIBLE, assert_nothing, consumer, message, producer, receive_n

RETRIES = 2  # the group's retryMaxTimes (conftest.GROUPS["dlq"])


def test_dead_letter_after_max_attempts(target, names):
    topic, group = names.topic("dlq"), names.group("dlq")
    with producer(target, [topic]) as p:
        receipt = p.send(message(topic, "poison", tag="P", keys=["k-poison"], props={"p": "dead"}))
    attempts = []
    with consumer(target, group, {topic: "*"}) as c:
        deadline = time.monotonic() + 60
        while len(attempts) < RETRIES + 1 and time.monotonic() < deadline:
            for m in c.receive(4, MIN_INVISIBLE):
                assert m.message_id == receipt.message_id and m.body == b"poison"
                attempts.append(m.delivery_attempt)
                # a "nack": come back in 1 s rather than after the 10 s
                c.change_invisible_duration(m, 1)
        assert attempts == list(range(1, RETRIES + 2)), f"delivery attempts {attempts}"
        # no further attempt: the next receives move it to the dead-letter queue instead
        assert_nothing(c, 10, what=f"attempt beyond {RETRIES + 1}")

    dlq = f"%DLQ%{group}"
    with consumer(target, names.group("dlq_reader"), {dlq: "*"}) as c:
        got = receive_n(c, 1, timeout=30)
        assert len(got) == 1, f"nothing in {dlq}"
        m = got[0]
        assert m.topic == dlq
        assert m.message_id == receipt.message_id
        assert m.body == b"poison" and m.tag == "P" and m.keys == {"k-poison"}
        assert m.properties.get("p") == "dead"
        assert_nothing(c, 6, what=f"second message in {dlq}")
