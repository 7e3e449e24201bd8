//! POP consumption: the broker, not the client, decides which messages a consumer of a
//! group gets. It hands messages out, hides each for an *invisible time*, and hands it out
//! again (reconsume times + 1) unless it is acknowledged first; after the group's
//! `retryMaxTimes` redeliveries it goes to `%DLQ%<group>`. Used by the remoting POP
//! requests (200050–200151) and by the gRPC front's ReceiveMessage, Ack and
//! ChangeInvisibleDuration.
//!
//! # Design (FerroMQ's own; Apache keeps this in a revive topic)
//! Apache writes a checkpoint message for every pop and an ack message for every ack into
//! `rmq_sys_REVIVE_LOG_<cluster>`, and a revive service matches them up and *copies*
//! whatever expired into the retry topic. FerroMQ redelivers messages *in place* instead:
//! - For each (group, topic, queue) the broker keeps `next`, the first offset never handed
//!   out, and the messages handed out and not yet acknowledged, each with its commit-log
//!   position, pop time, the time it becomes visible again and its reconsume count
//!   ([`state`]). A message whose time has come is read again from the commit log and
//!   handed out with a new pop time; no copy is written, so a redelivery costs no I/O
//!   beyond a journal line.
//! - The consumer offset of the group is the first offset not yet acknowledged, committed
//!   to the ordinary offset table, so `consumerProgress`, lag and the dashboard see POP
//!   groups like any other, and a pull consumer of the group resumes there.
//! - Every change is one line of a journal written before the answer leaves
//!   ([`journal`]): a SIGKILL loses nothing the client heard of. After a crash, acked
//!   messages stay acked, handed-out ones keep their invisible time, and a pop whose line
//!   never reached the journal is simply handed out again (at most once per crash). The
//!   journal is folded into a snapshot when it grows past 32 MiB.
//! - A receipt handle names (topic, queue, offset, pop time). Only the latest pop time of a
//!   message acks or renews it: a handle whose message was renewed or handed out again is
//!   stale, so an ack can never remove a later delivery.
//! - FIFO (`consumeMessageOrderly` groups): a queue with anything handed out and still
//!   invisible hands out nothing; when those become visible they come first, in order.
//! - Messages past `retryMaxTimes` are stored on `%DLQ%<group>` first and forgotten after,
//!   by a once-a-second sweep; a crash between the two leaves one extra DLQ copy, never a
//!   loss.

pub mod journal;
mod ops;
pub mod state;

pub use ops::{PopRequest, PoppedMessage, MAX_POP_MESSAGES};

use std::path::Path;
use std::sync::Mutex;

use journal::Journal;
use state::{Event, PopState};

/// The POP state and its journal, behind one lock: a pop reads its queue and records
/// what it handed out as one step, so two consumers never get the same message.
pub struct PopService {
    inner: Mutex<Inner>,
}

struct Inner {
    state: PopState,
    journal: Journal,
}

impl Inner {
    /// Journals then applies; nothing changes when the write fails.
    fn record(&mut self, events: &[Event]) -> std::io::Result<()> {
        self.journal.append(events)?;
        for e in events {
            self.state.apply(e);
        }
        Ok(())
    }
}

impl PopService {
    /// Loads the state under `<root>/pop`.
    ///
    /// # Errors
    /// The directory cannot be read or created.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let (journal, recovered) = Journal::open(&root.join("pop"))?;
        let inflight: usize = recovered
            .state
            .queues
            .values()
            .map(|q| q.inflight.len())
            .sum();
        if inflight > 0 {
            tracing::info!(
                queues = recovered.state.queues.len(),
                inflight,
                "POP state recovered"
            );
        }
        Ok(PopService {
            inner: Mutex::new(Inner {
                state: recovered.state,
                journal,
            }),
        })
    }

    /// Per (group, topic, queue): the next offset to hand out and how many handed-out
    /// messages await their acknowledgement, for the metrics.
    pub fn progress(&self) -> Vec<(state::QueueKey, u64, usize)> {
        self.lock()
            .state
            .queues
            .iter()
            .map(|(k, q)| (k.clone(), q.next, q.inflight.len()))
            .collect()
    }

    /// The message at `offset` as handed out to `group` and not yet acknowledged.
    pub fn inflight_at(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: u64,
    ) -> Option<state::Inflight> {
        let key = state::QueueKey::new(group, topic, queue_id);
        self.lock()
            .state
            .queues
            .get(&key)
            .and_then(|q| q.inflight.get(&offset).copied())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("POP state lock")
    }

    /// Syncs the journal and folds it into a snapshot when it has grown.
    pub fn housekeeping(&self) -> std::io::Result<()> {
        let mut inner = self.lock();
        inner.journal.sync()?;
        if inner.journal.needs_compaction() {
            let Inner { state, journal } = &mut *inner;
            journal.compact(state)?;
        }
        Ok(())
    }
}
