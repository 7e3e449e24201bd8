//! Prometheus metrics, with the series names, labels, units and histogram buckets Apache
//! RocketMQ 5's broker exports (`rocketmq_*`, so its Grafana dashboards and alerts work),
//! and FerroMQ's own (`ferromq_*`): group-commit size, fsync latency, pending timers,
//! replication lag.
//!
//! This module owns the families that request paths add to (messages and bytes in and
//! out, message size, RPC latency, dead letters, transaction outcomes, flushes), the
//! collector that reads everything else from the broker at scrape time (storage, lag,
//! connections, counts: nothing is kept for them between scrapes), and the bound on label
//! sets per family ([`capped`]). Rendering is [`BrokerMetrics::render`]; serving it over
//! HTTP is the binary's business (the dashboard's `/metrics`, `metricsExporterType=PROM`).
//!
//! Where FerroMQ differs from Apache, on purpose:
//! - `topic` on `rocketmq_messages_in_total` is the topic the producer named, with
//!   `message_type` saying delay or transaction; Apache's is the internal topic the
//!   message was parked on (`SCHEDULE_TOPIC_XXXX`, `RMQ_SYS_TRANS_HALF_TOPIC`).
//! - `# TYPE`/`# HELP` lines name the series they describe (Apache's OpenTelemetry 1.29
//!   exporter leaves the unit off them) and samples carry no timestamps.

mod capped;
mod scrape;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock, Weak};

use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use capped::Capped;
pub use capped::Labels;

use crate::config::BrokerConfig;
use crate::Broker;

/// Apache's views: message size in bytes.
fn message_size_histogram() -> Histogram {
    Histogram::new([1024.0, 4096.0, 524288.0, 1048576.0, 2097152.0, 4194304.0])
}

/// Apache's views: RPC latency in milliseconds.
fn rpc_latency_histogram() -> Histogram {
    Histogram::new([1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0, 2000.0, 3000.0])
}

fn counter() -> Counter {
    Counter::default()
}

/// Topics Apache's `TopicValidator.isSystemTopic` names, besides the `rmq_sys_` ones.
const SYSTEM_TOPICS: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TBW102",
    "BenchmarkTest",
    "RMQ_SYS_TRACE_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "CHECKPOINT_TOPIC",
];

pub(crate) fn is_system_topic(topic: &str) -> bool {
    topic.starts_with("rmq_sys_") || SYSTEM_TOPICS.contains(&topic)
}

pub(crate) fn is_system_group(group: &str) -> bool {
    group.starts_with("CID_RMQ_SYS_")
}

