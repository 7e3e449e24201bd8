// Plaintext and TLS on the same gRPC port. The client verifies the server certificate against
// gRPC's default roots; runner.mjs trusts the certificate the server presents
// (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), so it must be its own trust anchor and name 127.0.0.1.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { groupName, topicName } from '../lib/names.mjs';
import { assertNothing, body, message, receiveN, target, withConsumer, withProducer } from '../lib/harness.mjs';

test('plaintext and TLS on one port', async () => {
  assert.ok(fs.existsSync(process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), `no TLS on ${target.grpc}`);
  assert.equal(target.alpn, 'h2', `ALPN ${target.alpn}`);
  const topic = topicName('tls');
  const viaTls = await withProducer([ topic ], p => p.send(message(topic, 'via-tls', { tag: 'S' })), { tls: true });
  const viaPlain = await withProducer([ topic ], p => p.send(message(topic, 'via-plaintext', { tag: 'S' })));
  const sent = { 'via-plaintext': viaPlain.messageId, 'via-tls': viaTls.messageId };
  // two groups: each sees both messages, one over TLS, one over plaintext
  for (const [ key, tls ] of [ [ 'tls_tls', true ], [ 'tls_plain', false ] ]) {
    await withConsumer(groupName(key), { [topic]: 'S' }, async c => {
      const got = await receiveN(c, 2, 30000);
      assert.deepEqual(Object.fromEntries(got.map(m => [ body(m), m.messageId ]).sort()), sent, key);
      await assertNothing(c, 5000);
    }, { tls });
  }
});
