// Browser end-to-end tests of the dashboard: a real FerroMQ, messages from the official
// Go client, Debian's Chromium driven by playwright-core. Screenshots of every page go to
// target/screenshots/. Everything talks to 127.0.0.1 only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = process.env.FERROMQ_BIN || join(root, "target/debug/ferromq");
const shots = join(root, "target/screenshots");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });

let broker, browser, page, dataDir, ns, dashboard, goHelper, javaClassPath;
let output = "";

function admin(...args) {
  return execFileSync(bin, ["admin", "-n", ns, ...args], { encoding: "utf8" });
}

function goClient(...args) {
  return execFileSync(goHelper, ["-namesrv", ns, ...args], { encoding: "utf8", timeout: 60_000 });
}

/** Apache's Java client with enableMsgTrace (java/TraceClient.java, run as a source file). */
function javaClient(...args) {
  return execFileSync("java", ["-cp", javaClassPath, join(root, "dashboard-e2e/java/TraceClient.java"), args[0], ns, ...args.slice(1)],
    { encoding: "utf8", timeout: 120_000 });
}

/** The ids a sender printed, one JSON object per line. */
const sentIds = (out) => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l).msgId);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function openPage(hash, readySelector) {
  // A fresh load each time: a hash-only navigation would keep the old page's DOM.
  await page.goto("about:blank");
  await page.goto(`http://${dashboard}/${hash}`);
  await page.waitForSelector(readySelector, { timeout: 15_000 });
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "ferromq-e2e-"));
  const [np, bp, dp] = [await freePort(), await freePort(), await freePort()];
  ns = `127.0.0.1:${np}`;
  dashboard = `127.0.0.1:${dp}`;
  // traceTopicEnable: the broker creates RMQ_SYS_TRACE_TOPIC for the clients' traces.
  broker = spawn(bin, ["standalone", "--data-dir", dataDir, "--namesrv-listen", ns, "--broker-listen", `127.0.0.1:${bp}`, "--dashboard-listen", dashboard, "--no-grpc"],
    { env: { ...process.env, FERROMQ_traceTopicEnable: "true" } });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("ferromq did not start:\n" + output)), 20_000);
    broker.stdout.on("data", (d) => {
      output += d;
      if (output.includes("FerroMQ is ready")) {
        clearTimeout(timer);
        ok();
      }
    });
    broker.stderr.on("data", (d) => (output += d));
    broker.on("exit", (code) => fail(new Error(`ferromq exited ${code}:\n${output}`)));
  });
  goHelper = join(dataDir, "crossclient");
  execFileSync("go", ["build", "-o", goHelper, "./crossclient"], { cwd: join(root, "interop/go"), stdio: "inherit" });
  // The Java interop suite's client jars (Apache's rocketmq-client 4.x) for TraceClient.java.
  const cpFile = join(dataDir, "java-classpath.txt");
  execFileSync("mvn", ["-B", "-ntp", "-q", "-f", join(root, "interop/java/pom.xml"), "dependency:build-classpath", "-Dmdep.includeScope=test", `-Dmdep.outputFile=${cpFile}`],
    { stdio: "inherit", timeout: 300_000 });
  javaClassPath = readFileSync(cpFile, "utf8").trim();
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
});