fn bool_label(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// Topics whose traffic is the broker's own bookkeeping: Apache leaves them out of the
/// in and out counts.
fn is_internal_copy(topic: &str) -> bool {
    topic.starts_with(crate::topic::RETRY_GROUP_TOPIC_PREFIX)
        || topic.starts_with(crate::topic::DLQ_GROUP_TOPIC_PREFIX)
}

tokio::task_local! {
    /// Set by a request that waited for messages (long polling), for `is_long_polling`.
    static PARKED: std::cell::Cell<bool>;
}

/// Runs one request, returning what it answered and whether it was parked.
pub(crate) async fn tracking_parks<F: std::future::Future>(request: F) -> (F::Output, bool) {
    PARKED
        .scope(std::cell::Cell::new(false), async {
            let out = request.await;
            (out, PARKED.with(std::cell::Cell::get))
        })
        .await
}

/// Notes that the request being handled waits for messages to arrive.
pub(crate) fn note_parked() {
    let _ = PARKED.try_with(|p| p.set(true));
}

/// The series one stored send adds to.
struct InHandles {
    messages: Counter,
    bytes: Counter,
    size: Histogram,
}

/// The series one read adds to.
struct OutHandles {
    messages: Counter,
    bytes: Counter,
}

/// Protocol, method, status and long polling of a call through another front.
type FrontRpcKey = (&'static str, &'static str, &'static str, bool);

/// The series kept under `key`, made by `make` (and kept, while the cache holds fewer than
/// `limit`) the first time.
fn cached<K: std::hash::Hash + Eq, M: Clone>(
    cache: &RwLock<HashMap<K, M>>,
    key: K,
    limit: usize,
    make: impl FnOnce() -> M,
) -> M {
    if let Some(m) = cache.read().expect("metric handles lock").get(&key) {
        return m.clone();
    }
    let m = make();
    let mut cache = cache.write().expect("metric handles lock");
    if cache.len() < limit {
        cache.insert(key, m.clone());
    }
    m
}

/// A group's read series on a topic: by pull, by POP, by POP retry.
type OutSlots = [Option<OutHandles>; 3];

/// Everything the broker measures; see the module documentation.
pub struct BrokerMetrics {
    registry: Mutex<Registry>,
    messages_in: Capped<Counter>,
    throughput_in: Capped<Counter>,
    message_size: Capped<Histogram>,
    messages_out: Capped<Counter>,
    throughput_out: Capped<Counter>,
    rpc_latency: Capped<Histogram>,
    send_to_dlq: Capped<Counter>,
    commits: Capped<Counter>,
    rollbacks: Capped<Counter>,
    /// Handles of the series the request paths add to, by a key that needs no allocation
    /// to look up: a request then costs a read lock and a hash of its names, not a label
    /// vector built and hashed per family.
    in_handles: RwLock<HashMap<String, HashMap<&'static str, InHandles>>>,
    out_handles: RwLock<HashMap<String, HashMap<String, OutSlots>>>,
    rpc_handles: RwLock<HashMap<(i32, i32, bool), Histogram>>,
    front_rpc_handles: RwLock<HashMap<FrontRpcKey, Histogram>>,
    /// Sends (append jobs) each fsync made durable under SYNC_FLUSH.
    pub(crate) group_commit: Histogram,
    /// How long each fsync of the commit log took, in milliseconds.
    pub(crate) fsync_latency: Histogram,
    requests_on: bool,
    remoting_on: bool,
}

impl BrokerMetrics {
    pub fn new(config: &BrokerConfig) -> Self {
        let mut labels: Vec<(
            std::borrow::Cow<'static, str>,
            std::borrow::Cow<'static, str>,
        )> = config
            .metrics_labels
            .iter()
            .map(|(k, v)| (k.clone().into(), v.clone().into()))
            .collect();
        labels.push(("cluster".into(), config.cluster_name.clone().into()));
        labels.push(("node_id".into(), config.broker_name.clone().into()));
        labels.push(("node_type".into(), "broker".into()));
        let mut registry = Registry::with_labels(labels.into_iter());
        let limit = config.metrics_cardinality_limit;
        let m = BrokerMetrics {
            messages_in: Capped::new("rocketmq_messages_in_total", counter, limit),
            throughput_in: Capped::new("rocketmq_throughput_in_total", counter, limit),
            message_size: Capped::new("rocketmq_message_size", message_size_histogram, limit),
            messages_out: Capped::new("rocketmq_messages_out_total", counter, limit),
            throughput_out: Capped::new("rocketmq_throughput_out_total", counter, limit),
            rpc_latency: Capped::new("rocketmq_rpc_latency", rpc_latency_histogram, limit),
            send_to_dlq: Capped::new("rocketmq_send_to_dlq_messages_total", counter, limit),
            commits: Capped::new("rocketmq_commit_messages_total", counter, limit),
            rollbacks: Capped::new("rocketmq_rollback_messages_total", counter, limit),
            group_commit: Histogram::new([
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
            fsync_latency: Histogram::new([
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0,
            ]),
            requests_on: config.enable_request_metrics,
            remoting_on: config.enable_remoting_metrics,
            in_handles: RwLock::default(),
            out_handles: RwLock::default(),
            rpc_handles: RwLock::default(),
            front_rpc_handles: RwLock::default(),
            registry: Mutex::new(Registry::default()),
        };
        // Counters are registered without `_total`: the encoder adds it to the samples.
        registry.register(
            "rocketmq_messages_in",
            "Messages stored, by topic",
            m.messages_in.family(),
        );
        registry.register(
            "rocketmq_throughput_in",
            "Bytes stored, by topic",
            m.throughput_in.family(),
        );
        registry.register(
            "rocketmq_message_size",
            "Size of stored messages in bytes",
            m.message_size.family(),
        );
        registry.register(
            "rocketmq_messages_out",
            "Messages read by consumer groups",
            m.messages_out.family(),
        );
        registry.register(
            "rocketmq_throughput_out",
            "Bytes read by consumer groups",
            m.throughput_out.family(),
        );
        registry.register_with_unit(
            "rocketmq_rpc_latency",
            "Rpc latency",
            Unit::Other("milliseconds".into()),
            m.rpc_latency.family(),
        );
        registry.register(
            "rocketmq_send_to_dlq_messages",
            "Messages moved to a dead-letter queue",
            m.send_to_dlq.family(),
        );
        registry.register(
            "rocketmq_commit_messages",
            "Transaction messages committed",
            m.commits.family(),
        );
        registry.register(
            "rocketmq_rollback_messages",
            "Transaction messages rolled back",
            m.rollbacks.family(),
        );
        registry.register(
            "ferromq_group_commit_sends",
            "Sends made durable by one fsync under SYNC_FLUSH (group commit)",
            m.group_commit.clone(),
        );
        registry.register_with_unit(
            "ferromq_fsync_latency",
            "Time one fsync of the commit log took",
            Unit::Other("milliseconds".into()),
            m.fsync_latency.clone(),
        );
        *m.registry.lock().expect("metrics registry lock") = registry;
        m
    }

    /// Adds the series read from the broker at each scrape.
    pub(crate) fn watch(&self, broker: Weak<Broker>) {
        self.registry
            .lock()
            .expect("metrics registry lock")
            .register_collector(Box::new(scrape::BrokerCollector::new(broker)));
    }

    /// The exposition: OpenMetrics when the scraper asked for it (Prometheus does), the
    /// Prometheus text format 0.0.4 otherwise.
    pub fn render(&self, openmetrics: bool) -> String {
        let registry = self.registry.lock().expect("metrics registry lock");
        let mut out = String::new();
        let written = if openmetrics {
            text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }

    /// A stored send: `messages` messages of `bytes` bytes in all.
    pub(crate) fn sent(&self, topic: &str, message_type: &'static str, messages: u64, bytes: u64) {
        if !self.requests_on || messages == 0 || is_internal_copy(topic) {
            return;
        }
        let record = |h: &InHandles| {
            h.messages.inc_by(messages);
            h.bytes.inc_by(bytes);
            // One observation per request, as Apache's.
            h.size.observe((bytes / messages) as f64);
        };
        if let Some(h) = self
            .in_handles
            .read()
            .expect("metric handles lock")
            .get(topic)
            .and_then(|types| types.get(message_type))
        {
            return record(h);
        }
        let labels: Labels = vec![
            ("topic", topic.to_string()),
            ("message_type", message_type.to_string()),
            ("is_system", bool_label(is_system_topic(topic))),
        ];
        let h = InHandles {
            messages: self.messages_in.handle(&labels),
            bytes: self.throughput_in.handle(&labels),
            size: self.message_size.handle(&labels),
        };
        record(&h);
        let mut cache = self.in_handles.write().expect("metric handles lock");
        if cache.len() < self.messages_in.limit() {
            cache
                .entry(topic.to_string())
                .or_default()
                .insert(message_type, h);
        }
    }

    /// Messages a group read: by pull (`is_retry` None) or by POP.
    pub(crate) fn read(
        &self,
        topic: &str,
        group: &str,
        is_retry: Option<bool>,
        messages: u64,
        bytes: u64,
    ) {
        if !self.requests_on || messages == 0 || (is_retry.is_none() && is_internal_copy(topic)) {
            return;
        }
        let record = |h: &OutHandles| {
            h.messages.inc_by(messages);
            h.bytes.inc_by(bytes);
        };
        let slot = match is_retry {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        };
        if let Some(h) = self
            .out_handles
            .read()
            .expect("metric handles lock")
            .get(topic)
            .and_then(|groups| groups.get(group))
            .and_then(|slots| slots[slot].as_ref())
        {
            return record(h);
        }
        let mut labels: Labels = vec![
            ("topic", topic.to_string()),
            ("consumer_group", group.to_string()),
            (
                "is_system",
                bool_label(is_system_topic(topic) || is_system_group(group)),
            ),
        ];
        if let Some(r) = is_retry {
            labels.push(("is_retry", bool_label(r)));
        }
        let h = OutHandles {
            messages: self.messages_out.handle(&labels),
            bytes: self.throughput_out.handle(&labels),
        };
        record(&h);
        let mut cache = self.out_handles.write().expect("metric handles lock");
        if cache.len() < self.messages_out.limit() {
            cache
                .entry(topic.to_string())
                .or_default()
                .entry(group.to_string())
                .or_default()[slot] = Some(h);
        }
    }

    /// One answered remoting request.
    pub(crate) fn rpc(
        &self,
        request_code: i32,
        response_code: Option<i32>,
        long_polling: bool,
        millis: f64,
    ) {
        if !self.remoting_on {
            return;
        }
        // Oneway requests have no answer: i32::MIN stands for it in the key.
        let key = (
            request_code,
            response_code.unwrap_or(i32::MIN),
            long_polling,
        );
        let h = cached(&self.rpc_handles, key, self.rpc_latency.limit(), || {
            use ferromq_protocol::code::{request, response};
            let request = request::name_or_number(request_code).to_ascii_lowercase();
            let (response, result) = match response_code {
                Some(code) => (
                    response::name_or_number(code).to_ascii_lowercase(),
                    "success",
                ),
                None => (String::new(), "oneway"),
            };
            let mut labels: Labels = vec![
                ("protocol_type", "remoting".to_string()),
                ("request_code", request),
                ("is_long_polling", bool_label(long_polling)),
                ("result", result.to_string()),
            ];
            if response_code.is_some() {
                labels.push(("response_code", response));
            }
            self.rpc_latency.handle(&labels)
        });
        h.observe(millis);
    }

    /// One call through another front (`protocol`: `grpc`): `method` in snake case,
    /// `status` the transport's status name (`ok`, `unauthenticated`, `cancelled`, …);
    /// unary calls timed to their answer, streams to their end.
    pub fn front_rpc(
        &self,
        protocol: &'static str,
        method: &'static str,
        status: &'static str,
        long_polling: bool,
        millis: f64,
    ) {
        if !self.remoting_on {
            return;
        }
        let key = (protocol, method, status, long_polling);
        let h = cached(
            &self.front_rpc_handles,
            key,
            self.rpc_latency.limit(),
            || {
                let labels: Labels = vec![
                    ("protocol_type", protocol.to_string()),
                    ("request_code", method.to_string()),
                    ("is_long_polling", bool_label(long_polling)),
                    (
                        "result",
                        if status == "ok" { "success" } else { "failed" }.to_string(),
                    ),
                    ("response_code", status.to_string()),
                ];
                self.rpc_latency.handle(&labels)
            },
        );
        h.observe(millis);
    }

    /// A message moved to a group's dead-letter queue; `topic` is where it came from.
    pub(crate) fn dead_lettered(&self, group: &str, topic: &str) {
        let labels: Labels = vec![
            ("consumer_group", group.to_string()),
            ("topic", topic.to_string()),
            (
                "is_system",
                bool_label(is_system_topic(topic) || is_system_group(group)),
            ),
        ];
        self.send_to_dlq.with(&labels, |c| {
            c.inc();
        });
    }

    /// A transaction decided: committed or rolled back, for its real topic.
    pub(crate) fn transaction_decided(&self, topic: &str, committed: bool) {
        let labels: Labels = vec![("topic", topic.to_string())];
        let family = if committed {
            &self.commits
        } else {
            &self.rollbacks
        };
        family.with(&labels, |c| {
            c.inc();
        });
    }
}
