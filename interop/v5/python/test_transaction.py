"""Transactions: commit, rollback, and an unknown outcome resolved by the server's check-back."""
import threading
import time

from rocketmq import TransactionChecker, TransactionResolution

from harness import assert_acked, consumer, message, producer, receive_n


class Checker(TransactionChecker):
    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def check(self, m):
        with self.lock:
            self.calls.append((m.message_id, m.body, time.monotonic()))
        return TransactionResolution.COMMIT


def test_commit_rollback_checkback(target, names):
    topic, group = names.topic("tx"), names.group("tx")
    checker = Checker()
    ids = {}
    with producer(target, [topic], checker=checker) as p:
        for body, end in (("tx-commit", "commit"), ("tx-rollback", "rollback"), ("tx-unknown", None)):
            t = p.begin_transaction()
            r = p.send(message(topic, body, tag="T", keys=[body], props={"kind": body}), t)
            ids[body] = r.message_id
            if end == "commit":
                t.commit()
            elif end == "rollback":
                t.rollback()
        unknown_sent = time.monotonic()

        with consumer(target, group, {topic: "*"}) as c:
            got = receive_n(c, 2, timeout=60)
            by_body = {m.body.decode(): m for m in got}
            assert sorted(by_body) == ["tx-commit", "tx-unknown"], \
                f"received {sorted(by_body)}; checks: {[(c[0], c[1]) for c in checker.calls]}; ids {ids}"
            for body, m in by_body.items():
                assert m.message_id == ids[body]
                assert m.tag == "T" and m.keys == {body} and m.properties.get("kind") == body
                assert m.delivery_attempt == 1
            # acked, and the rolled-back message never comes
            assert_acked(c, max(m.at for m in got))

    assert checker.calls, "the server never asked the checker about tx-unknown"
    assert {c[0] for c in checker.calls} == {ids["tx-unknown"]}, \
        f"checked messages: {[(c[0], c[1]) for c in checker.calls]}"
    assert all(c[1] == b"tx-unknown" for c in checker.calls)
    assert by_body["tx-unknown"].at >= checker.calls[0][2] >= unknown_sent
