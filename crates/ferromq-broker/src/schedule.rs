//! Delay levels (Apache's `ScheduleMessageService`): a message with `DELAY=n` is stored in
//! `SCHEDULE_TOPIC_XXXX`, queue n−1, with its real topic and queue in properties and its
//! due time in the consume-queue tag slot. Every message of a level has the same delay,
//! so each level queue is ordered by due time and the service only ever looks at its
//! head. Progress per level is persisted in `config/delayOffset.json`; a restart may
//! deliver a due message twice (at-least-once), never early and never not at all.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_protocol::message::{self, property, sys_flag, MessageExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{now_ms, persist, Broker};

/// Topic holding delayed messages, one queue per level.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Queues of the schedule topic as Apache creates it (`SCHEDULE_TOPIC_QUEUE_NUM`); FerroMQ
/// uses one per configured delay level.
pub const SCHEDULE_QUEUES: i32 = 18;
/// Messages re-delivered per level per round at most.
const DELIVER_BATCH: usize = 64;
/// Longest sleep between rounds; new messages and shutdown wake the loop earlier.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// How often progress is written to disk.
const PERSIST_INTERVAL: Duration = Duration::from_secs(1);

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ProgressFile {
    offset_table: BTreeMap<i32, u64>,
}

pub struct ScheduleService {
    levels_ms: Vec<u64>,
    path: PathBuf,
    progress: Mutex<BTreeMap<i32, u64>>,
    dirty: AtomicBool,
    wake: Notify,
}

