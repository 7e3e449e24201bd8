//! The broker's memory of who read what, for "where is my message?" without client
//! tracing (`ferromq admin messageLife`, the dashboard's message page).
//!
//! The store already knows where and when a message was stored, what waits for a delay or
//! a transaction, and each group's committed offset. What it lacks is who pulled a message
//! and when an offset commit passed it. This module keeps that, **per request, not per
//! message**: one entry per pull answer that carried messages (the offset range, the
//! client's address, the time) and one per offset commit, in a small ring per (group,
//! topic, queue). Nothing here is on the send path; a pull or a commit adds one entry
//! under its queue's own lock. Nothing is persisted: after a restart the rings start
//! empty, and answers say since when they remember (`since_ms`).
//!
//! `enableMessageLife=false` (a FerroMQ key) turns the recording off. Each queue's pull
//! position (the offset its last pull asked for, Apache's `pullOffsetTable`) is kept either
//! way: the consumer inflight, ready and queueing gauges rest on it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

/// Entries kept per (group, topic, queue) and kind at most; older ones fall out. 64 pulls
/// of up to 32 messages each cover the last 2,048 messages of a busy queue in about 6 KB.
pub const RING: usize = 64;

/// Entries of each kind kept across all queues: the more queues, the shorter each ring, so
/// that 100,000 consumed queues cost what 4,096 do (~28 MB at most) and not 64 entries each
/// (~650 MB).
const ENTRIES_BUDGET: usize = 1 << 18;

/// The shortest ring: the last read and commit of a queue are always remembered.
const MIN_RING: usize = 2;

/// A pull answer that carried messages: offsets `from..next` went to `client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Read {
    pub from: u64,
    pub next: u64,
    pub client: SocketAddr,
    pub at_ms: i64,
}

/// An offset commit: everything below `offset` is consumed, says `client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Commit {
    pub offset: i64,
    pub client: SocketAddr,
    pub at_ms: i64,
}

#[derive(Debug, Default)]
struct QueueLife {
    /// The offset the last pull asked for: everything before it was handed to the group.
    pulled: u64,
    reads: VecDeque<Read>,
    commits: VecDeque<Commit>,
}

/// Adds `entry`, dropping the oldest beyond `len`. A ring starts at the shortest length
/// (most queues are read once or rarely), grows as it fills, and is shrunk when more
/// queues made its length smaller.
fn push<T>(ring: &mut VecDeque<T>, entry: T, len: usize) {
    while ring.len() >= len {
        ring.pop_front();
    }
    if ring.capacity() == 0 {
        ring.reserve_exact(MIN_RING);
    } else if ring.capacity() >= 2 * len {
        ring.shrink_to(len);
    }
    ring.push_back(entry);
}

type Queues = HashMap<i32, Arc<Mutex<QueueLife>>>;

/// What one group did with one queue position, as far as the rings remember.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionLife {
    /// Pull answers that covered the position, oldest first.
    pub reads: Vec<Read>,
    /// The first commit that passed the position, if the ring still holds it.
    pub committed_by: Option<Commit>,
    /// The oldest entry the rings still hold for this queue (ms): reads or commits before
    /// it are forgotten, not absent.
    pub remembered_since_ms: Option<i64>,
}

/// Reads and commits per group, topic and queue.
#[derive(Debug)]
pub struct LifeRecords {
    enabled: bool,
    since_ms: i64,
    groups: RwLock<HashMap<String, HashMap<String, Queues>>>,
    /// (group, topic, queue) entries in `groups`: what the budget is shared by.
    queues: AtomicUsize,
}

