//! Timer messages (RocketMQ 5.x): a message with `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`,
//! `TIMER_DELAY_MS` or `__STARTDELIVERTIME` is stored in `rmq_sys_wheel_timer` with its
//! due time in the consume-queue tag slot, indexed into the on-disk timer wheel, and
//! delivered to its real topic when due. Memory holds only the next few seconds of
//! timers; everything further out lives in the wheel on disk.
//!
//! Progress (`config/timerState.json`): how far the timer queue is indexed, and the
//! bucket before which everything has been delivered. A restart re-indexes and re-fires
//! from there: at-least-once, never early.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_protocol::message::{self, property, MessageExt};
use ferromq_store::timer::{Timer, TimerWheel};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::schedule::restore_real_message;
use crate::{now_ms, persist, Broker};

/// Topic holding timer messages until they are due.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// Width of a wheel bucket.
const BUCKET_MS: i64 = 1000;
/// Buckets are loaded into memory this long before they are due.
const LOOKAHEAD_MS: i64 = 2000;
/// Timers held in memory at most; past it, loading waits for firing to catch up.
const MAX_IN_MEMORY: usize = 200_000;
/// Timers delivered per store append at most.
const FIRE_BATCH: usize = 256;
/// Timer-queue entries indexed per round at most.
const INDEX_BATCH: usize = 4096;
/// Log segment size of the wheel.
const LOG_SEGMENT_BYTES: u64 = 64 << 20;
const PERSIST_INTERVAL: Duration = Duration::from_secs(1);
const MAX_IDLE: Duration = Duration::from_secs(1);

#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct TimerState {
    indexed_offset: u64,
    fired_until_ms: i64,
    added: u64,
    fired: u64,
}

pub struct TimerService {
    /// Recalled timer messages not yet due: `topic uniq-key` → due time (ms). Checked when
    /// a timer fires; kept in `config/timerRecall.json` so a recall survives a restart.
    recalls: Mutex<std::collections::BTreeMap<String, i64>>,
    recalls_path: PathBuf,
    max_delay_ms: i64,
    wheel: Mutex<TimerWheel>,
    state: Mutex<TimerState>,
    state_path: PathBuf,
    wake: Notify,
}

/// Properties that ask for timer delivery.
pub(crate) const TIMER_PROPERTIES: [&str; 4] = [
    message::property::TIMER_DELIVER_MS,
    message::property::TIMER_DELAY_SEC,
    message::property::TIMER_DELAY_MS,
    message::property::START_DELIVER_TIME,
];

/// When a message's timer properties ask for it to be delivered (a time already past
/// included), in the order Apache reads them.
fn requested_due(props: &str, now: i64) -> Option<i64> {
    let parse = |name| property(props, name).and_then(|v| v.trim().parse::<i64>().ok());
    parse(message::property::TIMER_DELIVER_MS)
        .or_else(|| {
            parse(message::property::TIMER_DELAY_SEC)
                .map(|s| now.saturating_add(s.saturating_mul(1000)))
        })
        .or_else(|| parse(message::property::TIMER_DELAY_MS).map(|ms| now.saturating_add(ms)))
        .or_else(|| parse(message::property::START_DELIVER_TIME))
}

impl Broker {
    /// Withdraws a timer message before it is due; returns its message id.
    ///
    /// # Errors
    /// An invalid or foreign handle, a time already past, or the recall not written down.
    pub fn recall_message(&self, topic: &str, handle: &str) -> Result<String, crate::BrokerError> {
        use crate::BrokerError;
        let config = self.config();
        // Apache's checks, in Apache's order and words.
        if !config.recall_message_enable {
            return Err(BrokerError::NoPermission(
                "recall failed, operation is forbidden".into(),
            ));
        }
        if self.role() != crate::Role::Master {
            return Err(BrokerError::SlaveNotAvailable(
                "recall failed, broker service not available".into(),
            ));
        }
        if config.broker_permission & ferromq_protocol::body::perm::WRITE == 0
            && !config.allow_recall_when_broker_not_writeable
        {
            return Err(BrokerError::Unavailable(
                "recall failed, broker service not available".into(),
            ));
        }
        if self.topics.get(topic).is_none() {
            return Err(BrokerError::TopicNotFound(topic.to_string()));
        }
        let ferromq_protocol::recall::RecallHandle {
            topic: handle_topic,
            broker_name,
            due_ms: due,
            uniq_key: uniq,
        } = ferromq_protocol::recall::RecallHandle::parse(handle)
            .map_err(|e| BrokerError::IllegalOperation(e.into()))?;
        if handle_topic != topic {
            return Err(BrokerError::IllegalOperation(
                "recall failed, topic not match".into(),
            ));
        }
        if broker_name != config.broker_name {
            return Err(BrokerError::IllegalOperation(
                "recall failed, broker service not available".into(),
            ));
        }
        let left = due.saturating_sub(now_ms());
        if left <= 0 || left >= self.timers.max_delay_ms {
            return Err(BrokerError::IllegalOperation(
                "recall failed, timestamp invalid".into(),
            ));
        }
        self.timers
            .recall(topic, &uniq, due)
            .map_err(|e| BrokerError::Internal(format!("writing the recall failed: {e}")))?;
        Ok(uniq)
    }
}

