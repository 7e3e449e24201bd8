// Normal messages: Producer.send -> SimpleConsumer.receive + ack.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupName, topicName } from '../lib/names.mjs';
import { assertAcked, body, message, props, receiveN, withConsumer, withProducer } from '../lib/harness.mjs';

const N = 10;

test('send, receive, ack', async () => {
  const topic = topicName('normal');
  const sent = new Map();
  await withProducer([ topic ], async p => {
    for (let i = 0; i < N; i++) {
      const r = await p.send(message(topic, `normal-${i}`, {
        tag: 'TagA', keys: [ `key-${i}`, `alt-${i}` ], props: { idx: String(i), suite: 'node' },
      }));
      assert.ok(r.messageId, 'send receipt without a message id');
      sent.set(`normal-${i}`, r.messageId);
    }
    // Another tag: the consumer's filter expression "TagA" must leave these out.
    for (let i = 0; i < 3; i++) await p.send(message(topic, `other-${i}`, { tag: 'TagB' }));
  });
  assert.equal(new Set(sent.values()).size, N, 'message ids are not unique');

  await withConsumer(groupName('normal'), { [topic]: 'TagA' }, async c => {
    const got = await receiveN(c, N, 40000);
    assert.deepEqual(got.map(body).sort(), [ ...sent.keys() ].sort());
    for (const m of got) {
      const i = body(m).split('-')[1];
      assert.equal(m.topic, topic);
      assert.equal(m.tag, 'TagA');
      assert.deepEqual([ ...m.keys ].sort(), [ `alt-${i}`, `key-${i}` ]);
      assert.deepEqual(props(m), { idx: i, suite: 'node' });
      assert.equal(m.messageId, sent.get(body(m)));
      assert.equal(m.deliveryAttempt, 1);
      assert.ok(!m.messageGroup, `message group ${m.messageGroup}`);
      assert.ok(m.bornTimestamp instanceof Date && m.bornHost);
    }
    // everything was acked: nothing comes back, and the TagB messages never come
    await assertAcked(c, Math.max(...got.map(m => m.at)));
  });
});
