// Client helpers over the official Node.js client (rocketmq-client-nodejs 1.0.8).
//
// What the client itself does that shapes these helpers:
// - startup() waits, without a time limit, for the server's first Settings reply when the client
//   has topics; `started()` bounds that wait.
// - receive(max, invisibleMs) long-polls for awaitDuration ms (the servers clamp it to 5..20 s);
//   MESSAGE_NOT_FOUND gives [].
// - changeInvisibleDuration(m, ms) replaces m.receiptHandle with the new handle.
// - delays and timestamps are milliseconds (Date) both ways.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { format } from 'node:util';
import rmq from 'rocketmq-client-nodejs';

export const { Producer, SimpleConsumer, BadRequestException } = rmq;
export const AWAIT_MS = 5000; // long-polling time of each receive (Apache's minimum)
export const MIN_INVISIBLE_MS = 10000; // Apache refuses an invisible time under 10 s on receive
// How long after its invisible time runs out an unacked message comes back, at most: Apache's
// revive service re-puts it after 1-3 s (measured), then a receive must pick it up.
export const REDELIVERY_GRACE_MS = 5000;

export const target = JSON.parse(process.env.V5_TARGET || 'null');
if (!target) throw new Error('V5_TARGET is not set: run the suite through runner.mjs (./run.sh)');

// The client logs to ~/logs/rocketmq by default; this one writes to the session directory.
function fileLogger() {
  const file = path.join(process.env.V5_LOG_DIR || '.', `node-client-${process.pid}.log`);
  const write = level => (...args) => fs.appendFileSync(file, `${new Date().toISOString()} ${level} ${format(...args)}\n`);
  return { info: write('INFO'), warn: write('WARN'), error: write('ERROR'), debug: () => {} };
}
const logger = fileLogger();

// A client sometimes leaves a handle open after shutdown() (seen once: a test file whose tests had
// all passed never exited). Once a file's tests are done, give the reporter a moment, then exit.
after(() => {
  setTimeout(() => process.exit(), 3000).unref();
});

async function started(client, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: startup did not complete within 15 s (no Settings reply?)`)), 15000);
  });
  try {
    await Promise.race([ client.startup(), timeout ]);
  } catch (e) {
    client.shutdown().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return client;
}

export async function withProducer(topics, fn, { checker, tls = false } = {}) {
  const p = await started(new Producer({
    endpoints: target.grpc, namespace: '', topics, checker, sslEnabled: tls, logger, requestTimeout: 5000,
  }), 'producer');
  try {
    return await fn(p);
  } finally {
    await p.shutdown().catch(() => {});
  }
}

// subscriptions: { topic: tagExpression }
export async function withConsumer(group, subscriptions, fn, { tls = false } = {}) {
  const c = await started(new SimpleConsumer({
    endpoints: target.grpc, namespace: '', consumerGroup: group, subscriptions: new Map(Object.entries(subscriptions)),
    awaitDuration: AWAIT_MS, sslEnabled: tls, logger, requestTimeout: 5000,
  }), `consumer ${group}`);
  try {
    return await fn(c);
  } finally {
    await c.shutdown().catch(() => {});
  }
}

export function message(topic, body, { tag, keys, props, group, deliveryTimestamp } = {}) {
  const m = { topic, body: Buffer.from(body) };
  if (tag) m.tag = tag;
  if (keys) m.keys = keys;
  if (props) m.properties = new Map(Object.entries(props));
  if (group) m.messageGroup = group;
  if (deliveryTimestamp) m.deliveryTimestamp = deliveryTimestamp;
  return m;
}

const now = () => performance.now();

// Receives until n messages arrived or timeoutMs passed; acks each when ack. Each result carries
// `at`, the performance.now() it arrived.
export async function receiveN(c, n, timeoutMs, { invisibleMs = MIN_INVISIBLE_MS, ack = true, batch = 16 } = {}) {
  const got = [];
  const deadline = now() + timeoutMs;
  while (got.length < n && now() < deadline) {
    for (const m of await c.receive(batch, invisibleMs)) {
      m.at = now();
      got.push(m);
      if (ack) await c.ack(m);
    }
  }
  return got;
}

// Keeps receiving for ms; fails on any message (acks nothing).
export async function assertNothing(c, ms, { invisibleMs = MIN_INVISIBLE_MS, what = 'message' } = {}) {
  const deadline = now() + ms;
  while (now() < deadline) {
    const ms2 = await c.receive(16, invisibleMs);
    assert.equal(ms2.length, 0, `unexpected ${what}: ` +
      ms2.map(m => `${m.messageId} body=${m.body} attempt=${m.deliveryAttempt} handle=${m.receiptHandle}`).join(', ') +
      ` (at ${new Date().toISOString()})`);
  }
}

// Proves the acks of messages received (with invisibleMs) at time receivedAt: nothing comes back
// until well after their invisible time would have run out.
export async function assertAcked(c, receivedAt, invisibleMs = MIN_INVISIBLE_MS) {
  await assertNothing(c, receivedAt + invisibleMs + REDELIVERY_GRACE_MS - now(),
    { invisibleMs, what: 'message after its ack (redelivered)' });
}

export const body = m => m.body.toString();
export const props = m => Object.fromEntries(m.properties);
export { now };
