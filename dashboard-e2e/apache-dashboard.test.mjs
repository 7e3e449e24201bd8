// Apache's own rocketmq-dashboard (the Spring Boot jar in shared/tools, talking to brokers
// through Apache's admin API) against FerroMQ, in Debian's Chromium driven by playwright-core.
// FerroMQ runs with Apache's e2e settings; the dashboard keeps its defaults, VIP channel
// included (FerroMQ listens on listenPort - 2 as Apache does). Every page is loaded, the
// actions its buttons call are taken, and every answer the dashboard's backend gives the page
// must carry status 0. Screenshots go to target/screenshots/apache-*.png. 127.0.0.1 only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = process.env.FERROMQ_BIN || join(root, "target/debug/ferromq");
const jar = process.env.APACHE_DASHBOARD_JAR || join(root, "../shared/tools/rocketmq-dashboard.jar");
const shots = join(root, "target/screenshots");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const TOPIC = "apache-dash-topic";
const GROUP = "apache-dash-group";

let ferromq, dashboardProc, browser, page, dataDir, ns, brokerAddr, dash, goHelper, goConsumer;
let output = "";
let dashOutput = "";
/** Every answer of the dashboard's backend that did not carry status 0: "url -> errMsg". */
const failures = [];

const listenOn = (port) =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(port, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => ok(p));
    });
  });

/** A broker port whose VIP channel (port - 2) is free too; bounded tries. */
async function brokerPort() {
  for (let i = 0; i < 50; i++) {
    const p = await listenOn(0);
    if (p < 1026) continue;
    try {
      await listenOn(p - 2);
      return p;
    } catch {
      // taken: try another
    }
  }
  throw new Error("no free port pair for the broker and its VIP channel");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function goClient(...args) {
  return execFileSync(goHelper, ["-namesrv", ns, ...args], { encoding: "utf8", timeout: 60_000 });
}

/** Calls the dashboard's backend from the page, as its own scripts do (CSRF token included). */
async function api(path, body) {
  return page.evaluate(
    async ({ path, body }) => {
      await fetch("/rocketmq-dashboard/csrf-token", { credentials: "include" });
      const token = decodeURIComponent((document.cookie.match(/XSRF-TOKEN=([^;]+)/) || [])[1] || "");
      const init = body === undefined
        ? { credentials: "include" }
        : { method: "POST", credentials: "include", headers: { "Content-Type": "application/json", "X-XSRF-TOKEN": token }, body: JSON.stringify(body) };
      const r = await fetch(path, init);
      return r.json();
    },
    { path, body },
  );
}

async function ok(path, body) {
  const r = await api(path, body);
  assert.equal(r.status, 0, `${path}: ${r.errMsg}`);
  return r.data;
}

async function openPage(hash, text) {
  await page.goto("about:blank");
  await page.goto(`http://${dash}/${hash}`);
  await page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout: 20_000 });
  await sleep(1500); // the page's remaining queries
}

async function shot(name) {
  await page.screenshot({ path: join(shots, `apache-${name}.png`), fullPage: true });
}

async function waitFor(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

before(async () => {
  assert.ok(existsSync(jar), `Apache's dashboard jar not found at ${jar} (set APACHE_DASHBOARD_JAR)`);
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "ferromq-apache-dash-"));
  const conf = join(dataDir, "broker.conf");
  // Apache's e2e settings, and the trace topic for the clients' message traces.
  writeFileSync(conf, "autoCreateTopicEnable=false\nenablePropertyFilter=true\nflushDiskType=SYNC_FLUSH\nmaxMessageSize=5242880\ntraceTopicEnable=true\n");
  const bp = await brokerPort();
  const np = await listenOn(0);
  const dp = await listenOn(0);
  ns = `127.0.0.1:${np}`;
  brokerAddr = `127.0.0.1:${bp}`;
  dash = `127.0.0.1:${dp}`;
  ferromq = spawn(bin, ["standalone", "-c", conf, "--data-dir", join(dataDir, "store"), "--namesrv-listen", ns, "--broker-listen", brokerAddr, "--no-dashboard"]);
  ferromq.stderr.on("data", (d) => (output += d));
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("ferromq did not start:\n" + output)), 20_000);
    ferromq.stdout.on("data", (d) => {
      output += d;
      if (output.includes("FerroMQ is ready")) {
        clearTimeout(timer);
        ok();
      }
    });
    ferromq.on("exit", (code) => fail(new Error(`ferromq exited ${code}:\n${output}`)));
  });
  dashboardProc = spawn("java", [
    "-Xmx512m", `-Duser.home=${dataDir}`, "-jar", jar,
    `--server.port=${dp}`, "--server.address=127.0.0.1",
    `--rocketmq.config.namesrvAddrs=${ns}`, `--rocketmq.config.dataPath=${join(dataDir, "dashboard-data")}`,
  ]);
  dashboardProc.stdout.on("data", (d) => (dashOutput = (dashOutput + d).slice(-20_000)));
  dashboardProc.stderr.on("data", (d) => (dashOutput = (dashOutput + d).slice(-20_000)));
  goHelper = join(dataDir, "crossclient");
  execFileSync("go", ["build", "-o", goHelper, "./crossclient"], { cwd: join(root, "interop/go"), stdio: "inherit" });
  // The Spring Boot app takes a while to start: bounded wait for its first page.
  await waitFor("Apache's dashboard to answer", async () => {
    try {
      return (await fetch(`http://${dash}/`)).ok;
    } catch {
      return false;
    }
  }, 120_000).catch((e) => {
    throw new Error(`${e.message}\n${dashOutput}`);
  });
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("response", async (r) => {
    const url = r.url();
    if (!url.startsWith(`http://${dash}/`) || !/\.(query|do)(\?|$)/.test(url)) return;
    try {
      const body = await r.json();
      if (body.status !== 0) failures.push(`${url.slice(dash.length + 7)} -> ${body.errMsg}`);
    } catch {
      // The body is gone when the page navigated on before it was read; the calls this test
      // makes itself check their answers in api().
      if (r.status() !== 200) failures.push(`${url} -> HTTP ${r.status()}`);
    }
  });
  await page.goto(`http://${dash}/`);
});