impl ScheduleService {
    pub fn open(root: &std::path::Path, levels_ms: Vec<u64>) -> std::io::Result<Self> {
        let path = root.join("config").join("delayOffset.json");
        let file: ProgressFile = persist::load(&path)?.unwrap_or_default();
        Ok(ScheduleService {
            levels_ms,
            path,
            progress: Mutex::new(file.offset_table),
            dirty: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    pub fn levels(&self) -> usize {
        self.levels_ms.len()
    }

    /// Next offset to deliver for a level.
    pub fn progress(&self, level: i32) -> u64 {
        self.progress
            .lock()
            .expect("delay progress lock")
            .get(&level)
            .copied()
            .unwrap_or(0)
    }

    /// Every level's progress (what a slave copies).
    pub fn snapshot(&self) -> BTreeMap<i32, u64> {
        self.progress.lock().expect("delay progress lock").clone()
    }

    /// Takes a master's progress in place of this one.
    pub fn replace(&self, progress: BTreeMap<i32, u64>) {
        *self.progress.lock().expect("delay progress lock") = progress;
        self.dirty.store(true, Ordering::Release);
    }

    fn advance(&self, level: i32, next: u64) {
        self.progress
            .lock()
            .expect("delay progress lock")
            .insert(level, next);
        self.dirty.store(true, Ordering::Release);
    }

    pub fn persist(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let file = ProgressFile {
            offset_table: self.progress.lock().expect("delay progress lock").clone(),
        };
        persist::store(&self.path, &file).inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }

    /// Tells the service a delayed message was stored.
    pub fn notify_stored(&self) {
        self.wake.notify_one();
    }

    /// Rewrites a message with a delay level into the schedule topic. Returns whether it
    /// was rewritten. Prepared and rolled-back transaction records are never delayed.
    pub fn apply(&self, msg: &mut MessageExt) -> bool {
        let tx_type = msg.sys_flag & sys_flag::TRANSACTION_ROLLBACK;
        if tx_type == sys_flag::TRANSACTION_PREPARED || tx_type == sys_flag::TRANSACTION_ROLLBACK {
            return false;
        }
        let Some(level) = property(&msg.properties, message::property::DELAY)
            .and_then(|d| d.trim().parse::<i64>().ok())
        else {
            return false;
        };
        if level <= 0 || self.levels_ms.is_empty() {
            return false;
        }
        let level = (level as usize).min(self.levels_ms.len());
        let due = now_ms() + self.levels_ms[level - 1] as i64;
        let mut props = message::without_properties(
            &msg.properties,
            &[
                message::property::DELAY,
                message::property::REAL_TOPIC,
                message::property::REAL_QID,
                message::property::TIMER_OUT_MS,
            ],
        );
        message::push_property(&mut props, message::property::DELAY, &level.to_string());
        message::push_property(&mut props, message::property::REAL_TOPIC, &msg.topic);
        message::push_property(
            &mut props,
            message::property::REAL_QID,
            &msg.queue_id.to_string(),
        );
        message::push_property(
            &mut props,
            message::property::TIMER_OUT_MS,
            &due.to_string(),
        );
        msg.properties = props;
        msg.topic = SCHEDULE_TOPIC.to_string();
        msg.queue_id = level as i32 - 1;
        true
    }

    /// Delayed messages not yet delivered, per level (1-based).
    pub fn pending(&self, store: &ferromq_store::MessageStore) -> Vec<(i32, u64)> {
        (1..=self.levels_ms.len() as i32)
            .map(|level| {
                let max = store.max_offset(SCHEDULE_TOPIC, level - 1);
                (level, max.saturating_sub(self.progress(level)))
            })
            .collect()
    }
}

/// The copy of a due message for its real topic: schedule bookkeeping removed.
pub(crate) fn restore_real_message(stored: &MessageExt, internal: &[&str]) -> Option<MessageExt> {
    let topic = property(&stored.properties, message::property::REAL_TOPIC)?.to_string();
    let queue_id = property(&stored.properties, message::property::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    // Apache builds the delivered message's properties before it clears DELAY and
    // REAL_TOPIC from its map, so they arrive with the message: consumers read
    // `getDelayTimeLevel()` and the timer properties. Only FerroMQ's own bookkeeping goes.
    let props = message::without_properties(&stored.properties, internal);
    Some(MessageExt {
        topic,
        queue_id,
        properties: props,
        ..stored.clone()
    })
}

impl Broker {
    /// Delivers due delayed messages until `shutdown`.
    pub(crate) async fn schedule_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_persist = tokio::time::Instant::now();
        loop {
            let wait = match self.deliver_due_delayed().await {
                Ok(wait) => wait,
                Err(e) => {
                    warn!(error = %e, "delivering delayed messages failed; retrying");
                    Duration::from_secs(1)
                }
            };
            if last_persist.elapsed() >= PERSIST_INTERVAL {
                if let Err(e) = self.schedule.persist() {
                    warn!(error = %e, "persisting delay progress failed");
                }
                last_persist = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = self.schedule.wake.notified() => {}
            }
        }
        if let Err(e) = self.schedule.persist() {
            warn!(error = %e, "persisting delay progress failed");
        }
    }

    /// One round over all levels. Returns how long to sleep before the next due message.
    async fn deliver_due_delayed(&self) -> Result<Duration, String> {
        let store = self.store.store().clone();
        let mut wait = MAX_IDLE;
        for level in 1..=self.schedule.levels() as i32 {
            loop {
                let from = self.schedule.progress(level);
                let entries = store
                    .queue_entries(SCHEDULE_TOPIC, level - 1, from, DELIVER_BATCH)
                    .map_err(|e| e.to_string())?;
                let Some(first) = entries.first() else { break };
                if first.offset > from {
                    // Entries below the queue's minimum were removed by retention.
                    self.schedule.advance(level, first.offset);
                }
                let now = now_ms();
                let due: Vec<_> = entries
                    .iter()
                    .take_while(|e| e.tag <= now)
                    .copied()
                    .collect();
                if let Some(next) = entries.get(due.len()) {
                    wait = wait.min(Duration::from_millis((next.tag - now).max(1) as u64));
                }
                if due.is_empty() {
                    break;
                }
                let mut outgoing = Vec::with_capacity(due.len());
                for e in &due {
                    let Some(record) = store.read_message(e.phys).map_err(|e| e.to_string())?
                    else {
                        continue;
                    };
                    let Ok((stored, _)) = MessageExt::decode(&record) else {
                        continue;
                    };
                    match restore_real_message(&stored, &[message::property::TIMER_OUT_MS]) {
                        Some(m) => outgoing.push(m),
                        None => warn!(
                            offset = e.offset,
                            level, "delayed message without REAL_TOPIC dropped"
                        ),
                    }
                }
                let last = due.last().expect("non-empty").offset;
                if !outgoing.is_empty() {
                    self.put_due_messages(outgoing)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                debug!(level, delivered = due.len(), "delayed messages delivered");
                self.schedule.advance(level, last + 1);
                if due.len() < entries.len() {
                    break;
                }
            }
        }
        Ok(wait)
    }
}
