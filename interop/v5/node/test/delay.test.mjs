// Delay: a message with a delivery timestamp (a timer, not a delay level).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupName, topicName } from '../lib/names.mjs';
import { assertAcked, message, receiveN, withConsumer, withProducer } from '../lib/harness.mjs';

const SLACK_MS = 500;

test('delivery timestamp', async () => {
  const topic = topicName('delay');
  await withConsumer(groupName('delay'), { [topic]: '*' }, async c => {
    const due = new Date(Date.now() + 3000);
    const receipt = await withProducer([ topic ], p => p.send(message(topic, 'delayed', { tag: 'D', deliveryTimestamp: due })));
    const got = await receiveN(c, 1, due.getTime() - Date.now() + 20000);
    const arrivedBy = Date.now();
    assert.equal(got.length, 1, 'the delayed message never arrived');
    const m = got[0];
    assert.equal(m.body.toString(), 'delayed');
    assert.equal(m.tag, 'D');
    assert.equal(m.messageId, receipt.messageId);
    assert.equal(m.deliveryTimestamp?.getTime(), due.getTime(), `delivery timestamp ${m.deliveryTimestamp?.toISOString()}`);
    // wall-clock arrival: not before the timestamp, and not long after it
    const arrival = Date.now() - (performance.now() - m.at);
    assert.ok(arrival >= due.getTime() - SLACK_MS, `arrived ${due.getTime() - arrival} ms early`);
    assert.ok(arrivedBy <= due.getTime() + 10000, `arrived ${arrivedBy - due.getTime()} ms late`);
    assert.equal(m.deliveryAttempt, 1);
    await assertAcked(c, m.at);
  });
});