impl TimerService {
    pub fn open(root: &std::path::Path, max_delay_sec: u64) -> Result<Self, crate::OpenError> {
        let max_delay_ms = (max_delay_sec as i64).saturating_mul(1000);
        let slots = ((max_delay_ms + LOOKAHEAD_MS) / BUCKET_MS + 3600) as usize;
        let dir = root.join("timerwheel");
        let wheel = TimerWheel::open(&dir, BUCKET_MS, slots, LOG_SEGMENT_BYTES)?;
        let state_path = root.join("config").join("timerState.json");
        let meta_err = |source| crate::OpenError::Metadata {
            path: state_path.display().to_string(),
            source,
        };
        let state: TimerState = persist::load(&state_path)
            .map_err(meta_err)?
            .unwrap_or_default();
        let recalls_path = root.join("config").join("timerRecall.json");
        let recalls = persist::load(&recalls_path)
            .map_err(|source| crate::OpenError::Metadata {
                path: recalls_path.display().to_string(),
                source,
            })?
            .unwrap_or_default();
        Ok(TimerService {
            recalls: Mutex::new(recalls),
            recalls_path,
            max_delay_ms,
            wheel: Mutex::new(wheel),
            state: Mutex::new(state),
            state_path,
            wake: Notify::new(),
        })
    }

    /// The time up to which every timer has been delivered, ms since the epoch.
    pub fn fired_until_ms(&self) -> i64 {
        self.state.lock().expect("timer state lock").fired_until_ms
    }

    /// Timer messages stored and not yet delivered.
    pub fn pending(&self) -> u64 {
        let s = self.state.lock().expect("timer state lock");
        s.added.saturating_sub(s.fired)
    }

    /// Timers recorded for delivery within `[from_ms, to_ms)`.
    pub fn pending_between(&self, from_ms: i64, to_ms: i64) -> u64 {
        self.wheel
            .lock()
            .expect("timer wheel lock")
            .pending_between(from_ms, to_ms)
    }

    /// Recalls a timer message before it is due (RecallMessage): it will not be delivered.
    ///
    /// # Errors
    /// The recall could not be written down.
    pub fn recall(&self, topic: &str, uniq_key: &str, due_ms: i64) -> std::io::Result<()> {
        let mut r = self.recalls.lock().expect("timer recalls lock");
        // Recalls of timers long fired are of no use any more.
        let horizon = now_ms() - 3_600_000;
        r.retain(|_, due| *due > horizon);
        r.insert(format!("{topic} {uniq_key}"), due_ms);
        persist::store(&self.recalls_path, &*r)
    }

    /// Whether this message was recalled. The recall is kept (an hour past its due time,
    /// pruned by the next recall): a firing that fails and is retried must still skip it.
    fn recalled(&self, topic: &str, uniq_key: &str) -> bool {
        let r = self.recalls.lock().expect("timer recalls lock");
        !r.is_empty() && r.contains_key(&format!("{topic} {uniq_key}"))
    }

    pub fn notify_stored(&self) {
        self.wake.notify_one();
    }

    /// Moves a message with a timer property to the timer topic. `Ok(false)` when it has
    /// none (or is already due: then the property is dropped and it is delivered now).
    pub fn apply(&self, msg: &mut MessageExt) -> Result<bool, String> {
        let props = &msg.properties;
        let now = now_ms();
        let Some(due) = requested_due(props, now) else {
            return Ok(false);
        };
        if due.saturating_sub(now) > self.max_delay_ms {
            return Err(format!(
                "timer message illegal: due in {} s, more than timerMaxDelaySec ({} s)",
                due.saturating_sub(now) / 1000,
                self.max_delay_ms / 1000
            ));
        }
        // The timer properties stay on the message, as Apache delivers it (a message already
        // due is stored as it came).
        if due <= now {
            return Ok(false);
        }
        let mut stripped = message::without_properties(
            props,
            &[
                message::property::REAL_TOPIC,
                message::property::REAL_QID,
                message::property::TIMER_OUT_MS,
            ],
        );
        message::push_property(&mut stripped, message::property::REAL_TOPIC, &msg.topic);
        message::push_property(
            &mut stripped,
            message::property::REAL_QID,
            &msg.queue_id.to_string(),
        );
        message::push_property(
            &mut stripped,
            message::property::TIMER_OUT_MS,
            &due.to_string(),
        );
        msg.properties = stripped;
        msg.topic = TIMER_TOPIC.to_string();
        msg.queue_id = 0;
        Ok(true)
    }

    fn persist(&self, fired_until_ms: i64) -> Result<(), String> {
        let mut wheel = self.wheel.lock().expect("timer wheel lock");
        wheel.flush().map_err(|e| e.to_string())?;
        let snapshot = {
            let mut s = self.state.lock().expect("timer state lock");
            s.fired_until_ms = fired_until_ms;
            *s
        };
        persist::store(&self.state_path, &snapshot).map_err(|e| e.to_string())?;
        wheel
            .delete_fired_segments(fired_until_ms)
            .map_err(|e| e.to_string())
    }
}

