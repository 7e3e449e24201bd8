"""Normal messages: Producer.send -> SimpleConsumer.receive + ack."""
from harness import assert_acked, consumer, message, producer, receive_n

N = 10


def test_send_receive_ack(target, names):
    topic, group = names.topic("normal"), names.group("normal")
    sent = {}
    with producer(target, [topic]) as p:
        for i in range(N):
            m = message(topic, f"normal-{i}", tag="TagA", keys=[f"key-{i}", f"alt-{i}"],
                        props={"idx": str(i), "suite": "python"})
            receipt = p.send(m)
            assert receipt.message_id, "send receipt without a message id"
            sent[f"normal-{i}"] = receipt.message_id
        # Another tag: the consumer's filter expression "TagA" must leave these out.
        for i in range(3):
            p.send(message(topic, f"other-{i}", tag="TagB"))
    assert len(set(sent.values())) == N, "message ids are not unique"

    with consumer(target, group, {topic: "TagA"}) as c:
        got = receive_n(c, N, timeout=40)
        bodies = [m.body.decode() for m in got]
        assert sorted(bodies) == sorted(sent), f"received {sorted(bodies)}"
        for m in got:
            body = m.body.decode()
            i = body.split("-")[1]
            assert m.topic == topic
            assert m.tag == "TagA"
            assert m.keys == {f"key-{i}", f"alt-{i}"}
            assert m.properties.get("idx") == i and m.properties.get("suite") == "python", m.properties
            assert m.message_id == sent[body]
            assert m.delivery_attempt == 1
            assert m.message_group is None
            assert m.born_timestamp and m.born_host
        # everything was acked: nothing comes back, and the TagB messages never come
        assert_acked(c, max(m.at for m in got))