impl LifeRecords {
    pub fn new(enabled: bool, now_ms: i64) -> Self {
        LifeRecords {
            enabled,
            since_ms: now_ms,
            groups: RwLock::default(),
            queues: AtomicUsize::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// When the broker began remembering (its start).
    pub fn since_ms(&self) -> i64 {
        self.since_ms
    }

    /// The queue's entry, created on first use. The common case (it exists) takes only the
    /// read lock and allocates nothing.
    fn queue(&self, group: &str, topic: &str, queue_id: i32) -> Arc<Mutex<QueueLife>> {
        if let Some(q) = self.existing(group, topic, queue_id) {
            return q;
        }
        self.groups
            .write()
            .expect("life records lock")
            .entry(group.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default()
            .entry(queue_id)
            .or_insert_with(|| {
                self.queues.fetch_add(1, Ordering::Relaxed);
                Arc::default()
            })
            .clone()
    }

    /// How many entries of each kind one queue keeps now.
    fn ring_len(&self) -> usize {
        (ENTRIES_BUDGET / self.queues.load(Ordering::Relaxed).max(1)).clamp(MIN_RING, RING)
    }

    /// A pull asked for `requested`; `read` is what it carried, if anything.
    fn existing(&self, group: &str, topic: &str, queue_id: i32) -> Option<Arc<Mutex<QueueLife>>> {
        self.groups
            .read()
            .expect("life records lock")
            .get(group)
            .and_then(|topics| topics.get(topic))
            .and_then(|queues| queues.get(&queue_id))
            .cloned()
    }

    pub fn note_pull(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        requested: u64,
        read: Option<Read>,
    ) {
        let q = self.queue(group, topic, queue_id);
        let mut life = q.lock().expect("queue life lock");
        life.pulled = requested;
        if let Some(read) = read.filter(|r| self.enabled && r.next > r.from) {
            push(&mut life.reads, read, self.ring_len());
        }
    }

    /// Every queue's pull position: (group, topic, queue, offset the last pull asked for).
    pub fn pull_positions(&self) -> Vec<(String, String, i32, u64)> {
        let groups = self.groups.read().expect("life records lock");
        let mut out = Vec::new();
        for (group, topics) in groups.iter() {
            for (topic, queues) in topics {
                for (queue, life) in queues {
                    let pulled = life.lock().expect("queue life lock").pulled;
                    out.push((group.clone(), topic.clone(), *queue, pulled));
                }
            }
        }
        out
    }

    pub fn record_commit(&self, group: &str, topic: &str, queue_id: i32, commit: Commit) {
        if !self.enabled {
            return;
        }
        let q = self.queue(group, topic, queue_id);
        let mut life = q.lock().expect("queue life lock");
        // A consumer commits the same offset every few seconds while idle: one entry does.
        if life
            .commits
            .back()
            .is_some_and(|c| c.offset == commit.offset)
        {
            return;
        }
        push(&mut life.commits, commit, self.ring_len());
    }

    /// Groups that pulled or committed on this topic since the broker started.
    pub fn groups_of(&self, topic: &str) -> Vec<String> {
        self.groups
            .read()
            .expect("life records lock")
            .iter()
            .filter(|(_, topics)| topics.contains_key(topic))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// What `group` did with `offset` of the queue.
    pub fn position(&self, group: &str, topic: &str, queue_id: i32, offset: u64) -> PositionLife {
        let Some(q) = self.existing(group, topic, queue_id) else {
            return PositionLife::default();
        };
        let life = q.lock().expect("queue life lock");
        let oldest = [
            life.reads.front().map(|r| r.at_ms),
            life.commits.front().map(|c| c.at_ms),
        ]
        .into_iter()
        .flatten()
        .min();
        PositionLife {
            reads: life
                .reads
                .iter()
                .filter(|r| r.from <= offset && offset < r.next)
                .copied()
                .collect(),
            committed_by: life
                .commits
                .iter()
                .find(|c| c.offset > offset as i64)
                .copied(),
            remembered_since_ms: oldest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_position_gets_the_reads_covering_it_and_the_first_commit_past_it() {
        let life = LifeRecords::new(true, 0);
        let read = |from, next, port, at_ms| {
            Some(Read {
                from,
                next,
                client: addr(port),
                at_ms,
            })
        };
        life.note_pull("g", "t", 0, 0, read(0, 4, 1, 10));
        life.note_pull("g", "t", 0, 4, read(4, 8, 2, 20));
        life.note_pull("g", "t", 0, 4, read(4, 6, 3, 30)); // read again after a reset
        life.note_pull("g", "t", 1, 0, read(0, 9, 4, 40));
        life.note_pull("g", "t", 0, 9, read(9, 9, 5, 50)); // empty: not kept
        let mut positions = life.pull_positions();
        positions.sort();
        assert_eq!(
            positions,
            [
                ("g".into(), "t".into(), 0, 9),
                ("g".into(), "t".into(), 1, 0)
            ]
        );
        let commit = |offset, at_ms| Commit {
            offset,
            client: addr(9),
            at_ms,
        };
        life.record_commit("g", "t", 0, commit(4, 25));
        life.record_commit("g", "t", 0, commit(4, 26)); // the same offset again: one entry
        life.record_commit("g", "t", 0, commit(8, 35));

        let p = life.position("g", "t", 0, 5);
        assert_eq!(
            p.reads.iter().map(|r| r.client.port()).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(p.committed_by.map(|c| (c.offset, c.at_ms)), Some((8, 35)));
        assert_eq!(p.remembered_since_ms, Some(10));
        let p = life.position("g", "t", 0, 3);
        assert_eq!(p.committed_by.map(|c| c.at_ms), Some(25));
        assert!(life.position("g", "t", 0, 8).committed_by.is_none());
        assert!(life.position("other", "t", 0, 5).reads.is_empty());
        assert_eq!(life.groups_of("t"), ["g"]);
    }

    #[test]
    fn rings_keep_the_newest_entries_and_off_records_nothing() {
        let life = LifeRecords::new(true, 0);
        for i in 0..(RING as u64 + 10) {
            let read = Read {
                from: i,
                next: i + 1,
                client: addr(1),
                at_ms: i as i64,
            };
            life.note_pull("g", "t", 0, i, Some(read));
        }
        assert!(life.position("g", "t", 0, 5).reads.is_empty());
        assert_eq!(life.position("g", "t", 0, 70).reads.len(), 1);
        assert_eq!(life.position("g", "t", 0, 70).remembered_since_ms, Some(10));

        // Off: no reads remembered, the pull position still kept (for the metrics).
        let off = LifeRecords::new(false, 0);
        let read = Read {
            from: 0,
            next: 1,
            client: addr(1),
            at_ms: 1,
        };
        off.note_pull("g", "t", 0, 0, Some(read));
        assert!(off.position("g", "t", 0, 0).reads.is_empty());
        assert_eq!(off.pull_positions().len(), 1);
    }

    #[test]
    fn rings_shorten_as_queues_grow_so_the_entries_stay_within_the_budget() {
        let life = LifeRecords::new(true, 0);
        let read = |i: u64| {
            Some(Read {
                from: i,
                next: i + 1,
                client: addr(1),
                at_ms: i as i64,
            })
        };
        for i in 0..RING as u64 {
            life.note_pull("g", "busy", 0, i, read(i));
        }
        assert_eq!(
            life.position("g", "busy", 0, 0).reads.len(),
            1,
            "one queue keeps {RING}"
        );
        // Many more queues: each keeps the budget's share, the busy one's next read shortens it.
        let queues = ENTRIES_BUDGET / MIN_RING;
        for q in 0..queues as i32 {
            life.note_pull("g", "many", q, 0, read(0));
        }
        life.note_pull("g", "busy", 0, RING as u64, read(RING as u64));
        let kept = |from: u64| life.position("g", "busy", 0, from).reads.len();
        assert_eq!(
            kept(RING as u64 - MIN_RING as u64),
            0,
            "older entries fell out"
        );
        assert_eq!(kept(RING as u64 - 1) + kept(RING as u64), MIN_RING);
        let q = life.existing("g", "busy", 0).unwrap();
        assert!(
            q.lock().unwrap().reads.capacity() < 2 * MIN_RING,
            "the ring was shrunk"
        );
    }
}
