// Transactions: commit, rollback, and an unknown outcome resolved by the server's check-back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import defs from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js';
import { groupName, topicName } from '../lib/names.mjs';
import { assertAcked, body, message, now, props, receiveN, withConsumer, withProducer } from '../lib/harness.mjs';

const { TransactionResolution } = defs;

test('commit, rollback, and check-back', async () => {
  const topic = topicName('tx');
  const calls = [];
  const checker = {
    async check(m) {
      calls.push({ id: m.messageId, body: body(m), at: now() });
      return TransactionResolution.COMMIT;
    },
  };
  const ids = {};
  let unknownSent = 0;
  let got = [];
  await withProducer([ topic ], async p => {
    for (const [ b, end ] of [ [ 'tx-commit', 'commit' ], [ 'tx-rollback', 'rollback' ], [ 'tx-unknown', null ] ]) {
      const t = p.beginTransaction();
      const r = await p.send(message(topic, b, { tag: 'T', keys: [ b ], props: { kind: b } }), t);
      ids[b] = r.messageId;
      if (end === 'commit') await t.commit();
      if (end === 'rollback') await t.rollback();
    }
    unknownSent = now();
    await withConsumer(groupName('tx'), { [topic]: '*' }, async c => {
      got = await receiveN(c, 2, 60000);
      assert.deepEqual(got.map(body).sort(), [ 'tx-commit', 'tx-unknown' ],
        `checks: ${JSON.stringify(calls)}; ids ${JSON.stringify(ids)}`);
      for (const m of got) {
        assert.equal(m.messageId, ids[body(m)]);
        assert.equal(m.tag, 'T');
        assert.deepEqual([ ...m.keys ], [ body(m) ]);
        assert.equal(props(m).kind, body(m));
        assert.equal(m.deliveryAttempt, 1);
      }
      // acked, and the rolled-back message never comes
      await assertAcked(c, Math.max(...got.map(m => m.at)));
    });
  }, { checker });

  assert.ok(calls.length > 0, 'the server never asked the checker about tx-unknown');
  assert.deepEqual([ ...new Set(calls.map(x => x.id)) ], [ ids['tx-unknown'] ], JSON.stringify(calls));
  assert.ok(calls.every(x => x.body === 'tx-unknown'));
  const unknown = got.find(m => body(m) === 'tx-unknown');
  assert.ok(unknown.at >= calls[0].at && calls[0].at >= unknownSent);
});
