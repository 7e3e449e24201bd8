//! Long-polling pulls held until their queue grows or their hold runs out (Apache's
//! `PullRequestHoldService`). A held pull is an entry in one table, not a task: 100 consumer
//! groups over 10,000 topics hold 80,000 of them, and a parked task kept a whole request
//! future each (about 5 KB) where an entry keeps the few hundred bytes needed to answer.
//!
//! The table owns the entries, the queues with news and the deadlines; the broker's hold
//! loop (`Broker::answer_held_pulls`) takes what is due and answers it. Appends mark their
//! queues through [`HeldPulls::wake`]; an entry's owner re-reads its queue after parking,
//! so an append between its read and its parking is never missed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferromq_protocol::header::PullMessageRequestHeader;
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use tokio::sync::Notify;

use crate::filter::MessageFilter;

/// What answering a held pull needs.
pub(crate) struct HeldPull {
    pub conn: Connection,
    /// The request's opaque and serialization, nothing else (`RemotingCommand::response_to`).
    pub reply_to: RemotingCommand,
    pub header: PullMessageRequestHeader,
    pub filter: Arc<MessageFilter>,
    pub offset: u64,
    pub max_msgs: usize,
    pub received: Instant,
    pub deadline: Instant,
    seq: u64,
}

impl HeldPull {
    pub(crate) fn new(
        conn: Connection,
        request: &RemotingCommand,
        header: PullMessageRequestHeader,
        filter: Arc<MessageFilter>,
        offset: u64,
        max_msgs: usize,
        deadline: Instant,
    ) -> Self {
        HeldPull {
            conn,
            reply_to: RemotingCommand {
                code: request.code,
                opaque: request.opaque,
                serialize_type: request.serialize_type,
                ..Default::default()
            },
            header,
            filter,
            offset,
            max_msgs,
            received: Instant::now(),
            deadline,
            seq: 0,
        }
    }
}

type QueueKey = (String, i32);

#[derive(Default)]
struct Table {
    by_queue: HashMap<String, HashMap<i32, Vec<HeldPull>>>,
    /// Queues an append touched since the hold loop last looked.
    woken: HashSet<QueueKey>,
    deadlines: BTreeMap<(Instant, u64), QueueKey>,
    next_seq: u64,
}

impl Table {
    fn take_queue(&mut self, topic: &str, queue_id: i32) -> Vec<HeldPull> {
        let Some(queues) = self.by_queue.get_mut(topic) else {
            return Vec::new();
        };
        let held = queues.remove(&queue_id).unwrap_or_default();
        if queues.is_empty() {
            self.by_queue.remove(topic);
        }
        for h in &held {
            self.deadlines.remove(&(h.deadline, h.seq));
        }
        held
    }

    fn remove(&mut self, topic: &str, queue_id: i32, seq: u64) -> Option<HeldPull> {
        let queues = self.by_queue.get_mut(topic)?;
        let list = queues.get_mut(&queue_id)?;
        let at = list.iter().position(|h| h.seq == seq)?;
        let held = list.swap_remove(at);
        if list.is_empty() {
            queues.remove(&queue_id);
            if queues.is_empty() {
                self.by_queue.remove(topic);
            }
        }
        self.deadlines.remove(&(held.deadline, held.seq));
        Some(held)
    }
}

/// What the hold loop has to answer now.
#[derive(Default)]
pub(crate) struct Due {
    /// Pulls whose queue grew: answered with what they now find, or held again.
    pub woken: Vec<HeldPull>,
    /// Pulls whose hold ran out: answered with what they find, even nothing.
    pub expired: Vec<HeldPull>,
}

/// The held pulls of one broker.
#[derive(Default)]
pub struct HeldPulls {
    table: Mutex<Table>,
    news: Notify,
}

/// Where a parked pull sits, to take it back when its own re-read found messages.
pub(crate) struct Ticket {
    topic: String,
    queue_id: i32,
    seq: u64,
}

