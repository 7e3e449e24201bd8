//! Broker counters: the totals behind `clusterList`, and per-topic put and per-group get
//! figures over the last minute, hour and day as Apache's `BrokerStatsManager` keeps them
//! (`TOPIC_PUT_NUMS` by topic, `GROUP_GET_NUMS` by `topic@group`), answered by
//! VIEW_BROKER_STATS_DATA for `mqadmin statsAll` and the dashboard.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

/// Apache's stats names (`BrokerStatsManager`).
pub const TOPIC_PUT_NUMS: &str = "TOPIC_PUT_NUMS";
pub const GROUP_GET_NUMS: &str = "GROUP_GET_NUMS";
pub const BROKER_PUT_NUMS: &str = "BROKER_PUT_NUMS";
pub const BROKER_GET_NUMS: &str = "BROKER_GET_NUMS";

/// How often snapshots are taken; the minute window spans six of them, as in Apache.
pub const SAMPLE_INTERVAL_MS: i64 = 10_000;
const MINUTE_SAMPLES: usize = 7;
const HOUR_SAMPLES: usize = 7;
const HOUR_SAMPLE_EVERY_MS: i64 = 600_000;
const DAY_SAMPLES: usize = 25;
const DAY_SAMPLE_EVERY_MS: i64 = 3_600_000;

#[derive(Clone, Copy)]
struct Snapshot {
    at_ms: i64,
    value: u64,
    times: u64,
}

/// One counted thing: messages (`value`) and the requests that carried them (`times`).
#[derive(Default)]
pub struct Counter {
    value: AtomicU64,
    times: AtomicU64,
    windows: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    minute: VecDeque<Snapshot>,
    hour: VecDeque<Snapshot>,
    day: VecDeque<Snapshot>,
}

/// Figures over one window, as Apache's `BrokerStatsItem`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct WindowStats {
    pub sum: u64,
    pub tps: f64,
    pub avgpt: f64,
}

/// Apache's `BrokerStatsData`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsData {
    pub stats_minute: WindowStats,
    pub stats_hour: WindowStats,
    pub stats_day: WindowStats,
}

fn push(list: &mut VecDeque<Snapshot>, s: Snapshot, keep: usize) {
    list.push_back(s);
    while list.len() > keep {
        list.pop_front();
    }
}

fn window(list: &VecDeque<Snapshot>) -> WindowStats {
    match (list.front(), list.back()) {
        (Some(first), Some(last)) if last.at_ms > first.at_ms => {
            let sum = last.value - first.value;
            let times = last.times - first.times;
            WindowStats {
                sum,
                tps: sum as f64 * 1000.0 / (last.at_ms - first.at_ms) as f64,
                avgpt: if times == 0 {
                    0.0
                } else {
                    sum as f64 / times as f64
                },
            }
        }
        _ => WindowStats::default(),
    }
}

impl Counter {
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        self.times.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    fn sample(&self, now_ms: i64) {
        let s = Snapshot {
            at_ms: now_ms,
            value: self.value.load(Ordering::Relaxed),
            times: self.times.load(Ordering::Relaxed),
        };
        let mut w = self.windows.lock().expect("stats windows lock");
        push(&mut w.minute, s, MINUTE_SAMPLES);
        if w.hour
            .back()
            .is_none_or(|b| now_ms - b.at_ms >= HOUR_SAMPLE_EVERY_MS)
        {
            push(&mut w.hour, s, HOUR_SAMPLES);
        }
        if w.day
            .back()
            .is_none_or(|b| now_ms - b.at_ms >= DAY_SAMPLE_EVERY_MS)
        {
            push(&mut w.day, s, DAY_SAMPLES);
        }
    }

    /// The windows as of `now_ms`: the newest snapshot is the live value, so a message put
    /// a moment ago already counts.
    fn data(&self, now_ms: i64) -> StatsData {
        let live = Snapshot {
            at_ms: now_ms,
            value: self.value.load(Ordering::Relaxed),
            times: self.times.load(Ordering::Relaxed),
        };
        let w = self.windows.lock().expect("stats windows lock");
        let with_live = |list: &VecDeque<Snapshot>, keep: usize| {
            let mut l = list.clone();
            if l.back().is_none_or(|b| b.at_ms < now_ms) {
                push(&mut l, live, keep);
            }
            window(&l)
        };
        StatsData {
            stats_minute: with_live(&w.minute, MINUTE_SAMPLES),
            stats_hour: with_live(&w.hour, HOUR_SAMPLES),
            stats_day: with_live(&w.day, DAY_SAMPLES),
        }
    }
}

/// Counters by key, created on first use.
#[derive(Default)]
pub struct CounterSet {
    counters: RwLock<HashMap<String, Arc<Counter>>>,
    /// When the last snapshot was taken, once one was.
    last_sample_ms: std::sync::atomic::AtomicI64,
    sampled: std::sync::atomic::AtomicBool,
}

