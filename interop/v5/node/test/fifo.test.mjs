// FIFO: message groups on a FIFO topic, consumed with an orderly group (consumeMessageOrderly).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupName, topicName } from '../lib/names.mjs';
import { MIN_INVISIBLE_MS, assertAcked, body, message, now, receiveN, withConsumer, withProducer } from '../lib/harness.mjs';

const GROUPS = [ 'g-a', 'g-b', 'g-c' ];
const PER_GROUP = 6;

async function sendFifo(topic) {
  const sent = [];
  await withProducer([ topic ], async p => {
    for (let seq = 0; seq < PER_GROUP; seq++) { // interleaved: a0 b0 c0 a1 b1 c1 ...
      for (const g of GROUPS) {
        await p.send(message(topic, `${g}:${seq}`, { tag: 'F', group: g }));
        sent.push(`${g}:${seq}`);
      }
    }
  });
  return sent;
}

function perGroup(msgs) {
  const order = {};
  for (const m of msgs) {
    const [ g, seq ] = body(m).split(':');
    assert.equal(m.messageGroup, g, `${body(m)} arrived with message group ${m.messageGroup}`);
    (order[g] ??= []).push(Number(seq));
  }
  return order;
}

const expectedOrder = () => Object.fromEntries(GROUPS.map(g => [ g, [ ...Array(PER_GROUP).keys() ] ]));

test('FIFO order per message group', async () => {
  const topic = topicName('fifo');
  const sent = await sendFifo(topic);
  await withConsumer(groupName('fifo'), { [topic]: '*' }, async c => {
    const got = await receiveN(c, sent.length, 40000, { batch: 32 });
    assert.deepEqual(got.map(body).sort(), [ ...sent ].sort(), 'lost or duplicated');
    assert.deepEqual(perGroup(got), expectedOrder());
    assert.ok(got.every(m => m.deliveryAttempt === 1));
    await assertAcked(c, Math.max(...got.map(m => m.at)));
  });
});

test('an unacked FIFO message holds back the rest of its group until it comes back', async () => {
  const topic = topicName('fifo_hold');
  const sent = await sendFifo(topic);
  let held = null;
  const got = []; // acked, in arrival order
  let last = 0;
  await withConsumer(groupName('fifo_hold'), { [topic]: '*' }, async c => {
    const deadline = now() + 60000;
    while (got.length < sent.length && now() < deadline) {
      for (const m of await c.receive(1, MIN_INVISIBLE_MS)) {
        const b = body(m);
        if (held === null && b === 'g-b:0') {
          held = { id: m.messageId, at: now() }; // not acked: invisible for 10 s
          continue;
        }
        if (b.startsWith('g-b:')) {
          assert.ok(held);
          if (b !== 'g-b:0') {
            assert.ok(got.map(body).includes('g-b:0'), `${b} arrived while g-b:0 was still unacked`);
          } else {
            assert.equal(m.messageId, held.id);
            assert.equal(m.deliveryAttempt, 2, `redelivery with attempt ${m.deliveryAttempt}`);
            const waited = now() - held.at;
            assert.ok(waited >= MIN_INVISIBLE_MS - 1000, `g-b:0 back after ${waited} ms`);
          }
        } else {
          assert.equal(m.deliveryAttempt, 1);
        }
        await c.ack(m);
        got.push(m);
        last = now();
      }
    }
    assert.ok(held, 'g-b:0 never arrived');
    assert.deepEqual(got.map(body).sort(), [ ...sent ].sort(), 'lost or duplicated');
    assert.deepEqual(perGroup(got), expectedOrder());
    await assertAcked(c, last);
  });
});
