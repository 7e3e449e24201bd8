"""FIFO: message groups on a FIFO topic, consumed with an orderly group (consumeMessageOrderly)."""
import time

from harness import MIN_INVISIBLE, assert_acked, consumer, message, producer, receive_n

GROUPS = ["g-a", "g-b", "g-c"]
PER_GROUP = 6


def send_fifo(target, topic):
    sent = []
    with producer(target, [topic]) as p:
        for seq in range(PER_GROUP):  # interleaved: a0 b0 c0 a1 b1 c1 ...
            for g in GROUPS:
                body = f"{g}:{seq}"
                p.send(message(topic, body, tag="F", group=g))
                sent.append(body)
    return sent


def per_group(msgs):
    order = {}
    for m in msgs:
        g, seq = m.body.decode().split(":")
        assert m.message_group == g, f"{m.body!r} arrived with message group {m.message_group!r}"
        order.setdefault(g, []).append(int(seq))
    return order


def test_fifo_order_per_group(target, names):
    topic, group = names.topic("fifo"), names.group("fifo")
    sent = send_fifo(target, topic)
    with consumer(target, group, {topic: "*"}) as c:
        got = receive_n(c, len(sent), timeout=40, batch=32)
        bodies = [m.body.decode() for m in got]
        assert sorted(bodies) == sorted(sent), f"lost or duplicated: {bodies}"
        assert per_group(got) == {g: list(range(PER_GROUP)) for g in GROUPS}
        assert all(m.delivery_attempt == 1 for m in got)
        assert_acked(c, max(m.at for m in got))


def test_fifo_group_waits_for_unacked_message(target, names):
    """An unacked message holds back the rest of its group until it comes back (attempt 2)."""
    topic, group = names.topic("fifo_hold"), names.group("fifo_hold")
    sent = send_fifo(target, topic)
    held = None
    got = []  # acked, in arrival order
    with consumer(target, group, {topic: "*"}) as c:
        deadline = time.monotonic() + 60
        while len(got) < len(sent) and time.monotonic() < deadline:
            for m in c.receive(1, MIN_INVISIBLE):
                body = m.body.decode()
                if held is None and body == "g-b:0":
                    held = (m.message_id, time.monotonic())  # not acked: invisible for 10 s
                    continue
                if body.startswith("g-b:"):
                    assert held is not None
                    if body != "g-b:0":
                        assert "g-b:0" in [x.body.decode() for x in got], \
                            f"{body} arrived while g-b:0 was still unacked"
                    else:
                        assert m.message_id == held[0]
                        assert m.delivery_attempt == 2, f"redelivery with attempt {m.delivery_attempt}"
                        waited = time.monotonic() - held[1]
                        assert waited >= MIN_INVISIBLE - 1, f"g-b:0 back after {waited:.1f} s"
                elif body.startswith("g-"):
                    assert m.delivery_attempt == 1
                c.ack(m)
                got.append(m)
                last = time.monotonic()
        assert held is not None, "g-b:0 never arrived"
        bodies = [m.body.decode() for m in got]
        assert sorted(bodies) == sorted(sent), f"lost or duplicated: {bodies}"
        assert per_group(got) == {g: list(range(PER_GROUP)) for g in GROUPS}
        assert_acked(c, last)