/// In-memory part of the timer loop: the loaded near future.
struct Firing {
    heap: BinaryHeap<Reverse<Timer>>,
    loaded_until: i64,
}

impl Broker {
    pub(crate) async fn timer_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let start = {
            let s = self.timers.state.lock().expect("timer state lock");
            if s.fired_until_ms > 0 {
                s.fired_until_ms
            } else {
                now_ms().div_euclid(BUCKET_MS) * BUCKET_MS
            }
        };
        let mut firing = Firing {
            heap: BinaryHeap::new(),
            loaded_until: start,
        };
        let mut last_persist = tokio::time::Instant::now();
        loop {
            let wait = match self.timer_round(&mut firing).await {
                Ok(w) => w,
                Err(e) => {
                    warn!(error = %e, "timer delivery failed; retrying");
                    Duration::from_secs(1)
                }
            };
            if last_persist.elapsed() >= PERSIST_INTERVAL {
                if let Err(e) = self.timers.persist(fired_until(&firing)) {
                    warn!(error = %e, "persisting timer state failed");
                }
                last_persist = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = self.timers.wake.notified() => {}
            }
        }
        if let Err(e) = self.timers.persist(fired_until(&firing)) {
            warn!(error = %e, "persisting timer state failed");
        }
    }

    /// Indexes new timer messages, loads due-soon buckets, fires what is due. Returns how
    /// long the loop may sleep.
    async fn timer_round(&self, f: &mut Firing) -> Result<Duration, String> {
        let store = self.store.store().clone();
        loop {
            let from = self
                .timers
                .state
                .lock()
                .expect("timer state lock")
                .indexed_offset;
            let entries = store
                .queue_entries(TIMER_TOPIC, 0, from, INDEX_BATCH)
                .map_err(|e| e.to_string())?;
            let Some(last) = entries.last() else { break };
            let timers: Vec<Timer> = entries
                .iter()
                .map(|e| Timer {
                    due_ms: e.tag,
                    phys: e.phys,
                })
                .collect();
            self.timers
                .wheel
                .lock()
                .expect("timer wheel lock")
                .add(&timers)
                .map_err(|e| e.to_string())?;
            for t in &timers {
                // Its bucket is already loaded (or past): it joins the near future directly.
                if t.due_ms < f.loaded_until {
                    f.heap.push(Reverse(*t));
                }
            }
            let mut s = self.timers.state.lock().expect("timer state lock");
            s.indexed_offset = last.offset + 1;
            s.added += timers.len() as u64;
        }
        let now = now_ms();
        while f.loaded_until <= now + LOOKAHEAD_MS && f.heap.len() < MAX_IN_MEMORY {
            let bucket = self
                .timers
                .wheel
                .lock()
                .expect("timer wheel lock")
                .bucket(f.loaded_until)
                .map_err(|e| e.to_string())?;
            f.heap.extend(bucket.into_iter().map(Reverse));
            f.loaded_until += BUCKET_MS;
        }
        loop {
            let now = now_ms();
            let mut due = Vec::new();
            while due.len() < FIRE_BATCH && f.heap.peek().is_some_and(|Reverse(t)| t.due_ms <= now)
            {
                due.push(f.heap.pop().expect("peeked").0);
            }
            if due.is_empty() {
                break;
            }
            let mut outgoing = Vec::with_capacity(due.len());
            for t in &due {
                let Some(record) = store.read_message(t.phys).map_err(|e| e.to_string())? else {
                    continue;
                };
                let Ok((stored, _)) = MessageExt::decode(&record) else {
                    continue;
                };
                match restore_real_message(&stored, &[]) {
                    Some(m)
                        if property(&m.properties, message::property::UNIQ_KEY)
                            .is_some_and(|k| self.timers.recalled(&m.topic, k)) => {}
                    Some(m) => outgoing.push(m),
                    None => warn!(phys = t.phys, "timer message without REAL_TOPIC dropped"),
                }
            }
            if let Err(e) = self.put_due_messages(outgoing).await {
                // Put them back: nothing due is ever dropped.
                f.heap.extend(due.into_iter().map(Reverse));
                return Err(e.to_string());
            }
            self.timers.state.lock().expect("timer state lock").fired += due.len() as u64;
        }
        let now = now_ms();
        let next_due = f.heap.peek().map_or(i64::MAX, |Reverse(t)| t.due_ms);
        let next_load = f.loaded_until - LOOKAHEAD_MS;
        let until = next_due
            .min(next_load)
            .saturating_sub(now)
            .clamp(1, MAX_IDLE.as_millis() as i64);
        Ok(Duration::from_millis(until as u64))
    }
}

/// Everything due before this bucket has been delivered.
fn fired_until(f: &Firing) -> i64 {
    match f.heap.peek() {
        Some(Reverse(t)) => (t.due_ms.div_euclid(BUCKET_MS) * BUCKET_MS).min(f.loaded_until),
        None => f.loaded_until,
    }
}
