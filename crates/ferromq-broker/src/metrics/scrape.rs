//! The series read from the broker at each scrape: counts, connections, consumer lag,
//! storage, transactions, timers and replication. Nothing is kept for them between
//! scrapes, so they cost the request paths nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{bool_label, is_system_group, is_system_topic, Labels};
use crate::topic::RETRY_GROUP_TOPIC_PREFIX;
use crate::Broker;

pub(super) struct BrokerCollector {
    broker: Weak<Broker>,
}

impl BrokerCollector {
    pub(super) fn new(broker: Weak<Broker>) -> Self {
        BrokerCollector { broker }
    }
}

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerCollector")
    }
}

/// One gauge family: its series and their values.
struct Gauges {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    series: Vec<(Labels, f64)>,
}

impl Gauges {
    fn new(name: &'static str, help: &'static str) -> Self {
        Gauges {
            name,
            help,
            unit: None,
            series: Vec::new(),
        }
    }

    fn with_unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    fn one(mut self, value: f64) -> Self {
        self.series.push((Vec::new(), value));
        self
    }

    fn push(&mut self, labels: Labels, value: f64) {
        self.series.push((labels, value));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.series.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            self.name,
            self.help,
            self.unit.as_ref(),
            MetricType::Gauge,
        )?;
        for (labels, value) in &self.series {
            ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// Lag of one group on one topic, summed over its queues.
#[derive(Default)]
struct Lag {
    messages: i64,
    /// Store time of the oldest message not yet consumed, if any is waiting.
    oldest_unconsumed_ms: Option<i64>,
    /// Handed out (pulled, or popped), not yet committed or acknowledged.
    inflight: Option<i64>,
    /// Not handed out yet.
    ready: Option<i64>,
    /// Store time of the oldest message not handed out yet.
    oldest_unpulled_ms: Option<i64>,
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(broker) = self.broker.upgrade() else {
            return Ok(());
        };
        for family in gauges(&broker) {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// Undecided transactions read per scrape at most.
const MAX_HALVES_READ: usize = 10_000;

fn gauges(broker: &Broker) -> Vec<Gauges> {
    let config = broker.config();
    let now = crate::now_ms();
    let mut out = vec![
        Gauges::new("rocketmq_broker_permission", "Broker permission")
            .one(f64::from(config.broker_permission)),
        Gauges::new("rocketmq_topic_number", "Active topic number")
            .one(broker.topics.all().len() as f64),
        Gauges::new(
            "rocketmq_consumer_group_number",
            "Active subscription group number",
        )
        .one(broker.groups.all().len() as f64),
    ];
    out.extend(connections(broker));
    out.extend(lag(broker, now));
    out.extend(storage(broker, now));

    let mut half = Gauges::new("rocketmq_half_messages", "Undecided transaction messages");
    let mut by_topic: BTreeMap<String, u64> = BTreeMap::new();
    // Each undecided half is read to learn its topic: bounded, so that a pile-up of
    // them cannot make a scrape slow.
    for t in broker.undecided_transactions(MAX_HALVES_READ) {
        *by_topic.entry(t.topic).or_insert(0) += 1;
    }
    for (topic, n) in by_topic {
        half.push(vec![("topic", topic)], n as f64);
    }
    out.push(half);
    out.push(
        Gauges::new(
            "ferromq_timer_pending_messages",
            "Timer and delay messages waiting for their time",
        )
        .one(broker.timers.pending() as f64),
    );
    if let Some(ha) = &broker.ha_master {
        let end = broker.store.store().write_offset();
        let mut lag = Gauges::new(
            "ferromq_replica_lag",
            "Commit-log bytes a slave has not confirmed yet",
        )
        .with_unit(Unit::Bytes);
        for s in ha.slaves() {
            let behind = s.ack_offset.map_or(end, |a| end.saturating_sub(a));
            lag.push(vec![("replica", s.addr.to_string())], behind as f64);
        }
        out.push(lag);
    }
    out
}

fn connections(broker: &Broker) -> Vec<Gauges> {
    let version = |v: i32| {
        ferromq_protocol::version_name(v).map_or_else(|| v.to_string(), |n| n.to_ascii_lowercase())
    };
    let mut producers = Gauges::new("rocketmq_producer_connections", "Producer connections");
    for ((language, v), n) in broker.clients.producer_connection_counts() {
        producers.push(
            vec![
                ("language", language.name().to_ascii_lowercase()),
                ("version", version(v)),
                ("protocol_type", "remoting".into()),
            ],
            n as f64,
        );
    }
    let mut consumers = Gauges::new("rocketmq_consumer_connections", "Consumer connections");
    for ((group, language, v, consume_type), n) in broker.clients.consumer_connection_counts() {
        let mode = match consume_type.as_str() {
            "CONSUME_ACTIVELY" => "pull",
            "CONSUME_POP" => "pop",
            _ => "push",
        };
        consumers.push(
            vec![
                ("is_system", bool_label(is_system_group(&group))),
                ("consumer_group", group),
                ("language", language.name().to_ascii_lowercase()),
                ("version", version(v)),
                ("consume_mode", mode.into()),
                ("protocol_type", "remoting".into()),
            ],
            n as f64,
        );
    }
    vec![producers, consumers]
}

/// The oldest store time among `offsets` of a queue, if there is a message there.
fn store_time(broker: &Broker, topic: &str, queue: i32, offset: u64) -> Option<i64> {
    broker
        .store
        .store()
        .queue_entries(topic, queue, offset, 1)
        .ok()
        .and_then(|e| e.first().map(|e| e.store_ms))
}

fn min_time(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Apache's five lag gauges for each online group and the topics it subscribes to, and
/// for each (group, topic) POP has handed messages out on. Pull groups' inflight and ready
/// rest on the pull positions the life records keep.
fn lag(broker: &Broker, now: i64) -> Vec<Gauges> {
    let store = broker.store.store();
    let mut lags: BTreeMap<(String, String), Lag> = BTreeMap::new();
    let mut subscribed: Vec<(String, String)> = Vec::new();
    for group in broker.clients.consumer_groups() {
        for s in broker.clients.subscriptions(&group) {
            if !s.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
                subscribed.push((group.clone(), s.topic));
            }
        }
    }
    let pop: Vec<_> = broker.pop.progress();
    // (group, topic) → (queue, next offset to hand out, handed out and not acknowledged)
    type PopQueues = HashMap<(String, String), Vec<(i32, u64, usize)>>;
    let mut pop_queues: PopQueues = HashMap::new();
    for (key, next, inflight) in pop {
        if key.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            continue;
        }
        pop_queues
            .entry((key.group.to_string(), key.topic.to_string()))
            .or_default()
            .push((key.queue_id, next, inflight));
    }
    // (group, topic) → (queue, offset its last pull asked for), for pull and push groups.
    let mut pulled: HashMap<(String, String), Vec<(i32, u64)>> = HashMap::new();
    for (group, topic, queue, offset) in broker.life.pull_positions() {
        pulled
            .entry((group, topic))
            .or_default()
            .push((queue, offset));
    }
    subscribed.extend(pop_queues.keys().cloned());
    subscribed.sort();
    subscribed.dedup();
    for (group, topic) in subscribed {
        let Some(config) = broker.topics.get(&topic) else {
            continue;
        };
        let mut lag = Lag::default();
        for queue in 0..config.read_queue_nums.max(config.write_queue_nums) {
            let max = store.max_offset(&topic, queue);
            let committed = broker
                .offsets
                .query(&group, &topic, queue)
                .map_or(max, |c| (c.max(0) as u64).min(max));
            lag.messages += (max - committed) as i64;
            if committed < max {
                lag.oldest_unconsumed_ms = min_time(
                    lag.oldest_unconsumed_ms,
                    store_time(broker, &topic, queue, committed),
                );
            }
        }
        // Per queue: its end, where the group hands out from, and how many before that
        // await an ack (POP) or a commit (pull: Apache's formulas; a queue never pulled
        // since the broker started counts 0 in both).
        let key = (group.clone(), topic.clone());
        let positions: Vec<(i32, u64, u64, u64)> = match pop_queues.get(&key) {
            Some(queues) => queues
                .iter()
                .map(|&(queue, next, handed)| {
                    (queue, store.max_offset(&topic, queue), next, handed as u64)
                })
                .collect(),
            None => pulled
                .get(&key)
                .into_iter()
                .flatten()
                .map(|&(queue, pull)| {
                    let max = store.max_offset(&topic, queue);
                    let pull = pull.min(max);
                    let committed = broker
                        .offsets
                        .query(&group, &topic, queue)
                        .map_or(pull, |c| (c.max(0) as u64).min(max));
                    (queue, max, pull, pull.saturating_sub(committed))
                })
                .collect(),
        };
        let (mut inflight, mut ready) = (0i64, 0i64);
        for (queue, max, position, handed) in positions {
            inflight += handed as i64;
            ready += max.saturating_sub(position) as i64;
            if position < max {
                lag.oldest_unpulled_ms = min_time(
                    lag.oldest_unpulled_ms,
                    store_time(broker, &topic, queue, position),
                );
            }
        }
        lag.inflight = Some(inflight);
        lag.ready = Some(ready);
        lags.insert((group, topic), lag);
    }

    let mut messages = Gauges::new("rocketmq_consumer_lag_messages", "Consumer lag messages");
    let mut latency = Gauges::new("rocketmq_consumer_lag_latency", "Consumer lag time")
        .with_unit(Unit::Other("milliseconds".into()));
    let mut inflight = Gauges::new(
        "rocketmq_consumer_inflight_messages",
        "Consumer inflight messages",
    );
    let mut queueing = Gauges::new(
        "rocketmq_consumer_queueing_latency",
        "Consumer queueing time",
    )
    .with_unit(Unit::Other("milliseconds".into()));
    let mut ready = Gauges::new(
        "rocketmq_consumer_ready_messages",
        "Consumer ready messages",
    );
    for ((group, topic), lag) in lags {
        let labels: Labels = vec![
            (
                "is_system",
                bool_label(is_system_topic(&topic) || is_system_group(&group)),
            ),
            ("consumer_group", group),
            ("topic", topic),
            ("is_retry", "false".into()),
        ];
        let age = |t: Option<i64>| t.map_or(0.0, |t| (now - t).max(0) as f64);
        messages.push(labels.clone(), lag.messages as f64);
        latency.push(labels.clone(), age(lag.oldest_unconsumed_ms));
        if let (Some(i), Some(r)) = (lag.inflight, lag.ready) {
            inflight.push(labels.clone(), i as f64);
            ready.push(labels.clone(), r as f64);
            queueing.push(labels, age(lag.oldest_unpulled_ms));
        }
    }
    vec![messages, latency, inflight, queueing, ready]
}

fn storage(broker: &Broker, now: i64) -> Vec<Gauges> {
    let store = broker.store.store();
    let config = broker.config();
    let storage_labels = || -> Labels {
        vec![
            ("storage_type", "local".into()),
            ("storage_medium", "disk".into()),
        ]
    };
    let mut out = Vec::new();
    if let Some(used) = crate::disk::used_bytes(&config.store_root) {
        let mut g =
            Gauges::new("rocketmq_storage_size", "Broker storage size").with_unit(Unit::Bytes);
        g.push(storage_labels(), used as f64);
        out.push(g);
    }
    let mut flush = Gauges::new(
        "rocketmq_storage_flush_behind_bytes",
        "Broker flush behind bytes",
    );
    flush.push(
        storage_labels(),
        store.write_offset().saturating_sub(store.flushed_offset()) as f64,
    );
    out.push(flush);
    // Queues are written in the same step as the commit log: nothing is ever behind.
    let mut dispatch = Gauges::new(
        "rocketmq_storage_dispatch_behind_bytes",
        "Broker dispatch behind bytes",
    );
    dispatch.push(storage_labels(), 0.0);
    out.push(dispatch);
    let oldest = store
        .read_message(store.min_commit_log_offset())
        .ok()
        .flatten()
        .and_then(|record| ferromq_protocol::message::MessageExt::decode(&record).ok())
        .map(|(m, _)| m.store_timestamp);
    if let Some(t) = oldest.filter(|t| *t > 0) {
        let mut reserve = Gauges::new(
            "rocketmq_storage_message_reserve_time",
            "Broker message reserve time",
        )
        .with_unit(Unit::Other("milliseconds".into()));
        reserve.push(storage_labels(), (now - t).max(0) as f64);
        out.push(reserve);
    }
    out
}