impl CounterSet {
    pub fn add(&self, key: &str, n: u64) {
        if let Some(c) = self.counters.read().expect("stats lock").get(key) {
            c.add(n);
            return;
        }
        let c = self
            .counters
            .write()
            .expect("stats lock")
            .entry(key.to_string())
            .or_insert_with(|| {
                // Born with a zero snapshot as of the last sampling, so that its windows count
                // everything since, like those of counters that existed then.
                let c = Counter::default();
                let born = if self.sampled.load(Ordering::Acquire) {
                    self.last_sample_ms.load(Ordering::Relaxed)
                } else {
                    crate::now_ms()
                };
                c.sample(born);
                Arc::new(c)
            })
            .clone();
        c.add(n);
    }

    pub fn get(&self, key: &str) -> Option<Arc<Counter>> {
        self.counters.read().expect("stats lock").get(key).cloned()
    }

    fn sample(&self, now_ms: i64) {
        self.last_sample_ms.store(now_ms, Ordering::Relaxed);
        self.sampled.store(true, Ordering::Release);
        let all: Vec<Arc<Counter>> = self
            .counters
            .read()
            .expect("stats lock")
            .values()
            .cloned()
            .collect();
        for c in all {
            c.sample(now_ms);
        }
    }

    /// Forgets a topic's counters (deleted topics), keys `topic` and `topic@…`.
    pub fn forget_topic(&self, topic: &str) {
        self.counters.write().expect("stats lock").retain(|k, _| {
            k != topic && !k.strip_prefix(topic).is_some_and(|r| r.starts_with('@'))
        });
    }
}

#[derive(Default)]
pub struct BrokerStats {
    puts: Counter,
    gets: Counter,
    topic_puts: CounterSet,
    group_gets: CounterSet,
}

impl BrokerStats {
    pub fn record_put(&self, topic: &str, n: u64) {
        self.puts.add(n);
        self.topic_puts.add(topic, n);
    }
    pub fn record_get(&self, topic: &str, group: &str, n: u64) {
        self.gets.add(n);
        if n > 0 {
            self.group_gets.add(&format!("{topic}@{group}"), n);
        }
    }
    pub fn puts(&self) -> u64 {
        self.puts.total()
    }
    pub fn gets(&self) -> u64 {
        self.gets.total()
    }

    /// Messages per second put and got over the last minute.
    pub fn tps(&self, now_ms: i64) -> (f64, f64) {
        (
            self.puts.data(now_ms).stats_minute.tps,
            self.gets.data(now_ms).stats_minute.tps,
        )
    }

    /// Takes every counter's snapshot; called every [`SAMPLE_INTERVAL_MS`].
    pub fn sample(&self, now_ms: i64) {
        self.puts.sample(now_ms);
        self.gets.sample(now_ms);
        self.topic_puts.sample(now_ms);
        self.group_gets.sample(now_ms);
    }

    pub fn forget_topic(&self, topic: &str) {
        self.topic_puts.forget_topic(topic);
        self.group_gets.forget_topic(topic);
    }

    /// VIEW_BROKER_STATS_DATA: `None` for a name or key never counted, as Apache answers
    /// "not exist" for them.
    pub fn view(&self, name: &str, key: &str, now_ms: i64) -> Option<StatsData> {
        match name {
            TOPIC_PUT_NUMS => self.topic_puts.get(key).map(|c| c.data(now_ms)),
            GROUP_GET_NUMS => self.group_gets.get(key).map(|c| c.data(now_ms)),
            BROKER_PUT_NUMS => Some(self.puts.data(now_ms)),
            BROKER_GET_NUMS => Some(self.gets.data(now_ms)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_what_came_since_their_oldest_snapshot() {
        let stats = BrokerStats::default();
        stats.sample(0);
        stats.record_put("T", 3);
        stats.sample(10_000);
        stats.record_put("T", 7);
        let d = stats.view(TOPIC_PUT_NUMS, "T", 20_000).unwrap();
        // The topic's counter was born during the first interval, with a zero snapshot.
        assert_eq!(d.stats_minute.sum, 10);
        assert_eq!(d.stats_day.sum, 10);
        assert_eq!(stats.puts(), 10);
        assert_eq!(d.stats_minute.avgpt, 5.0);
        assert!(stats.view(TOPIC_PUT_NUMS, "other", 20_000).is_none());
    }

    #[test]
    fn the_minute_window_forgets_older_snapshots() {
        let c = Counter::default();
        c.sample(0);
        c.add(100);
        for i in 1..=8 {
            c.sample(i * 10_000);
        }
        c.add(6);
        let d = c.data(90_000);
        assert_eq!(d.stats_minute.sum, 6);
        assert!(
            (d.stats_minute.tps - 0.1).abs() < 1e-9,
            "{}",
            d.stats_minute.tps
        );
        assert_eq!(d.stats_hour.sum, 106);
    }

    #[test]
    fn group_gets_are_keyed_by_topic_and_group_and_forgotten_with_the_topic() {
        let stats = BrokerStats::default();
        stats.record_get("T", "G", 2);
        stats.record_get("T2", "G", 1);
        assert!(stats.view(GROUP_GET_NUMS, "T@G", 1).is_some());
        stats.forget_topic("T");
        assert!(stats.view(GROUP_GET_NUMS, "T@G", 1).is_none());
        assert!(stats.view(GROUP_GET_NUMS, "T2@G", 1).is_some());
    }
}