after(async () => {
  await browser?.close();
  broker?.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

test("cluster page shows the broker and its message count", async () => {
  goClient("-mode", "send", "-topic", "e2e-orders", "-count", "5");
  await openPage("#/cluster", "#brokers");
  await page.waitForFunction(() => document.querySelector("#brokers")?.textContent.includes("broker-a"));
  const text = await page.textContent("#brokers");
  assert.match(text, /broker-a/);
  assert.match(text, /MASTER/);
  assert.equal((await page.textContent("#broker-count")).trim(), "1");
  // "Messages put" counts the 5 sends.
  const cells = await page.$$eval("#brokers tbody tr td", (tds) => tds.map((t) => t.textContent.trim()));
  assert.ok(cells.includes("5"), `a cell shows 5 messages put: ${cells.join(" | ")}`);
  await page.waitForTimeout(7000); // a few samples for the chart
  await openPage("#/cluster", "svg.chart");
  await shot("cluster");
});

test("topics page lists, filters and creates topics", async () => {
  await openPage("#/topics", "#topic-list");
  assert.match(await page.textContent("#topic-list"), /e2e-orders/);
  await page.selectOption("#topic-filter select[name=kind]", "retry");
  await page.click("#topic-filter button");
  await page.waitForFunction(() => !document.querySelector("#topic-list")?.textContent.includes("e2e-orders"));
  await openPage("#/topics", "#topic-list");
  await page.fill("#create-topic input[name=topic]", "made-in-browser");
  await page.fill("#create-topic input[name=queues]", "2");
  await page.click("#create-topic button");
  await page.waitForFunction(() => document.querySelector("#topic-list")?.textContent.includes("made-in-browser"));
  assert.match(admin("topicList"), /^made-in-browser$/m, "the admin CLI sees the topic created in the UI");
  await shot("topics");
  await openPage("#/topic?name=e2e-orders", "#queue-offsets");
  const offsets = await page.$$eval("#queue-offsets tbody tr", (rows) => rows.map((r) => Number(r.children[3].textContent.replace(/,/g, ""))));
  assert.equal(offsets.reduce((a, b) => a + b, 0), 5, "max offsets add up to the 5 messages sent");
  await shot("topic");
});

test("messages are found by key and by id with their body", async () => {
  await openPage("#/messages", "#query-key");
  await page.fill("#query-key input[name=topic]", "e2e-orders");
  await page.fill("#query-key input[name=key]", "key3");
  await page.click("#query-key button");
  await page.waitForSelector("#message-list");
  const list = await page.textContent("#message-list");
  assert.match(list, /from-go-3/);
  assert.match(list, /tag3/);
  await page.click("#message-list a.link");
  await page.waitForSelector("#message-detail");
  assert.equal((await page.textContent("#detail-body")).trim(), "from-go-3");
  const id = await page.textContent("#detail-id");
  await openPage("#/messages", "#query-id");
  await page.fill("#query-id input[name=topic]", "e2e-orders");
  await page.fill("#query-id input[name=msgId]", id.trim());
  await page.click("#query-id button");
  await page.waitForSelector("#message-detail");
  assert.equal((await page.textContent("#detail-body")).trim(), "from-go-3");
  await shot("messages");
});

test("consumer group shows lag and a reset makes the consumer re-consume", async () => {
  // The Go consumer reads all 5, then (after the reset) all 5 again, then exits.
  const consumer = spawn(goHelper, ["-namesrv", ns, "-mode", "receive", "-topic", "e2e-orders", "-group", "e2e-group", "-count", "10", "-timeout", "90s"]);
  let received = "";
  consumer.stdout.on("data", (d) => (received += d));
  const exited = new Promise((ok) => consumer.on("exit", ok));
  const deadline = Date.now() + 30_000;
  while ((received.match(/from-go/g) || []).length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.equal((received.match(/from-go/g) || []).length, 5, "first pass");
  await openPage("#/groups", "#group-list");
  await page.waitForFunction(() => document.querySelector("#group-list")?.textContent.includes("e2e-group"));
  await shot("groups");
  // The Go client commits consumed offsets every 5 s (first after 10 s): wait for lag 0.
  let lag = "";
  for (let i = 0; i < 30 && lag !== "0"; i++) {
    await openPage("#/group?name=e2e-group", "#group-progress");
    lag = (await page.textContent("#group-lag")).trim();
    if (lag !== "0") await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(lag, "0", "lag after the consumer committed");
  assert.match(await page.textContent("#group-clients"), /GO/);
  await page.selectOption("#reset-offset select[name=topic]", "e2e-orders");
  await page.fill("#reset-offset input[name=timestamp]", "0");
  await page.click("#reset-offset button");
  await page.waitForFunction(() => document.querySelector("#reset-result")?.textContent.includes("reset"));
  await shot("group");
  const code = await exited;
  assert.equal(code, 0, `the consumer re-consumed after the reset: ${received}`);
  assert.equal((received.match(/from-go/g) || []).length, 10);
});

test("delayed, transactional and producer pages render their tables", async () => {
  admin("sendMessage", "-t", "e2e-orders", "-p", "later");
  await openPage("#/delayed", "#delay-levels");
  assert.match(await page.textContent("#delay-levels"), /level 18/);
  await page.waitForSelector("#transactions");
  await shot("delayed");
  await openPage("#/producers", "#producer-list");
  await shot("producers");
});

test("access page creates a user and a policy that the admin CLI sees, and removes them", async () => {
  await openPage("#/access", "#user-list");
  await page.fill("#create-user input[name=username]", "browser-user");
  await page.fill("#create-user input[name=password]", "browser-secret");
  await page.click("#create-user button");
  await page.waitForFunction(() => document.querySelector("#user-list")?.textContent.includes("browser-user"));
  await page.fill("#grant input[name=subject]", "User:browser-user");
  await page.fill("#grant input[name=resources]", "Topic:e2e-orders,Group:e2e-browser");
  await page.fill("#grant input[name=actions]", "Pub,Sub");
  await page.fill("#grant input[name=sourceIps]", "127.0.0.1");
  await page.click("#grant button");
  await page.waitForFunction(() => document.querySelector("#acl-list")?.textContent.includes("Group:e2e-browser"));
  const listed = admin("listAcl", "-s", "browser-user");
  assert.match(listed, /Topic:e2e-orders/, "the admin CLI sees the policy made in the UI");
  assert.match(listed, /127\.0\.0\.1/);
  await shot("access");
  await page.click("#acl-list form[data-resource='Topic:e2e-orders'] button");
  await page.waitForFunction(() => !document.querySelector("#acl-list")?.textContent.includes("Topic:e2e-orders"));
  await page.click("#user-list form[data-form='delete-user'][data-user='browser-user'] button");
  await page.waitForFunction(() => !document.querySelector("#user-list")?.textContent.includes("browser-user"));
  assert.doesNotMatch(admin("listUser"), /browser-user/, "the user is gone for the admin CLI too");
});

test("message traces of the Go and the Java client are drawn and tabled", async () => {
  const goId = sentIds(goClient("-mode", "send", "-trace", "-topic", "e2e-traced-go", "-count", "1", "-producer-group", "e2e-go-producer"))[0];
  goClient("-mode", "receive", "-trace", "-topic", "e2e-traced-go", "-group", "e2e-go-consumer", "-count", "1", "-timeout", "60s");
  const javaId = sentIds(javaClient("send", "e2e-traced-java", "e2e-java-producer", "1"))[0];
  javaClient("receive", "e2e-traced-java", "e2e-java-consumer", "1");
  assert.ok(goId && javaId, `ids: ${goId} ${javaId}`);
  for (const [client, id, producer, consumer] of [["go", goId, "e2e-go-producer", "e2e-go-consumer"], ["java", javaId, "e2e-java-producer", "e2e-java-consumer"]]) {
    // Clients send their trace batches in the background: poll the page, bounded.
    let text = "";
    for (let i = 0; i < 30; i++) {
      await openPage(`#/trace?msgId=${encodeURIComponent(id)}`, "#trace-results");
      text = await page.textContent("#trace-results");
      if (text.includes(producer) && text.includes(consumer)) break;
      await sleep(1000);
    }
    assert.match(text, new RegExp(producer), `${client}: the send's producer group`);
    assert.match(await page.textContent("#trace-send"), /success/, `${client}: the send succeeded`);
    assert.match(await page.textContent("#trace-send"), /e2e-traced-/, `${client}: the topic`);
    assert.match(await page.textContent("#trace-consumers"), new RegExp(`${consumer}[\\s\\S]*success`), `${client}: the group's consumption`);
    // One bar for the send, one for the consumption, both green.
    const bars = await page.$$eval("#trace-graph g.span", (gs) => gs.map((g) => g.dataset.status));
    assert.deepEqual(bars, ["success", "success"], `${client}: bars`);
    const labels = await page.$$eval("#trace-graph text.row-label", (ts) => ts.map((t) => t.textContent));
    assert.deepEqual(labels, [`send: ${producer}`, `consume: ${consumer}`]);
    await shot(`trace-${client}`);
  }
  // The message page links to the trace; an unknown id says why nothing is shown.
  await openPage(`#/messages?id=${encodeURIComponent(goId)}&topic=e2e-traced-go`, "#detail-trace");
  await page.click("#detail-trace");
  await page.waitForSelector("#trace-graph");
  await openPage("#/trace?msgId=0000000000000000000000000000BEEF", "#trace-missing");
  assert.match(await page.textContent("#trace-missing"), /no trace of/);
});

test("message life of the Go and the Java client's messages, without tracing", async () => {
  const goId = sentIds(goClient("-mode", "send", "-topic", "e2e-life-go", "-count", "1"))[0];
  goClient("-mode", "receive", "-topic", "e2e-life-go", "-group", "e2e-life-go-consumer", "-count", "1", "-timeout", "60s");
  const javaId = sentIds(javaClient("send", "e2e-life-java", "e2e-life-java-producer", "1"))[0];
  javaClient("receive", "e2e-life-java", "e2e-life-java-consumer", "1");
  for (const [client, topic, id, group] of [["go", "e2e-life-go", goId, "e2e-life-go-consumer"], ["java", "e2e-life-java", javaId, "e2e-life-java-consumer"]]) {
    // A client commits its offsets with its next pull or every few seconds: poll, bounded.
    let groups = "";
    for (let i = 0; i < 30; i++) {
      await openPage(`#/life?topic=${topic}&id=${encodeURIComponent(id)}`, "#life-results");
      groups = (await page.textContent("#life-results")) || "";
      if (groups.includes(group) && /\bconsumed\b/.test(groups)) break;
      await sleep(1000);
    }
    assert.match(await page.textContent("#life-stored"), new RegExp(`${topic}[\\s\\S]*127\\.0\\.0\\.1`), `${client}: where it is stored`);
    const row = await page.$$eval(".life-groups tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.equal(row.length, 1, `${client}: one copy for the one group: ${JSON.stringify(row)}`);
    assert.equal(row[0][3], "consumed", `${client}: state`);
    assert.match(row[0][4], /127\.0\.0\.1:\d+/, `${client}: pulled by`);
    const marks = await page.$$eval("#life-graph g.span", (gs) => gs.map((g) => g.dataset.status));
    assert.ok(marks.includes("stored") && marks.includes("read") && marks.includes("success"), `${client}: timeline ${marks}`);
    await shot(`life-${client}`);
  }
  // The message page links to the life; an unknown id says so.
  await openPage(`#/messages?id=${encodeURIComponent(goId)}&topic=e2e-life-go`, "#detail-life");
  await page.click("#detail-life");
  await page.waitForSelector("#life-graph");
  await openPage("#/life?topic=e2e-life-go&id=NOBODY-SENT-THIS", "#life-missing");
  assert.match(await page.textContent("#life-missing"), /no message NOBODY-SENT-THIS/);
});