impl HeldPulls {
    /// Holds a pull; the caller re-reads its queue afterwards and, when that finds
    /// messages, takes it back with [`take_back`](Self::take_back).
    pub(crate) fn park(&self, mut held: HeldPull) -> Ticket {
        let mut table = self.table.lock().expect("held pulls lock");
        held.seq = table.next_seq;
        table.next_seq += 1;
        let key = (held.header.topic.clone(), held.header.queue_id);
        let ticket = Ticket {
            topic: key.0.clone(),
            queue_id: key.1,
            seq: held.seq,
        };
        let deadline = held.deadline;
        let earliest = table
            .deadlines
            .keys()
            .next()
            .is_none_or(|(first, _)| *first > deadline);
        table.deadlines.insert((deadline, held.seq), key.clone());
        table
            .by_queue
            .entry(key.0)
            .or_default()
            .entry(key.1)
            .or_default()
            .push(held);
        drop(table);
        if earliest {
            // The hold loop sleeps until the earliest deadline; this one is earlier.
            self.news.notify_one();
        }
        ticket
    }

    /// Takes a parked pull back; None when the hold loop already took it to answer.
    pub(crate) fn take_back(&self, ticket: &Ticket) -> Option<HeldPull> {
        self.table.lock().expect("held pulls lock").remove(
            &ticket.topic,
            ticket.queue_id,
            ticket.seq,
        )
    }

    /// Marks queues an append touched; pulls held on them are answered by the hold loop.
    pub(crate) fn wake(&self, touched: &[(&str, i32)]) {
        let mut table = self.table.lock().expect("held pulls lock");
        let mut any = false;
        for (topic, queue_id) in touched {
            let held = table
                .by_queue
                .get(*topic)
                .is_some_and(|q| q.contains_key(queue_id));
            if held {
                table.woken.insert((topic.to_string(), *queue_id));
                any = true;
            }
        }
        drop(table);
        if any {
            self.news.notify_one();
        }
    }

    /// Marks every queue with held pulls (a slave's copy grew).
    pub(crate) fn wake_all(&self) {
        let mut table = self.table.lock().expect("held pulls lock");
        let keys: Vec<QueueKey> = table
            .by_queue
            .iter()
            .flat_map(|(t, q)| q.keys().map(move |id| (t.clone(), *id)))
            .collect();
        let any = !keys.is_empty();
        table.woken.extend(keys);
        drop(table);
        if any {
            self.news.notify_one();
        }
    }

    /// Waits until something may be due: news, or the earliest deadline.
    pub(crate) async fn wait_for_work(&self) {
        let notified = self.news.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let table = self.table.lock().expect("held pulls lock");
            if !table.woken.is_empty() {
                return;
            }
            table.deadlines.keys().next().map(|(at, _)| *at)
        };
        match next {
            Some(at) => {
                let at = tokio::time::Instant::from_std(at);
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => notified.await,
        }
    }

    /// Takes every pull that is due now: those on woken queues, and those past their
    /// deadline. Pulls of closed connections are dropped: nobody waits for their answer.
    pub(crate) fn take_due(&self, now: Instant) -> Due {
        let mut table = self.table.lock().expect("held pulls lock");
        let mut due = Due::default();
        let woken: Vec<QueueKey> = table.woken.drain().collect();
        for (topic, queue_id) in woken {
            due.woken.extend(table.take_queue(&topic, queue_id));
        }
        while let Some(first) = table.deadlines.first_entry() {
            if first.key().0 > now {
                break;
            }
            let ((_, seq), (topic, queue_id)) = first.remove_entry();
            if let Some(held) = table.remove(&topic, queue_id, seq) {
                due.expired.push(held);
            }
        }
        drop(table);
        due.woken.retain(|h| !h.conn.is_closed());
        due.expired.retain(|h| !h.conn.is_closed());
        due
    }
}
