//! The POP operations over the store, transport-free: pop (with long polling), ack,
//! change invisible time, and the sweep that dead-letters what was redelivered too often.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_protocol::body::perm;
use ferromq_protocol::message::{record_properties, MessageExt};
use rand::Rng;
use tokio::sync::Notify;

use super::state::{Event, Inflight, QueueKey};
use crate::filter::MessageFilter;
use crate::topic::{DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};
use crate::{now_ms, Broker, BrokerError, Role};

/// Bytes one pop reads from one queue at most.
const MAX_POP_BYTES: usize = 256 * 1024;
/// Messages one pop hands out at most (Apache's `maxMsgNums` bound).
pub const MAX_POP_MESSAGES: usize = 32;
/// Longest hold of a pop that finds nothing.
const MAX_POLL: Duration = Duration::from_secs(30);

/// One pop, as either front asks it.
#[derive(Clone)]
pub struct PopRequest {
    pub group: String,
    pub topic: String,
    /// A queue, or -1 for every queue of the topic. (Redelivery happens in place, so POP
    /// needs no retry topic.)
    pub queue_id: i32,
    pub max_msgs: usize,
    pub invisible_ms: i64,
    /// How long to wait when nothing is there.
    pub poll: Duration,
    pub filter: Arc<MessageFilter>,
    /// Hold each queue while what it handed out is invisible (FIFO).
    pub fifo: bool,
}

/// A message handed out.
#[derive(Debug, Clone)]
pub struct PoppedMessage {
    /// As stored, with `reconsume_times` as delivered this time.
    pub message: MessageExt,
    /// The pop time this delivery's receipt handle carries.
    pub pop_time: i64,
    pub invisible_ms: i64,
}

/// Waits on these queues' notifiers, registered before the caller looked.
fn armed(notifiers: &[Arc<Notify>]) -> Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> {
    notifiers
        .iter()
        .map(|n| {
            let mut f = Box::pin(n.notified());
            f.as_mut().enable();
            f
        })
        .collect()
}

/// Until one of the queues is appended to, or `until`.
async fn wait_any(woken: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>>, until: Instant) {
    let any = futures::future::select_all(woken);
    tokio::select! {
        _ = any => {}
        _ = tokio::time::sleep_until(until.into()) => {}
    }
}

/// What one pass over the queues found.
struct Pass {
    messages: Vec<PoppedMessage>,
    /// When a handed-out message of these queues becomes visible again.
    next_visible_at: Option<i64>,
}

