// The server under test: FerroMQ's standalone binary (default) or Apache RocketMQ 5.5.0
// (TARGET=apache, through ../apache-local.sh). Started on free 127.0.0.1 ports, stopped by PID.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const V5 = path.resolve(HERE, '..', '..');
const REPO = path.resolve(V5, '..', '..');

// The broker settings both targets run with (Apache: apache-local.sh writes the same lines).
export const BROKER_CONF = `brokerClusterName=DefaultCluster
brokerName=broker-a
brokerIP1=127.0.0.1
autoCreateTopicEnable=false
autoCreateSubscriptionGroup=true
flushDiskType=SYNC_FLUSH
transactionCheckInterval=2000
transactionTimeOut=6000
`;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function accepts(addr, timeoutMs = 1000) {
  const [ host, port ] = addr.split(':');
  return new Promise(resolve => {
    const sock = net.connect({ host, port: Number(port) });
    const done = ok => { sock.destroy(); resolve(ok); };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on('connect', () => done(true));
    sock.on('error', () => done(false));
  });
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

function readEnv(file) {
  const env = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i).trim()] = line.slice(i + 1).trim().replace(/^"|"$/g, '');
  }
  return env;
}

function adminCommands(namesrv, topics, groups) {
  const cmds = [];
  for (const [ name, kind ] of Object.entries(topics)) {
    cmds.push([ 'updateTopic', '-n', namesrv, '-c', 'DefaultCluster', '-t', name, '-a', `+message.type=${kind}` ]);
  }
  for (const [ name, opts ] of Object.entries(groups)) {
    const cmd = [ 'updateSubGroup', '-n', namesrv, '-c', 'DefaultCluster', '-g', name, '-r', String(opts.retries ?? 16) ];
    if (opts.orderly) cmd.push('-o', 'true');
    cmds.push(cmd);
  }
  return cmds;
}

export class FerroMQ {
  kind = 'ferromq';

  async start() {
    this.bin = process.env.FERROMQ_BIN || path.join(REPO, 'target', 'release', 'ferromq');
    try {
      fs.accessSync(this.bin, fs.constants.X_OK);
    } catch {
      throw new Error(`FERROMQ_BIN=${this.bin} is not an executable (build it, or TARGET=apache)`);
    }
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferromq-v5-node-'));
    const conf = path.join(this.dir, 'broker.conf');
    fs.writeFileSync(conf, BROKER_CONF);
    const ports = new Set();
    while (ports.size < 3) ports.add(await freePort());
    const [ p1, p2, p3 ] = [ ...ports ];
    this.namesrv = `127.0.0.1:${p1}`;
    this.broker = `127.0.0.1:${p2}`;
    this.grpc = `127.0.0.1:${p3}`;
    this.logFile = path.join(this.dir, 'ferromq.log');
    const out = fs.openSync(this.logFile, 'w');
    this.proc = spawn(this.bin, [ 'standalone', '--data-dir', path.join(this.dir, 'data'),
      '--namesrv-listen', this.namesrv, '--broker-listen', this.broker, '--grpc-listen', this.grpc,
      '--no-dashboard', '-c', conf ], { stdio: [ 'ignore', out, out ] });
    let exited = null;
    this.proc.on('exit', code => { exited = code ?? -1; });
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      if (exited !== null) {
        const tail = this.#tail();
        await this.stop();
        throw new Error(`ferromq exited with ${exited}:\n${tail}`);
      }
      if (await accepts(this.grpc) && await accepts(this.namesrv)) return this;
      await sleep(200);
    }
    const tail = this.#tail();
    await this.stop();
    throw new Error(`ferromq did not accept on ${this.grpc} within 60 s:\n${tail}`);
  }

  #tail() {
    try { return fs.readFileSync(this.logFile, 'utf8').slice(-3000); } catch { return ''; }
  }

  create(topics, groups) {
    for (const cmd of adminCommands(this.namesrv, topics, groups)) {
      const r = spawnSync(this.bin, [ 'admin', ...cmd ], { encoding: 'utf8', timeout: 60000 });
      if (r.status !== 0) throw new Error(`ferromq admin ${cmd.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      const gone = new Promise(r => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
      await gone;
      clearTimeout(t);
    }
    if (process.env.KEEP_DATA !== '1' && this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Apache RocketMQ 5.5.0 via ../apache-local.sh. APACHE_STATE=dir reuses an instance already
// started with `apache-local.sh start dir` (and leaves it running).
export class Apache {
  kind = 'apache';

  async start() {
    const reuse = process.env.APACHE_STATE;
    if (reuse) {
      this.state = path.resolve(reuse);
      this.owned = false;
    } else {
      this.state = fs.mkdtempSync(path.join(os.tmpdir(), 'apache-v5-node-'));
      this.owned = true;
      const r = spawnSync(path.join(V5, 'apache-local.sh'), [ 'start', this.state ], { encoding: 'utf8', timeout: 300000 });
      if (r.status !== 0) throw new Error(`apache-local.sh start failed:\n${r.stdout}\n${r.stderr}`);
    }
    const env = readEnv(path.join(this.state, 'env'));
    this.namesrv = env.NAMESRV;
    this.grpc = env.GRPC;
    this.broker = env.BROKER;
    this.logFile = env.LOGS;
    return this;
  }

  create(topics, groups) {
    const cmds = adminCommands(this.namesrv, topics, groups);
    const r = spawnSync(path.join(this.state, 'mqadmin-batch'), [], {
      input: cmds.map(c => c.join(' ')).join('\n') + '\n', encoding: 'utf8', timeout: 180000,
    });
    const sections = (r.stdout || '').split('### ').slice(1);
    if (r.status !== 0 || sections.length !== cmds.length || sections.some(s => !s.includes('success'))) {
      throw new Error(`mqadmin failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
  }

  async stop() {
    if (!this.owned) return;
    spawnSync(path.join(V5, 'apache-local.sh'), [ 'stop', this.state ], { stdio: 'inherit', timeout: 120000 });
    if (process.env.KEEP_DATA !== '1') fs.rmSync(this.state, { recursive: true, force: true });
  }
}

export async function startTarget() {
  const kind = (process.env.TARGET || 'ferromq').toLowerCase();
  if (kind === 'apache') return new Apache().start();
  if (kind === 'ferromq') return new FerroMQ().start();
  throw new Error(`TARGET=${kind}: expected ferromq or apache`);
}
