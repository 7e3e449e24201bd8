// FerroMQ dashboard: hash-routed pages over the JSON API (/api/openapi.json).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtTime = (ms) => (ms && ms > 0 ? new Date(Number(ms)).toISOString().replace("T", " ").slice(0, 23) : "—");
const fmtNum = (n) => (typeof n === "number" ? (Number.isInteger(n) ? n.toLocaleString("en-US") : n.toFixed(1)) : esc(n));

async function api(path, options = {}) {
  const res = await fetch("/api" + path, {
    headers: { "content-type": "application/json" },
    ...options,
    body: options.body ? JSON.stringify(options.body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function showError(e) {
  const box = $("#error");
  box.textContent = e.message || String(e);
  box.hidden = false;
  setTimeout(() => (box.hidden = true), 6000);
}

function table(headers, rows, id) {
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((c) => (typeof c === "number" ? `<td class="num">${fmtNum(c)}</td>` : `<td>${c ?? ""}</td>`)).join("")}</tr>`).join("");
  return `<table${id ? ` id="${id}"` : ""}><thead><tr>${head}</tr></thead><tbody>${body || `<tr><td colspan="${headers.length}" class="muted">none</td></tr>`}</tbody></table>`;
}

// A small line chart of put/get TPS drawn as SVG.
function chart(points, width = 520, height = 120) {
  if (!points || points.length < 2) return `<svg class="chart" width="${width}" height="${height}"><text x="10" y="20" fill="#6b7385">collecting samples…</text></svg>`;
  const max = Math.max(1, ...points.map((p) => Math.max(p.putTps, p.getTps)));
  const x = (i) => 30 + (i * (width - 40)) / (points.length - 1);
  const y = (v) => height - 15 - (v / max) * (height - 30);
  const line = (key, color) => `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((p, i) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ")}"/>`;
  return `<svg class="chart" width="${width}" height="${height}">${line("putTps", "#c2410c")}${line("getTps", "#2563eb")}
    <text x="4" y="14" font-size="11" fill="#6b7385">${fmtNum(max)}/s</text>
    <text x="${width - 150}" y="14" font-size="11" fill="#c2410c">put</text><text x="${width - 110}" y="14" font-size="11" fill="#2563eb">get</text></svg>`;
}

// How long a span of milliseconds is, for axis labels and bar captions.
const fmtSpan = (ms) => (ms < 1 ? "<1ms" : ms < 1000 ? `${Math.round(ms)}ms` : ms < 60_000 ? `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s` : `${(ms / 60_000).toFixed(1)}min`);

// A Gantt chart as SVG: one row per label, bars from begin to end (ms since the epoch),
// time relative to the earliest bar. Bars with no begin (-1) are left out; a bar without an
// end is drawn 1 ms wide. rows: [{label, spans: [{begin, end, caption, status, title}]}].
function timeline(rows, id) {
  const spans = rows.flatMap((r) => r.spans).filter((s) => s.begin > 0);
  if (!spans.length) return `<p class="muted">no timed records</p>`;
  const t0 = Math.min(...spans.map((s) => s.begin));
  const t1 = Math.max(...spans.map((s) => Math.max(s.end, s.begin + 1)));
  const width = 960, left = 220, right = 70, rowH = 30, top = 24;
  const height = top + rows.length * rowH + 8;
  const scale = (width - left - right) / Math.max(1, t1 - t0);
  const x = (t) => left + (t - t0) * scale;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const t = t0 + f * (t1 - t0);
    return `<line x1="${x(t)}" x2="${x(t)}" y1="${top - 4}" y2="${height - 4}" class="tick"/><text x="${x(t)}" y="${top - 8}" text-anchor="middle" class="axis">${f === 0 ? "0" : "+" + fmtSpan(t - t0)}</text>`;
  }).join("");
  const bars = rows.map((r, i) => {
    const y = top + i * rowH;
    const label = `<text x="${left - 8}" y="${y + rowH / 2 + 4}" text-anchor="end" class="row-label">${esc(r.label)}</text>`;
    const drawn = r.spans.filter((s) => s.begin > 0).map((s) => {
      const end = s.end > s.begin ? s.end : s.begin + 1;
      const w = Math.max(3, x(end) - x(s.begin));
      return `<g class="span" data-status="${esc(s.status)}"><rect x="${x(s.begin)}" y="${y + 6}" width="${w}" height="${rowH - 12}" class="status-${esc(s.status)}"><title>${esc(s.title)}</title></rect>
        <text x="${x(s.begin) + w + 4}" y="${y + rowH / 2 + 4}" class="caption">${esc(s.caption)}</text></g>`;
    }).join("");
    return label + drawn;
  }).join("");
  return `<svg class="timeline" id="${id}" width="${width}" height="${height}">${ticks}${bars}</svg>`;
}

// A message's trace (GET /api/traces/{id}): the Gantt chart, then the send, the
// transaction's ends and each group's consumptions as tables.
function traceView(t) {
  const g = t.graph;
  const p = g.producer;
  const rows = [];
  if (p) {
    rows.push({ label: `send: ${p.group}`, spans: [{ begin: p.begin, end: p.end, caption: fmtSpan(p.cost_ms), status: p.status,
      title: `${p.status}, ${fmtSpan(p.cost_ms)}\n${fmtTime(p.begin)} → ${fmtTime(p.end)}\nclient ${p.client_host}, broker ${p.store_host}` }] });
  }
  if (g.transactions.length) {
    rows.push({ label: "transaction end", spans: g.transactions.map((x) => ({ begin: x.timestamp, end: x.timestamp + 1, caption: x.state + (x.from_check ? " (check-back)" : ""),
      status: x.state, title: `${x.state} at ${fmtTime(x.timestamp)}${x.from_check ? ", answering the broker's check" : ""}` })) });
  }
  for (const c of g.consumers) {
    rows.push({ label: `consume: ${c.group}`, spans: c.consumptions.map((n) => ({ begin: n.begin, end: n.end, caption: n.cost_ms >= 0 ? fmtSpan(n.cost_ms) : n.status,
      status: n.status, title: `${n.status}, retry ${n.retry_times}\n${fmtTime(n.begin)} → ${fmtTime(n.end)}\nclient ${n.client_host}` })) });
  }
  const send = p ? table(["Topic", "Producer group", "Tags", "Keys", "Sent", "Cost", "Type", "Client", "Broker", "Offset id", "Status"],
    [[esc(p.topic), esc(p.group), esc(p.tags), esc(p.keys), fmtTime(p.begin), fmtSpan(p.cost_ms), esc(p.msg_type), esc(p.client_host), esc(p.store_host), esc(p.offset_msg_id), esc(p.status)]], "trace-send")
    : `<p class="muted" id="trace-send">no send record (the producer's tracing was off)</p>`;
  const txs = g.transactions.length ? `<h3>Transaction</h3>` + table(["Time", "State", "From check-back", "Client", "Broker"],
    g.transactions.map((x) => [fmtTime(x.timestamp), esc(x.state), x.from_check ? "yes" : "no", esc(x.client_host), esc(x.store_host)]), "trace-transactions") : "";
  const consumers = g.consumers.map((c) => `<h4>${esc(c.group)}</h4>` + table(["Began", "Ended", "Cost", "Status", "Retry", "Client"],
    c.consumptions.map((n) => [fmtTime(n.begin), fmtTime(n.end), n.cost_ms >= 0 ? fmtSpan(n.cost_ms) : "—", esc(n.status), n.retry_times >= 0 ? n.retry_times : "—", esc(n.client_host)]))).join("");
  return `<h3>Message trace: <span id="trace-id">${esc(t.msgId)}</span> <span class="muted">on ${esc(t.traceTopic)}</span></h3>
    ${timeline(rows, "trace-graph")}
    <h3>Send</h3>${send}${txs}
    <h3>Consumption</h3><div id="trace-consumers">${consumers || `<p class="muted">no consumer wrote a trace yet</p>`}</div>`;
}

// A message's life (GET /api/life): the timeline, then where it is stored, what it waited
// for, and per consumer group each copy's pulls, commit, retries and dead letter.
function lifeView(l, i = 0) {
  const n = i ? `-${i}` : "";
  const stored = l.stored[0];
  const rows = [];
  for (const w of l.waiting) {
    const what = w.kind === "delay" ? `delay level ${w.delayLevel}` : w.kind === "timer" ? "timer" : "transaction";
    const end = w.fired && stored ? stored.storeTimestamp : Date.now();
    rows.push({ label: `waiting: ${what}`, spans: [{ begin: w.storeTimestamp, end, caption: w.fired ? (w.kind === "transaction" ? "committed" : "delivered") : "waiting",
      status: "waiting", title: `${what} in ${w.topic}, since ${fmtTime(w.storeTimestamp)}` }] });
  }
  for (const s of l.stored) {
    rows.push({ label: "stored", spans: [{ begin: s.storeTimestamp, end: s.storeTimestamp + 1, caption: `queue ${s.queueId} offset ${s.queueOffset}`, status: "stored",
      title: `${s.topic} queue ${s.queueId} offset ${s.queueOffset} at ${fmtTime(s.storeTimestamp)}` }] });
  }
  const who = (r) => (r.clientId ? `${r.clientId} (${r.client})` : r.client);
  for (const g of l.groups) {
    const spans = [];
    for (const c of g.copies) {
      if (c.kind !== "original") {
        spans.push({ begin: c.storeTimestamp, end: c.storeTimestamp + 1, caption: c.kind === "dlq" ? "dead letter" : `retry ${c.reconsumeTimes}`,
          status: c.kind === "dlq" ? "failed" : "unknown", title: `${c.topic} offset ${c.queueOffset} at ${fmtTime(c.storeTimestamp)}` });
      }
      for (const r of c.reads) spans.push({ begin: r.atMs, end: r.atMs + 1, caption: "pulled", status: "read", title: `pulled by ${who(r)} at ${fmtTime(r.atMs)}` });
      if (c.committedBy) spans.push({ begin: c.committedBy.atMs, end: c.committedBy.atMs + 1, caption: "committed", status: "success",
        title: `offset ${c.committedBy.offset} committed by ${who(c.committedBy)} at ${fmtTime(c.committedBy.atMs)}` });
    }
    rows.push({ label: `group: ${g.group}`, spans });
  }
  const storedTable = table(["Broker", "Topic", "Queue", "Offset", "Stored", "Offset id", "From"],
    l.stored.map((s) => [esc(l.broker), esc(s.topic), s.queueId, s.queueOffset, fmtTime(s.storeTimestamp), esc(s.offsetMsgId), esc(s.bornHost)]), `life-stored${n}`);
  const waiting = l.waiting.length ? `<h3>Waited</h3>` + table(["Kind", "Topic", "Since", "Level / due", "State"],
    l.waiting.map((w) => [esc(w.kind), esc(w.topic), fmtTime(w.storeTimestamp), w.kind === "timer" ? fmtTime(w.deliverAt) : esc(w.delayLevel ?? ""),
      w.fired ? (w.kind === "transaction" ? "committed" : "delivered") : "waiting"]), "life-waiting") : "";
  const state = (c) => c.kind === "dlq" ? "dead-lettered" : c.consumed ? "consumed" : c.inflight ? `handed out, invisible until ${fmtTime(c.inflight.visibleAt)}` : "not consumed yet";
  const groups = l.groups.map((g) => `<h4>${esc(g.group)}</h4>` + table(["Copy", "Where", "Stored", "State", "Pulled", "Committed by"],
    g.copies.map((c) => [c.kind === "original" ? "message" : c.kind === "dlq" ? "dead letter" : `retry ${c.reconsumeTimes}`, esc(`${c.topic} queue ${c.queueId} offset ${c.queueOffset}`),
      fmtTime(c.storeTimestamp), esc(state(c)), c.reads.map((r) => `${esc(who(r))} at ${fmtTime(r.atMs)}`).join("<br>") || "—",
      c.committedBy ? `${esc(who(c.committedBy))} at ${fmtTime(c.committedBy.atMs)}` : c.consumed ? "before the broker's records" : "—"]),
    undefined) + (g.retryWaiting.length ? `<p class="muted">sent back, waiting for its retry since ${fmtTime(g.retryWaiting[0].storeTimestamp)}</p>` : "")).join("");
  return `<section class="life" data-msg-id="${esc(l.msgId)}"><h3>Message <span class="life-id">${esc(l.msgId)}</span> <span class="muted">on ${esc(l.broker)} (${esc(l.brokerAddr)})</span></h3>
    ${timeline(rows, `life-graph${n}`)}
    <h3>Stored</h3>${storedTable}${waiting}
    <h3>Consumer groups</h3><div class="life-groups">${groups || `<p class="muted">no consumer group has read this topic here since the broker started</p>`}</div>
    <p class="muted">${l.recording ? `Pulls and commits remembered since ${fmtTime(l.since)}.` : "Pulls and commits are not recorded (enableMessageLife=false)."}</p></section>`;
}

const pages = {
  async cluster() {
    const c = await api("/cluster");
    const rows = c.brokers.map((b) => [esc(b.cluster), esc(b.brokerName), b.brokerId, esc(b.addr), esc(b.role), esc(b.version), b.putTps, b.getTps,
      fmtNum(Number(b.msgPutTotal)), esc(b.commitLogMinOffset), esc(b.commitLogMaxOffset), fmtNum(b.dataBytes), esc(b.runtime)]);
    const replication = c.brokers.filter((b) => b.replication).flatMap((b) => {
      const r = b.replication;
      const who = `${esc(b.brokerName)} ${b.brokerId}`;
      if (r.role === "slave") {
        return [[who, esc(b.addr), "slave", fmtNum(r.logEnd), esc(r.master), fmtNum(r.masterLogEnd), fmtNum(r.behindBytes), r.connected ? "connected" : "not connected"]];
      }
      const set = Array.isArray(r.syncStateSet) ? ` (in-sync set ${esc(r.syncStateSet.join(", "))}, epoch ${esc(r.masterEpoch)})` : "";
      if (!r.slaves.length) return [[who, esc(b.addr), "master" + set, fmtNum(r.logEnd), "no slave", "", "", ""]];
      return r.slaves.map((sl) => [who, esc(b.addr), "master" + set, fmtNum(r.logEnd),
        esc(sl.addr) + (sl.brokerId == null ? "" : ` (id ${esc(sl.brokerId)})`), fmtNum(sl.ackOffset), fmtNum(sl.behindBytes), sl.inSync ? "in sync" : "behind"]);
    });
    const charts = Object.entries(c.series || {}).map(([name, pts]) => `<h3>${esc(name)}: messages per second</h3>${chart(pts)}`).join("");
    return `<h2>Cluster</h2>
      <div class="cards"><div class="card"><div class="v" id="broker-count">${c.brokers.length}</div><div class="k">brokers</div></div>
      <div class="card"><div class="v">${esc(c.nameServers.join(", "))}</div><div class="k">name servers</div></div></div>
      ${table(["Cluster", "Broker", "ID", "Address", "Role", "Version", "Put TPS", "Get TPS", "Messages put", "Commit log min", "Commit log max", "Data bytes", "Uptime"], rows, "brokers")}
      <h3>Replication</h3>
      ${table(["Broker", "Address", "Role", "Log end", "Peer", "Peer's log end", "Behind (bytes)", "State"], replication, "replication")}
      ${charts}`;
  },

  async topics(params) {
    const search = params.get("search") || "";
    const kind = params.get("kind") || "all";
    const list = await api(`/topics?search=${encodeURIComponent(search)}&kind=${encodeURIComponent(kind)}`);
    const rows = list.map((t) => [`<a class="link" href="#/topic?name=${encodeURIComponent(t.topic)}">${esc(t.topic)}</a>`, esc(t.kind)]);
    return `<h2>Topics</h2>
      <form id="topic-filter"><input name="search" placeholder="search" value="${esc(search)}">
        <select name="kind">${["all", "normal", "retry", "dlq", "system"].map((k) => `<option${k === kind ? " selected" : ""}>${k}</option>`).join("")}</select>
        <button>Filter</button></form>
      <form id="create-topic"><input name="topic" placeholder="new topic" required><input name="queues" type="number" value="4" min="1" max="1024">
        <select name="perm"><option value="6">read+write</option><option value="4">read only</option><option value="2">write only</option></select>
        <button>Create / update</button></form>
      ${table(["Topic", "Kind"], rows, "topic-list")}`;
  },

  async topic(params) {
    const name = params.get("name");
    const t = await api(`/topics/${encodeURIComponent(name)}`);
    const route = t.route.brokerDatas.map((b) => [esc(b.brokerName), esc(b.cluster), esc(JSON.stringify(b.brokerAddrs))]);
    const queues = t.queues.map((q) => [esc(q.brokerName), q.queueId, q.minOffset, q.maxOffset, fmtTime(q.lastUpdateTimestamp)]);
    const groups = t.groups.map((g) => [`<a class="link" href="#/group?name=${encodeURIComponent(g.group)}">${esc(g.group)}</a>`, g.lag]);
    return `<h2>Topic <span id="topic-name">${esc(name)}</span> <span class="muted">(${esc(t.kind)})</span></h2>
      <h3>Route</h3>${table(["Broker", "Cluster", "Addresses"], route)}
      <h3>Queues</h3>${table(["Broker", "Queue", "Min offset", "Max offset", "Last update"], queues, "queue-offsets")}
      <h3>Consumer groups</h3>${table(["Group", "Lag"], groups, "topic-groups")}
      <h3>Send a test message</h3>
      <form id="send-message" data-topic="${esc(name)}"><input name="body" placeholder="body" required><input name="tag" placeholder="tag"><input name="keys" placeholder="keys"><button>Send</button></form>
      <div id="send-result" class="muted"></div>
      <form id="delete-topic" data-topic="${esc(name)}"><button class="plain">Delete topic</button></form>`;
  },

  async groups() {
    const list = await api("/groups");
    const rows = list.map((g) => [`<a class="link" href="#/group?name=${encodeURIComponent(g.group)}">${esc(g.group)}</a>`, g.consumers, g.lag, g.consumeTps]);
    return `<h2>Consumer groups</h2>${table(["Group", "Consumers", "Lag", "Consume TPS"], rows, "group-list")}`;
  },

  async group(params) {
    const name = params.get("name");
    const g = await api(`/groups/${encodeURIComponent(name)}`);
    const conns = (g.connections.connectionSet || []).map((c) => [esc(c.clientId), esc(c.clientAddr), esc(c.language), c.version]);
    const subs = Object.values(g.connections.subscriptionTable || {}).map((s) => [esc(s.topic), esc(s.expressionType), esc(s.subString)]);
    const progress = g.progress.map((p) => [esc(p.topic), esc(p.brokerName), p.queueId, p.brokerOffset, p.consumerOffset, p.lag, fmtTime(p.lastTimestamp)]);
    const topics = [...new Set(g.progress.map((p) => p.topic))];
    return `<h2>Consumer group <span id="group-name">${esc(name)}</span></h2>
      <div class="cards"><div class="card"><div class="v" id="group-lag">${g.progress.reduce((a, p) => a + p.lag, 0)}</div><div class="k">total lag</div></div></div>
      <h3>Clients</h3>${table(["Client", "Address", "Language", "Version"], conns, "group-clients")}
      <h3>Subscriptions</h3>${table(["Topic", "Type", "Expression"], subs)}
      <h3>Progress</h3>${table(["Topic", "Broker", "Queue", "Broker offset", "Consumer offset", "Lag", "Last consumed"], progress, "group-progress")}
      <h3>Reset offsets to a time</h3>
      <form id="reset-offset" data-group="${esc(name)}"><select name="topic">${topics.map((t) => `<option>${esc(t)}</option>`).join("")}</select>
        <input name="time" type="datetime-local" step="1"><input name="timestamp" placeholder="or ms since epoch"><button>Reset</button></form>
      <div id="reset-result" class="muted"></div>
      <form id="redeliver-dlq" data-group="${esc(name)}"><button class="plain">Re-deliver dead letters</button></form>
      <form id="delete-group" data-group="${esc(name)}"><button class="plain">Delete group</button></form>`;
  },

  async messages(params) {
    const topic = params.get("topic") || "";
    const key = params.get("key") || "";
    const id = params.get("id") || "";
    let results = "";
    if (id) {
      results = messageDetail(await api(`/messages/by-id/${encodeURIComponent(id)}${topic ? `?topic=${encodeURIComponent(topic)}` : ""}`));
    } else if (topic && key) {
      results = messageTable(await api(`/messages/by-key?topic=${encodeURIComponent(topic)}&key=${encodeURIComponent(key)}`));
    } else if (topic) {
      const page = Number(params.get("page") || 0);
      const begin = params.get("begin") || "";
      const end = params.get("end") || "";
      const r = await api(`/messages?topic=${encodeURIComponent(topic)}&page=${page}&size=20${begin ? `&begin=${begin}` : ""}${end ? `&end=${end}` : ""}`);
      results = messageTable(r.items) + `<div><a class="link" href="#/messages?topic=${encodeURIComponent(topic)}&page=${page + 1}&begin=${begin}&end=${end}">next page</a></div>`;
    }
    return `<h2>Messages</h2>
      <form id="query-time"><input name="topic" placeholder="topic" value="${esc(topic)}" required><input name="begin" placeholder="from (ms)"><input name="end" placeholder="to (ms)"><button>By topic and time</button></form>
      <form id="query-key"><input name="topic" placeholder="topic" value="${esc(topic)}" required><input name="key" placeholder="key" required><button>By key</button></form>
      <form id="query-id"><input name="topic" placeholder="topic (for unique ids)" value="${esc(topic)}"><input name="msgId" placeholder="message id" required><button>By id</button></form>
      <div id="message-results">${results}</div>`;
  },

  async delayed() {
    const [delayed, txs] = await Promise.all([api("/delayed"), api("/transactions")]);
    const levels = delayed.flatMap((b) => Object.entries(b.levels).map(([l, n]) => [esc(b.broker), `level ${esc(l)}`, Number(n)]));
    const timers = delayed.flatMap((b) => Object.entries(b.timers).map(([k, n]) => [esc(b.broker), esc(k), Number(n)]));
    const undecided = txs.flatMap((b) => (b.transactions || []).map((t) => [esc(b.broker), esc(t.transactionId), esc(t.producerGroup), esc(t.topic), Math.round(t.ageMs / 1000), t.checkTimes]));
    return `<h2>Delayed and transactional messages</h2>
      <h3>Delay levels</h3>${table(["Broker", "Level", "Pending"], levels, "delay-levels")}
      <h3>Timers</h3>${table(["Broker", "Window", "Pending"], timers, "timers")}
      <h3>Undecided transactions</h3>${table(["Broker", "Transaction", "Producer group", "Topic", "Age (s)", "Checks"], undecided, "transactions")}`;
  },

  async life(params) {
    const topic = params.get("topic") || "";
    const id = params.get("id") || "";
    const key = params.get("key") || "";
    let results = "";
    if (topic && (id || key)) {
      try {
        const lives = await api(`/life?topic=${encodeURIComponent(topic)}&id=${encodeURIComponent(id)}&key=${encodeURIComponent(key)}`);
        results = lives.map((l, i) => lifeView(l, i)).join("");
      } catch (e) {
        results = `<p class="muted" id="life-missing">${esc(e.message)}</p>`;
      }
    }
    return `<h2>Message life</h2>
      <p class="muted">Where a message is and what happened to it, from the brokers' own records: no client tracing needed.</p>
      <form id="query-life"><input name="topic" placeholder="topic" value="${esc(topic)}" required><input name="id" placeholder="message id" value="${esc(id)}" size="36"><input name="key" placeholder="or key" value="${esc(key)}"><button>Show life</button></form>
      <div id="life-results">${results}</div>`;
  },

  async trace(params) {
    const msgId = params.get("msgId") || "";
    const traceTopic = params.get("traceTopic") || "RMQ_SYS_TRACE_TOPIC";
    let results = "";
    if (msgId) {
      try {
        results = traceView(await api(`/traces/${encodeURIComponent(msgId)}?traceTopic=${encodeURIComponent(traceTopic)}`));
      } catch (e) {
        results = `<p class="muted" id="trace-missing">${esc(e.message)}</p>`;
      }
    }
    return `<h2>Message traces</h2>
      <p class="muted">What producers and consumers with tracing on (Java <code>enableMsgTrace</code>, Go <code>WithTrace</code>) wrote about a message.</p>
      <form id="query-trace"><input name="msgId" placeholder="message id (unique id)" value="${esc(msgId)}" required size="40"><input name="traceTopic" value="${esc(traceTopic)}" size="24"><button>Show trace</button></form>
      <div id="trace-results">${results}</div>`;
  },

  async access() {
    const brokers = await api("/access");
    const rowForm = (form, data, label) => `<form class="inline" data-form="${form}" ${Object.entries(data).map(([k, v]) => `data-${k}="${esc(v)}"`).join(" ")}><button class="plain">${label}</button></form>`;
    const users = brokers.flatMap((b) => b.users.map((u) => [esc(b.broker), esc(u.username), esc(u.userType), esc(u.userStatus),
      rowForm("toggle-user", { user: u.username, status: u.userStatus === "disable" ? "enable" : "disable" }, u.userStatus === "disable" ? "Enable" : "Disable")
        + rowForm("delete-user", { user: u.username }, "Delete")]));
    const entries = brokers.flatMap((b) => (b.acls || []).flatMap((a) => (a.policies || []).flatMap((p) => (p.entries || []).map((e) => [esc(b.broker), esc(a.subject),
      esc(p.policyType), esc(e.resource), esc((e.actions || []).join(", ")), esc((e.sourceIps || []).join(", ")) || "anywhere", esc(e.decision),
      p.policyType === "Custom" ? rowForm("remove-entry", { subject: a.subject, resource: e.resource }, "Remove") : ""]))));
    return `<h2>Access</h2>
      <p class="muted">ACL 2.0 users and their policies on each broker. Requests are checked when the brokers run with <code>authenticationEnabled</code> / <code>authorizationEnabled</code>; the most specific matching entry decides, a deny before an allow.</p>
      <h3>Users</h3>${table(["Broker", "User", "Type", "Status", ""], users, "user-list")}
      <form id="create-user"><input name="username" placeholder="user name" required><input name="password" type="password" placeholder="password" required>
        <select name="userType"><option>Normal</option><option>Super</option></select><button>Create user</button></form>
      <h3>Policies</h3>${table(["Broker", "Subject", "Policy", "Resource", "Actions", "From", "Decision", ""], entries, "acl-list")}
      <form id="grant"><input name="subject" placeholder="User:alice" required size="14"><input name="resources" placeholder="Topic:orders,Group:billing" required size="28">
        <input name="actions" placeholder="Pub,Sub" required size="12"><input name="sourceIps" placeholder="from (IPs or CIDR, optional)" size="24">
        <select name="decision"><option>Allow</option><option>Deny</option></select><button>Add policy</button></form>`;
  },

  async producers() {
    const list = await api("/producers");
    const rows = list.flatMap((g) => g.connections.map((c) => [esc(g.group), esc(c.clientId), esc(c.clientAddr), esc(c.language), c.version]));
    return `<h2>Producers</h2>${table(["Group", "Client", "Address", "Language", "Version"], rows, "producer-list")}`;
  },
};

function messageTable(items) {
  const rows = items.map((m) => [`<a class="link" href="#/messages?id=${encodeURIComponent(m.offsetMsgId)}">${esc(m.msgId)}</a>`, esc(m.topic), m.queueId, m.queueOffset, esc(m.tags), esc(m.keys.join(" ")), esc(m.bodyText.slice(0, 80)), fmtTime(m.storeTimestamp)]);
  return table(["Message id", "Topic", "Queue", "Offset", "Tags", "Keys", "Body", "Stored"], rows, "message-list");
}

function messageDetail(m) {
  let pretty = m.bodyText;
  try { pretty = JSON.stringify(JSON.parse(m.bodyText), null, 2); } catch (_) { /* not JSON */ }
  const props = Object.entries(m.properties).map(([k, v]) => [esc(k), esc(v)]);
  const groups = (m.groups || []).map((g) => [esc(g.group), g.consumed ? "consumed" : "pending"]);
  return `<h3>Message <span id="detail-id">${esc(m.msgId)}</span></h3>
    ${table(["Field", "Value"], [["Topic", esc(m.topic)], ["Queue / offset", `${m.queueId} / ${m.queueOffset}`], ["Offset id", esc(m.offsetMsgId)],
      ["Stored", `${fmtTime(m.storeTimestamp)} at ${esc(m.storeHost)}`], ["Born", `${fmtTime(m.bornTimestamp)} at ${esc(m.bornHost)}`], ["Reconsumed", m.reconsumeTimes]], "message-detail")}
    <h3>Body (${m.bodySize} bytes)</h3><pre id="detail-body">${esc(pretty)}</pre><details><summary>hex</summary><pre>${esc(m.bodyHex)}</pre></details>
    <h3>Properties</h3>${table(["Name", "Value"], props)}
    <h3>Consumer groups</h3>${table(["Group", "State"], groups, "detail-groups")}
    <p><a class="link" id="detail-life" href="#/life?topic=${encodeURIComponent(m.topic)}&id=${encodeURIComponent(m.msgId)}">Life of this message</a> ·
      <a class="link" id="detail-trace" href="#/trace?msgId=${encodeURIComponent(m.msgId)}">Client trace of this message</a></p>
    <form id="resend" data-id="${esc(m.offsetMsgId)}" data-topic="${esc(m.topic)}"><input name="group" placeholder="consumer group" required><button>Resend to group</button></form>`;
}

async function render() {
  const [path, query] = (location.hash.slice(2) || "cluster").split("?");
  const params = new URLSearchParams(query || "");
  const page = pages[path] || pages.cluster;
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", path.startsWith(a.dataset.page.slice(0, 5))));
  try {
    $("#page").innerHTML = await page(params);
    $("#refreshed").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("#page").innerHTML = `<p class="muted">Could not load this page: ${esc(e.message)}</p>`;
  }
}

// Form actions, delegated so they survive re-renders.
document.addEventListener("submit", async (ev) => {
  const form = ev.target;
  ev.preventDefault();
  const f = Object.fromEntries(new FormData(form));
  // getAttribute: a field named "id" would shadow form.id.
  try {
    const list = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);
    switch (form.getAttribute("id") || form.dataset.form) {
      case "topic-filter": location.hash = `#/topics?search=${encodeURIComponent(f.search)}&kind=${f.kind}`; break;
      case "create-topic": await api("/topics", { method: "POST", body: { topic: f.topic, queues: Number(f.queues), perm: Number(f.perm) } }); await render(); break;
      case "send-message": {
        const r = await api(`/topics/${encodeURIComponent(form.dataset.topic)}/messages`, { method: "POST", body: f });
        $("#send-result").textContent = `sent: ${r.msgId} (queue ${r.queueId}, offset ${r.queueOffset})`;
        break;
      }
      case "delete-topic": await api(`/topics/${encodeURIComponent(form.dataset.topic)}`, { method: "DELETE" }); location.hash = "#/topics"; break;
      case "reset-offset": {
        const ts = f.timestamp ? Number(f.timestamp) : Date.parse(f.time + "Z");
        await api(`/groups/${encodeURIComponent(form.dataset.group)}/reset`, { method: "POST", body: { topic: f.topic, timestamp: ts } });
        $("#reset-result").textContent = `offsets of ${f.topic} reset to ${fmtTime(ts)}`;
        break;
      }
      case "redeliver-dlq": { const r = await api(`/dlq/${encodeURIComponent(form.dataset.group)}/redeliver`, { method: "POST" }); alert(`${r.redelivered} dead letters re-delivered`); break; }
      case "delete-group": await api(`/groups/${encodeURIComponent(form.dataset.group)}`, { method: "DELETE" }); location.hash = "#/groups"; break;
      case "query-time": location.hash = `#/messages?topic=${encodeURIComponent(f.topic)}&begin=${f.begin}&end=${f.end}`; break;
      case "query-key": location.hash = `#/messages?topic=${encodeURIComponent(f.topic)}&key=${encodeURIComponent(f.key)}`; break;
      case "query-life": location.hash = `#/life?topic=${encodeURIComponent(f.topic)}&id=${encodeURIComponent(f.id)}&key=${encodeURIComponent(f.key)}`; break;
      case "query-trace": location.hash = `#/trace?msgId=${encodeURIComponent(f.msgId)}&traceTopic=${encodeURIComponent(f.traceTopic)}`; break;
      case "query-id": location.hash = `#/messages?id=${encodeURIComponent(f.msgId)}&topic=${encodeURIComponent(f.topic)}`; break;
      case "create-user": await api("/access/users", { method: "POST", body: { username: f.username, password: f.password, userType: f.userType } }); await render(); break;
      case "toggle-user": await api(`/access/users/${encodeURIComponent(form.dataset.user)}`, { method: "POST", body: { userStatus: form.dataset.status } }); await render(); break;
      case "delete-user": await api(`/access/users/${encodeURIComponent(form.dataset.user)}`, { method: "DELETE" }); await render(); break;
      case "grant": await api("/access/acls", { method: "POST", body: { subject: f.subject, resources: list(f.resources), actions: list(f.actions), sourceIps: list(f.sourceIps), decision: f.decision } }); await render(); break;
      case "remove-entry": await api(`/access/acls?subject=${encodeURIComponent(form.dataset.subject)}&resource=${encodeURIComponent(form.dataset.resource)}`, { method: "DELETE" }); await render(); break;
      case "resend": await api("/messages/resend", { method: "POST", body: { id: form.dataset.id, topic: form.dataset.topic, group: f.group } }); alert("resent"); break;
    }
  } catch (e) {
    showError(e);
  }
});

window.addEventListener("hashchange", render);
render();
// Live figures: refresh the overview pages by themselves.
setInterval(() => {
  const path = location.hash.slice(2).split("?")[0] || "cluster";
  if (["cluster", "groups", "delayed", "producers"].includes(path) && !document.activeElement?.closest("form")) render();
}, 5000);
