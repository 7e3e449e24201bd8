// Starts the server (FerroMQ, or Apache with TARGET=apache), creates every topic and group, saves
// the certificate its gRPC port presents (the TLS test trusts it through
// GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, which @grpc/grpc-js reads for its default roots), then runs
// `node --test` on test/ with V5_TARGET in the environment, and stops the server by PID.
// Arguments are passed to `node --test` (e.g. a test file, or --test-name-pattern=fifo).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { GROUPS, TOPICS, groupName, topicName } from './lib/names.mjs';
import { startTarget } from './lib/target.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function presentedCertificate(addr) {
  const [ host, port ] = addr.split(':');
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ALPNProtocols: [ 'h2' ] }, () => {
      const cert = sock.getPeerCertificate();
      const alpn = sock.alpnProtocol;
      sock.destroy();
      if (!cert || !cert.raw) return reject(new Error('no certificate presented'));
      const b64 = cert.raw.toString('base64').match(/.{1,64}/g).join('\n');
      resolve({ pem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`, alpn });
    });
    sock.setTimeout(5000, () => { sock.destroy(); reject(new Error('TLS handshake timed out')); });
    sock.on('error', reject);
  });
}

const sessionDir = fs.mkdtempSync(path.join(os.tmpdir(), 'v5-node-'));
const suffix = crypto.randomBytes(4).toString('hex');
const started = Date.now();
let target;
try {
  target = await startTarget();
} catch (e) {
  console.error(`could not start the ${process.env.TARGET || 'ferromq'} target: ${e.message}`);
  process.exit(3);
}
let code = 1;
const stop = async () => { await target.stop(); };
process.once('SIGINT', async () => { await stop(); process.exit(130); });
process.once('SIGTERM', async () => { await stop(); process.exit(143); });
try {
  const topics = Object.fromEntries(Object.entries(TOPICS).map(([ k, v ]) => [ topicName(k, suffix), v ]));
  const groups = Object.fromEntries(Object.entries(GROUPS).map(([ k, v ]) => [ groupName(k, suffix), v ]));
  target.create(topics, groups);
  const roots = path.join(sessionDir, 'server-roots.pem');
  let alpn = '';
  try {
    const presented = await presentedCertificate(target.grpc);
    fs.writeFileSync(roots, presented.pem);
    alpn = presented.alpn || '';
  } catch (e) {
    console.error(`no TLS on ${target.grpc}: ${e.message}`);
  }
  console.log(`v5 target: ${target.kind} gRPC ${target.grpc} (ready after ${((Date.now() - started) / 1000).toFixed(1)} s); logs: ${sessionDir}`);
  const env = {
    ...process.env,
    V5_TARGET: JSON.stringify({ kind: target.kind, grpc: target.grpc, namesrv: target.namesrv, broker: target.broker, alpn }),
    V5_SUFFIX: suffix,
    V5_LOG_DIR: sessionDir,
    GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: roots,
  };
  const args = process.argv.slice(2);
  const files = args.some(a => !a.startsWith('-')) ? [] :
    fs.readdirSync(path.join(HERE, 'test')).filter(f => f.endsWith('.test.mjs')).sort().map(f => path.join('test', f));
  const concurrency = process.env.NODE_TEST_CONCURRENCY || '4';
  const child = spawn(process.execPath, [ '--test', `--test-concurrency=${concurrency}`, '--test-timeout=120000', ...args, ...files ],
    { cwd: HERE, env, stdio: 'inherit' });
  code = await new Promise(resolve => child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
} catch (e) {
  console.error(e);
  code = 1;
} finally {
  await stop();
}
console.log(`total ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(code);