after(async () => {
  await browser?.close();
  goConsumer?.kill("SIGTERM");
  dashboardProc?.kill("SIGTERM");
  ferromq?.kill("SIGTERM");
  await sleep(1000);
  if (failures.length || process.exitCode) {
    console.log("--- ferromq output ---\n" + output.slice(-10_000));
    console.log("--- dashboard output (tail) ---\n" + dashOutput.slice(-5_000));
  }
  rmSync(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

test("Apache's dashboard: cluster page shows the broker, its status and its config", async () => {
  await openPage("#/cluster", "broker-a");
  assert.match(await page.innerText("body"), /FerroMQ/);
  const clusters = await ok("/cluster/list.query");
  const info = clusters.brokerServer["broker-a"]["0"];
  assert.equal(info.brokerActive, "true");
  assert.ok("putTps" in info && "msgPutTotalTodayNow" in info, "runtime keys the page reads");
  const config = await ok(`/cluster/brokerConfig.query?brokerAddr=${brokerAddr}`);
  assert.equal(config.flushDiskType, "SYNC_FLUSH");
  await page.getByRole("button", { name: "Status" }).first().click();
  await page.waitForFunction(() => document.body.innerText.includes("commitLogMaxOffset"));
  await shot("cluster");
});

test("Apache's dashboard: topic page creates a topic, sends to it and shows its route and stats", async () => {
  await openPage("#/topic", "TRANSACTION");
  await ok("/topic/createOrUpdate.do", {
    topicName: TOPIC, writeQueueNums: 4, readQueueNums: 4, perm: 6, order: false,
    clusterNameList: ["DefaultCluster"], brokerNameList: [], messageType: "NORMAL",
  });
  for (let i = 0; i < 3; i++) {
    const sent = await ok("/topic/sendTopicMessage.do", { topic: TOPIC, key: `key${i}`, tag: "tagA", messageBody: `from-apache-dashboard-${i}`, traceEnabled: false });
    assert.equal(sent.sendStatus, "SEND_OK");
  }
  await openPage("#/topic", TOPIC);
  const stats = await ok(`/topic/stats.query?topic=${TOPIC}`);
  const maxOffsets = Object.values(stats.offsetTable).map((q) => q.maxOffset);
  assert.equal(maxOffsets.length, 4);
  assert.equal(maxOffsets.reduce((a, b) => a + b, 0), 3, "three messages stored");
  const route = await ok(`/topic/route.query?topic=${TOPIC}`);
  assert.equal(route.queueDatas[0].writeQueueNums, 4);
  const configs = await ok(`/topic/examineTopicConfig.query?topic=${TOPIC}`);
  assert.equal(configs[0].topicName, TOPIC);
  await shot("topic");
});

test("Apache's dashboard: consumer page shows an online Go consumer, and resets and skips act", async () => {
  goConsumer = spawn(goHelper, ["-namesrv", ns, "-mode", "receive", "-topic", TOPIC, "-group", GROUP, "-count", "1000", "-timeout", "300s"]);
  let received = "";
  goConsumer.stdout.on("data", (d) => (received += d));
  await waitFor("the Go consumer to receive the three messages", () => (received.match(/from-apache-dashboard/g) || []).length >= 3);
  await openPage("#/consumer", GROUP);
  const groups = await ok("/consumer/groupList.query");
  const mine = groups.find((g) => g.group === GROUP);
  assert.ok(mine, `group listed: ${JSON.stringify(groups.map((g) => g.group))}`);
  assert.equal(mine.count, 1, "one client online");
  const conn = await ok(`/consumer/consumerConnection.query?consumerGroup=${GROUP}&address=${brokerAddr}`);
  assert.equal(conn.connectionSet.length, 1);
  assert.equal(conn.connectionSet[0].language, "GO");
  const byConsumer = await waitFor("the group's committed offsets", async () => {
    const r = await ok(`/consumer/queryTopicByConsumer.query?consumerGroup=${GROUP}&address=${brokerAddr}`);
    const t = r.find((x) => x.topic === TOPIC);
    return t && t.diffTotal === 0 ? t : null;
  });
  assert.equal(byConsumer.queueStatInfoList.length, 4);
  await ok("/consumer/resetOffset.do", { consumerGroupList: [GROUP], topic: TOPIC, resetTime: 0, force: true });
  await waitFor("the Go consumer to re-consume after the reset", () => (received.match(/from-apache-dashboard/g) || []).length >= 6);
  await ok("/consumer/skipAccumulate.do", { consumerGroupList: [GROUP], topic: TOPIC, resetTime: -1, force: true });
  const sub = await ok(`/consumer/examineSubscriptionGroupConfig.query?consumerGroup=${GROUP}`);
  assert.equal(sub[0].subscriptionGroupConfig.groupName, GROUP);
  await shot("consumer");
});

test("Apache's dashboard: producer page lists a running producer's connection", async () => {
  const bench = spawn(bin, ["bench", "produce", "-n", ns, "--topic", TOPIC, "--rate", "20", "--seconds", "20", "--size", "64"]);
  try {
    await openPage("#/producer", "Producer");
    const conns = await waitFor("the producer's heartbeat", async () => {
      const r = await api(`/producer/producerConnection.query?topic=${TOPIC}&producerGroup=ferromq-bench-0`);
      return r.status === 0 && r.data.connectionSet.length > 0 ? r.data : null;
    });
    assert.equal(conns.connectionSet[0].language, "RUST");
    await shot("producer");
  } finally {
    bench.kill("SIGTERM");
  }
  // The polls above that found no producer yet answered "not exist", as Apache's would.
  for (let i = failures.length - 1; i >= 0; i--) {
    if (/producerConnection\.query.*not exist/.test(failures[i])) failures.splice(i, 1);
  }
});

test("Apache's dashboard: message page finds messages by topic, key and id", async () => {
  await openPage("#/message", "Topic");
  const now = Date.now();
  const byTopic = await ok(`/message/queryMessageByTopic.query?topic=${TOPIC}&begin=${now - 3_600_000}&end=${now + 60_000}`);
  const mine = byTopic.filter((m) => m.properties.KEYS && m.properties.KEYS.startsWith("key"));
  assert.equal(mine.length, 3, "the three dashboard messages");
  const byKey = await ok(`/message/queryMessageByTopicAndKey.query?topic=${TOPIC}&key=key1`);
  assert.equal(byKey.length, 1);
  const view = await ok(`/message/viewMessage.query?topic=${TOPIC}&msgId=${byKey[0].msgId}`);
  assert.equal(view.messageView.messageBody, "from-apache-dashboard-1");
  await shot("message");
});

test("Apache's dashboard: message trace graph of a Go client's traced send and consumption", async () => {
  const TRACED = "apache-dash-traced";
  await ok("/topic/createOrUpdate.do", {
    topicName: TRACED, writeQueueNums: 2, readQueueNums: 2, perm: 6, order: false,
    clusterNameList: ["DefaultCluster"], brokerNameList: [], messageType: "NORMAL",
  });
  const sent = goClient("-mode", "send", "-trace", "-topic", TRACED, "-count", "1", "-producer-group", "apache-dash-traced-producer");
  const msgId = JSON.parse(sent.split("\n").find((l) => l.startsWith("{"))).msgId;
  goClient("-mode", "receive", "-trace", "-topic", TRACED, "-group", "apache-dash-traced-consumer", "-count", "1", "-timeout", "60s");
  const graph = await waitFor("the send's and the consumption's traces", async () => {
    const r = await api(`/messageTrace/viewMessageTraceGraph.query?msgId=${msgId}&traceTopic=RMQ_SYS_TRACE_TOPIC`);
    const g = r.status === 0 ? r.data : null;
    return g && g.producerNode && g.subscriptionNodeList.length ? g : null;
  }, 60_000);
  assert.equal(graph.producerNode.groupName, "apache-dash-traced-producer");
  assert.equal(graph.producerNode.topic, TRACED);
  assert.equal(graph.producerNode.traceNode.status, "success");
  assert.equal(graph.producerNode.traceNode.storeHost, brokerAddr);
  assert.equal(graph.subscriptionNodeList[0].subscriptionGroup, "apache-dash-traced-consumer");
  assert.equal(graph.subscriptionNodeList[0].consumeNodeList[0].status, "success");
  await openPage("#/messageTrace", "Trace");
  await shot("message-trace");
  // Polls before the consumer's trace arrived answered "no trace", as Apache's would.
  for (let i = failures.length - 1; i >= 0; i--) {
    if (/viewMessageTraceGraph/.test(failures[i])) failures.splice(i, 1);
  }
});

test("Apache's dashboard: no query or action the pages made was refused", () => {
  assert.deepEqual(failures, []);
});
