// Dead-letter queue: after the group's max attempts (retryMaxTimes + 1) the message goes to %DLQ%<group>.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupName, topicName } from '../lib/names.mjs';
import { MIN_INVISIBLE_MS, assertNothing, message, now, props, receiveN, withConsumer, withProducer } from '../lib/harness.mjs';

const RETRIES = 2; // the group's retryMaxTimes (lib/names.mjs GROUPS.dlq)

test('dead letter after max attempts', async () => {
  const topic = topicName('dlq');
  const group = groupName('dlq');
  const receipt = await withProducer([ topic ], p =>
    p.send(message(topic, 'poison', { tag: 'P', keys: [ 'k-poison' ], props: { p: 'dead' } })));
  const attempts = [];
  await withConsumer(group, { [topic]: '*' }, async c => {
    const deadline = now() + 60000;
    while (attempts.length < RETRIES + 1 && now() < deadline) {
      for (const m of await c.receive(4, MIN_INVISIBLE_MS)) {
        assert.equal(m.messageId, receipt.messageId);
        assert.equal(m.body.toString(), 'poison');
        attempts.push(m.deliveryAttempt);
        // a "nack": come back in 1 s rather than after the 10 s
        await c.changeInvisibleDuration(m, 1000);
      }
    }
    assert.deepEqual(attempts, [ ...Array(RETRIES + 1).keys() ].map(i => i + 1), `delivery attempts ${attempts}`);
    // no further attempt: the next receives move it to the dead-letter queue instead
    await assertNothing(c, 10000, { what: `attempt beyond ${RETRIES + 1}` });
  });

  const dlq = `%DLQ%${group}`;
  await withConsumer(groupName('dlq_reader'), { [dlq]: '*' }, async c => {
    const [ m ] = await receiveN(c, 1, 30000);
    assert.ok(m, `nothing in ${dlq}`);
    assert.equal(m.topic, dlq);
    assert.equal(m.messageId, receipt.messageId);
    assert.equal(m.body.toString(), 'poison');
    assert.equal(m.tag, 'P');
    assert.deepEqual([ ...m.keys ], [ 'k-poison' ]);
    assert.equal(props(m).p, 'dead');
    await assertNothing(c, 6000, { what: `second message in ${dlq}` });
  });
});