impl Broker {
    /// Hands out up to `max_msgs` messages, waiting up to `poll` for some.
    ///
    /// # Errors
    /// The broker or topic refuses reading, the queue does not exist, or the journal
    /// cannot be written.
    pub async fn pop(&self, req: &PopRequest) -> Result<Vec<PoppedMessage>, BrokerError> {
        let queues = self.pop_queues(req)?;
        let max_reconsume = self.max_reconsume(&req.group);
        let popped = self
            .poll_queues(&queues, req.poll, || {
                let pass = self.pop_pass(req, &queues, max_reconsume)?;
                let found = (!pass.messages.is_empty()).then_some(pass.messages);
                Ok((found, pass.next_visible_at))
            })
            .await?
            .unwrap_or_default();
        if !popped.is_empty() {
            self.stats
                .record_get(&req.topic, &req.group, popped.len() as u64);
            for is_retry in [false, true] {
                let (n, bytes) = popped
                    .iter()
                    .filter(|p| p.message.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) == is_retry)
                    .fold((0u64, 0u64), |(n, b), p| {
                        (
                            n + 1,
                            b + (p.message.body.len() + p.message.properties.len()) as u64,
                        )
                    });
                self.metrics
                    .read(&req.topic, &req.group, Some(is_retry), n, bytes);
            }
        }
        Ok(popped)
    }

    /// Looks until `look` finds something or `poll` runs out, parked in between on the
    /// queues' notifiers and woken when a hidden message becomes visible. `look` answers
    /// what it found and when the next hidden message becomes visible.
    async fn poll_queues<T>(
        &self,
        queues: &[QueueKey],
        poll: Duration,
        mut look: impl FnMut() -> Result<(Option<T>, Option<i64>), BrokerError>,
    ) -> Result<Option<T>, BrokerError> {
        let deadline = Instant::now() + poll.min(MAX_POLL);
        let notifiers: Vec<Arc<Notify>> = queues
            .iter()
            .map(|k| self.store.waker().notifier(&k.topic, k.queue_id))
            .collect();
        loop {
            // Interest first, then the look, so an append between the two still wakes us.
            let woken = armed(&notifiers);
            let (found, next_visible_at) = look()?;
            let now = Instant::now();
            if found.is_some() || now >= deadline {
                return Ok(found);
            }
            let until_visible =
                next_visible_at.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64));
            crate::metrics::note_parked();
            wait_any(
                woken,
                until_visible.map_or(deadline, |d| deadline.min(now + d)),
            )
            .await;
        }
    }

    /// Whether a pop would find something, waiting up to `poll` for it (NOTIFICATION).
    ///
    /// # Errors
    /// As [`Broker::pop`] refuses.
    pub async fn pop_available(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        fifo: bool,
        poll: Duration,
    ) -> Result<bool, BrokerError> {
        let probe = PopRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            queue_id,
            max_msgs: 1,
            invisible_ms: 0,
            poll,
            filter: Arc::new(MessageFilter::All),
            fifo,
        };
        let queues = self.pop_queues(&probe)?;
        let found = self
            .poll_queues(&queues, poll, || {
                let (available, next_visible_at) = self.pop_peek(&queues, fifo);
                Ok((available.then_some(()), next_visible_at))
            })
            .await?;
        Ok(found.is_some())
    }

    /// Whether any of the queues has something to hand out, and when the next hidden
    /// message becomes visible.
    fn pop_peek(&self, queues: &[QueueKey], fifo: bool) -> (bool, Option<i64>) {
        let store = self.store.store();
        let inner = self.pop.lock();
        let now = now_ms();
        let mut next_visible: Option<i64> = None;
        for key in queues {
            let end = store.max_offset(&key.topic, key.queue_id);
            let Some(q) = inner.state.queues.get(key) else {
                if end > self.initial_pop_offset(key) {
                    return (true, None);
                }
                continue;
            };
            if let Some(at) = q.next_visible_at() {
                next_visible = Some(next_visible.map_or(at, |n| n.min(at)));
            }
            if fifo && q.fifo_blocked(now) {
                continue;
            }
            if q.due(now).next().is_some() || end > q.next {
                return (true, None);
            }
        }
        (false, next_visible)
    }

    /// Acknowledges one delivery.
    ///
    /// # Errors
    /// [`BrokerError::StaleHandle`] when the delivery is not the message's latest (acked,
    /// renewed or redelivered since).
    pub fn pop_ack(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: u64,
        pop_time: i64,
    ) -> Result<(), BrokerError> {
        let key = QueueKey::new(group, topic, queue_id);
        let mut inner = self.pop.lock();
        if inner.state.current(&key, offset, pop_time).is_none() {
            return Err(stale(topic, queue_id, offset));
        }
        let before = committed(&inner.state, &key);
        inner
            .record(&[Event::Acked {
                key: key.clone(),
                offset,
            }])
            .map_err(journal_failed)?;
        self.commit_pop_offset(&inner.state, &key, before);
        Ok(())
    }

    /// Gives one delivery a new invisible time from now; returns the new pop time, which
    /// the renewed receipt handle carries (the old one no longer acks).
    ///
    /// # Errors
    /// [`BrokerError::StaleHandle`] as for [`Broker::pop_ack`].
    pub fn pop_change_invisible(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: u64,
        pop_time: i64,
        invisible_ms: i64,
    ) -> Result<i64, BrokerError> {
        let key = QueueKey::new(group, topic, queue_id);
        let mut inner = self.pop.lock();
        let Some(current) = inner.state.current(&key, offset, pop_time) else {
            return Err(stale(topic, queue_id, offset));
        };
        let new_pop_time = now_ms().max(current.pop_time + 1);
        inner
            .record(&[Event::Changed {
                key,
                offset,
                pop_time: new_pop_time,
                visible_at: new_pop_time + invisible_ms.max(0),
            }])
            .map_err(journal_failed)?;
        drop(inner);
        // A pop parked on this queue was timed for the old deadline: let it look again (a
        // consumer's nack, which shortens the time, must be redelivered on time).
        self.store
            .waker()
            .notifier(topic, queue_id)
            .notify_waiters();
        Ok(new_pop_time)
    }

    /// Moves one delivery to the group's dead-letter topic at the consumer's request (a FIFO
    /// push consumer that gave up on it).
    ///
    /// # Errors
    /// [`BrokerError::StaleHandle`] as for [`Broker::pop_ack`]; storing the copy failed.
    pub async fn pop_forward_to_dlq(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: u64,
        pop_time: i64,
    ) -> Result<(), BrokerError> {
        let key = QueueKey::new(group, topic, queue_id);
        let entry = self
            .pop
            .lock()
            .state
            .current(&key, offset, pop_time)
            .ok_or_else(|| stale(topic, queue_id, offset))?;
        self.dead_letter(&key, offset, entry).await
    }

    /// Moves messages redelivered `retryMaxTimes` times and expired again to their
    /// group's dead-letter topic, then forgets them; syncs and compacts the journal.
    pub(crate) async fn pop_sweep(&self) {
        if self.role() == Role::Master {
            self.dead_letter_exhausted().await;
        }
        if let Err(e) = self.pop.housekeeping() {
            tracing::warn!(error = %e, "syncing the POP journal failed");
        }
    }

    async fn dead_letter_exhausted(&self) {
        let now = now_ms();
        let exhausted: Vec<(QueueKey, u64, Inflight)> = {
            let inner = self.pop.lock();
            let mut limits = std::collections::HashMap::new();
            let mut out = Vec::new();
            for (key, q) in &inner.state.queues {
                let max = *limits
                    .entry(key.group.clone())
                    .or_insert_with(|| self.max_reconsume(&key.group));
                out.extend(
                    q.due(now)
                        .filter(|(_, i)| i.reconsume >= max)
                        .map(|(o, i)| (key.clone(), o, *i)),
                );
            }
            out
        };
        for (key, offset, entry) in exhausted {
            if let Err(e) = self.dead_letter(&key, offset, entry).await {
                tracing::warn!(group = %key.group, topic = %key.topic, queue = key.queue_id, offset, error = %e, "moving a POP message to its dead-letter queue failed; retrying");
            }
        }
    }

    async fn dead_letter(
        &self,
        key: &QueueKey,
        offset: u64,
        entry: Inflight,
    ) -> Result<(), BrokerError> {
        let record = self
            .store
            .store()
            .read_message(entry.phys)
            .map_err(|e| BrokerError::Internal(e.to_string()))?;
        if let Some(record) = record {
            let (mut original, _) =
                MessageExt::decode(&record).map_err(|e| BrokerError::Internal(e.to_string()))?;
            original.reconsume_times = entry.reconsume;
            let dlq = format!("{DLQ_GROUP_TOPIC_PREFIX}{}", key.group);
            self.resend_to(original, dlq, 0).await?;
            self.metrics.dead_lettered(&key.group, &key.topic);
        }
        // Acked or handed out again meanwhile: that delivery is no longer this one's.
        match self.pop_ack(&key.group, &key.topic, key.queue_id, offset, entry.pop_time) {
            Ok(()) | Err(BrokerError::StaleHandle(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The queues a pop covers, checking the broker's and topic's permissions.
    fn pop_queues(&self, req: &PopRequest) -> Result<Vec<QueueKey>, BrokerError> {
        if self.role() != Role::Master {
            return Err(BrokerError::NotMaster);
        }
        let config = self.config();
        if config.broker_permission & perm::READ == 0 {
            return Err(BrokerError::NoPermission(format!(
                "the broker[{}] pop message is forbidden",
                config.advertised_addr()
            )));
        }
        let topic = self
            .topics
            .get(&req.topic)
            .ok_or_else(|| BrokerError::TopicNotFound(req.topic.clone()))?;
        if topic.perm & perm::READ == 0 {
            return Err(BrokerError::NoPermission(format!(
                "the topic[{}] peeking message is forbidden",
                req.topic
            )));
        }
        if req.queue_id >= topic.read_queue_nums || req.queue_id < -1 {
            return Err(BrokerError::InvalidParameter(format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                req.queue_id, req.topic, topic.read_queue_nums
            )));
        }
        if req.queue_id >= 0 {
            return Ok(vec![QueueKey::new(&req.group, &req.topic, req.queue_id)]);
        }
        let n = topic.read_queue_nums.max(1);
        // Apache 5.4's priority topics: the queue is the priority, looked at in order.
        let priority_topic = topic
            .attributes
            .get("message.type")
            .is_some_and(|t| t == "PRIORITY");
        if priority_topic && !req.fifo {
            let order: Vec<i32> = match config.priority_order_asc {
                true => (0..n).rev().collect(),
                false => (0..n).collect(),
            };
            return Ok(order
                .into_iter()
                .map(|q| QueueKey::new(&req.group, &req.topic, q))
                .collect());
        }
        // From a random queue, so that consumers of one group spread over the queues.
        let start = rand::thread_rng().gen_range(0..n);
        let keys: Vec<QueueKey> = (0..n)
            .map(|i| QueueKey::new(&req.group, &req.topic, (start + i) % n))
            .collect();
        Ok(keys)
    }

    fn max_reconsume(&self, group: &str) -> i32 {
        self.groups
            .get(group)
            .map_or(crate::processor::DEFAULT_MAX_RECONSUME_TIMES, |g| {
                g.retry_max_times
            })
    }

    /// One look at every queue, handing out what is there.
    fn pop_pass(
        &self,
        req: &PopRequest,
        queues: &[QueueKey],
        max_reconsume: i32,
    ) -> Result<Pass, BrokerError> {
        let mut pass = Pass {
            messages: Vec::new(),
            next_visible_at: None,
        };
        let max = req.max_msgs.clamp(1, MAX_POP_MESSAGES);
        let now = now_ms();
        for key in queues {
            if pass.messages.len() >= max {
                break;
            }
            let room = max - pass.messages.len();
            let visible_at =
                self.pop_queue(req, key, now, room, max_reconsume, &mut pass.messages)?;
            pass.next_visible_at = match (pass.next_visible_at, visible_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(pass)
    }

    /// Hands out up to `room` messages of one queue: those visible again first, then new
    /// ones. Returns when the queue's next hidden message becomes visible.
    fn pop_queue(
        &self,
        req: &PopRequest,
        key: &QueueKey,
        now: i64,
        room: usize,
        max_reconsume: i32,
        out: &mut Vec<PoppedMessage>,
    ) -> Result<Option<i64>, BrokerError> {
        let store = self.store.store();
        let mut inner = self.pop.lock();
        if !inner.state.queues.contains_key(key) {
            let start = self.initial_pop_offset(key);
            inner.state.queues.entry(key.clone()).or_default().next = start;
        }
        let q = &inner.state.queues[key];
        if req.fifo && q.fifo_blocked(now) {
            return Ok(q.next_visible_at());
        }
        let before = q.committed();
        let mut events = Vec::new();
        let mut handed = Vec::new();
        // A FIFO queue whose first hidden message waits for the dead-letter sweep hands
        // out nothing after it.
        let mut hold = false;
        let invisible = req.invisible_ms.max(0);
        for (offset, entry) in q.due(now) {
            if handed.len() >= room {
                break;
            }
            // Every message of one answer shares its pop time; one popped again within
            // the same millisecond waits for the next.
            if entry.pop_time >= now {
                continue;
            }
            if entry.reconsume >= max_reconsume {
                hold |= req.fifo;
                if hold {
                    break;
                }
                continue;
            }
            match store.read_message(entry.phys) {
                Ok(Some(record)) => {
                    let (message, _) = MessageExt::decode(&record)
                        .map_err(|e| BrokerError::Internal(e.to_string()))?;
                    let again = Inflight {
                        pop_time: now,
                        visible_at: now + invisible,
                        reconsume: entry.reconsume + 1,
                        ..*entry
                    };
                    events.push(Event::Popped {
                        key: key.clone(),
                        offset,
                        entry: again,
                    });
                    handed.push((message, again));
                }
                // Gone with its commit-log file: nothing left to deliver.
                Ok(None) => events.push(Event::Acked {
                    key: key.clone(),
                    offset,
                }),
                Err(e) => return Err(BrokerError::Internal(e.to_string())),
            }
        }
        if !hold && handed.len() < room {
            let accept = |tag: i64| req.filter.accepts_code(tag);
            let got = store
                .get_messages(
                    &key.topic,
                    key.queue_id,
                    q.next,
                    room - handed.len(),
                    MAX_POP_BYTES,
                    &accept,
                )
                .map_err(|e| BrokerError::Internal(e.to_string()))?;
            for record in got.messages {
                if req.filter.needs_properties()
                    && !record_properties(&record).is_some_and(|p| req.filter.accepts_properties(p))
                {
                    continue;
                }
                let (m, _) = MessageExt::decode(&record)
                    .map_err(|e| BrokerError::Internal(e.to_string()))?;
                let entry = Inflight {
                    phys: m.commit_log_offset as u64,
                    pop_time: now,
                    visible_at: now + invisible,
                    reconsume: m.reconsume_times,
                };
                events.push(Event::Popped {
                    key: key.clone(),
                    offset: m.queue_offset as u64,
                    entry,
                });
                handed.push((m, entry));
            }
            if got.next_begin_offset > q.next {
                events.push(Event::Advanced {
                    key: key.clone(),
                    next: got.next_begin_offset,
                });
            }
        }
        inner.record(&events).map_err(journal_failed)?;
        self.commit_pop_offset(&inner.state, key, before);
        let next_visible = inner.state.queues[key].next_visible_at();
        drop(inner);
        out.extend(handed.into_iter().map(|(mut message, entry)| {
            message.reconsume_times = entry.reconsume;
            PoppedMessage {
                message,
                pop_time: entry.pop_time,
                invisible_ms: invisible,
            }
        }));
        Ok(next_visible)
    }

    /// Where a group's first pop of a queue starts: its committed offset, else (as
    /// Apache with `initPopOffsetByCheckMsgInMem`) the queue's start while it still holds
    /// its first message, else its end.
    fn initial_pop_offset(&self, key: &QueueKey) -> u64 {
        if let Some(o) = self
            .offsets
            .query(&key.group, &key.topic, key.queue_id)
            .filter(|o| *o >= 0)
        {
            return o as u64;
        }
        let store = self.store.store();
        match store.min_offset(&key.topic, key.queue_id) {
            0 => 0,
            _ => store.max_offset(&key.topic, key.queue_id),
        }
    }

    /// Commits the group's offset when acknowledging moved its first unacknowledged
    /// message.
    fn commit_pop_offset(&self, state: &super::state::PopState, key: &QueueKey, before: u64) {
        let after = committed(state, key);
        if after != before {
            self.offsets
                .commit(&key.group, &key.topic, key.queue_id, after as i64);
        }
    }
}

fn committed(state: &super::state::PopState, key: &QueueKey) -> u64 {
    state.queues.get(key).map_or(0, |q| q.committed())
}

fn stale(topic: &str, queue_id: i32, offset: u64) -> BrokerError {
    BrokerError::StaleHandle(format!(
        "no delivery of {topic} queue {queue_id} offset {offset} with this pop time is awaiting an ack"
    ))
}

fn journal_failed(e: std::io::Error) -> BrokerError {
    BrokerError::Internal(format!("writing the POP journal failed: {e}"))
}
