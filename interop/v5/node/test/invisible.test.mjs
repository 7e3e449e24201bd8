// Invisible time: redelivery after it runs out, extending it, and what a stale receipt handle gets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupName, topicName } from '../lib/names.mjs';
import {
  BadRequestException, MIN_INVISIBLE_MS, REDELIVERY_GRACE_MS, assertAcked, assertNothing, message, now, props,
  receiveN, withConsumer, withProducer,
} from '../lib/harness.mjs';

const INVALID_RECEIPT_HANDLE = 40013;
const EXTENDED_MS = 20000; // the changed invisible time

test('redelivery after the invisible time, with the delivery attempt increased', async () => {
  const topic = topicName('redeliver');
  const receipt = await withProducer([ topic ], p =>
    p.send(message(topic, 'again', { tag: 'R', keys: [ 'k-again' ], props: { p: 'v' } })));
  await withConsumer(groupName('redeliver'), { [topic]: '*' }, async c => {
    const [ m1 ] = await receiveN(c, 1, 30000, { ack: false });
    assert.ok(m1, 'nothing received');
    assert.equal(m1.messageId, receipt.messageId);
    assert.equal(m1.deliveryAttempt, 1);
    const staleHandle = m1.receiptHandle;

    const [ m2 ] = await receiveN(c, 1, MIN_INVISIBLE_MS + 20000, { ack: false });
    assert.ok(m2, 'not redelivered after the invisible time');
    const waited = m2.at - m1.at;
    assert.ok(waited >= MIN_INVISIBLE_MS - 500, `redelivered after ${waited} ms, invisible time ${MIN_INVISIBLE_MS} ms`);
    assert.equal(m2.messageId, receipt.messageId);
    assert.equal(m2.body.toString(), 'again');
    assert.equal(m2.tag, 'R');
    assert.deepEqual([ ...m2.keys ], [ 'k-again' ]);
    assert.equal(props(m2).p, 'v');
    assert.equal(m2.deliveryAttempt, 2);
    assert.notEqual(m2.receiptHandle, staleHandle);

    // The first delivery's handle ran out: acking it is refused, and acks nothing.
    await assert.rejects(c.ack(m1), err => {
      assert.ok(err instanceof BadRequestException, String(err));
      assert.equal(err.code, INVALID_RECEIPT_HANDLE, String(err));
      return true;
    });
    await c.ack(m2);
    await assertAcked(c, m2.at);
  });
});

test('changing the invisible duration extends it', async () => {
  const topic = topicName('invisible');
  const receipt = await withProducer([ topic ], p => p.send(message(topic, 'extend-me', { tag: 'I' })));
  await withConsumer(groupName('invisible'), { [topic]: '*' }, async c => {
    const [ m ] = await receiveN(c, 1, 30000, { ack: false });
    assert.ok(m, 'nothing received');
    assert.equal(m.messageId, receipt.messageId);
    const oldHandle = m.receiptHandle;
    await c.changeInvisibleDuration(m, EXTENDED_MS); // replaces m.receiptHandle
    const changedAt = now();
    assert.ok(m.receiptHandle && m.receiptHandle !== oldHandle, 'no new receipt handle');

    // Past the original 10 s (plus the time a redelivery takes): nothing comes back.
    await assertNothing(c, m.at + MIN_INVISIBLE_MS + REDELIVERY_GRACE_MS - now(),
      { what: `redelivery before the extended invisible time (received with ${oldHandle}, changed to ${m.receiptHandle})` });
    assert.ok(now() - changedAt < EXTENDED_MS - 1000, 'too slow to ack within the extended time');
    await c.ack(m); // the new handle is still valid
    // ...and the ack holds: nothing after the extended time either.
    await assertAcked(c, changedAt, EXTENDED_MS);
  });
});
