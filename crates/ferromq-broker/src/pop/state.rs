//! The POP bookkeeping of every (group, topic, queue), as pure data: what was handed out,
//! until when it is invisible, how often it was delivered. No I/O here; the journal
//! records each change as one [`Event`] and replays them into the same state.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

/// One queue as one consumer group pops it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub group: Arc<str>,
    pub topic: Arc<str>,
    pub queue_id: i32,
}

impl QueueKey {
    pub fn new(group: &str, topic: &str, queue_id: i32) -> Self {
        QueueKey {
            group: group.into(),
            topic: topic.into(),
            queue_id,
        }
    }
}

/// A message handed out and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflight {
    /// Where the record sits in the commit log, to deliver it again without the queue.
    pub phys: u64,
    /// When it was last handed out (ms): the receipt handle's generation. A handle naming
    /// an older pop time is stale.
    pub pop_time: i64,
    /// When it becomes visible again unless acknowledged (ms).
    pub visible_at: i64,
    /// Reconsume times as last delivered (the record's own plus redeliveries here).
    pub reconsume: i32,
}

/// One queue's POP position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueState {
    /// The first offset never handed out (nor skipped by a filter).
    pub next: u64,
    pub inflight: BTreeMap<u64, Inflight>,
}

impl QueueState {
    /// Everything below this is acknowledged (or was filtered out): the offset a pull
    /// consumer of the same group would resume from.
    pub fn committed(&self) -> u64 {
        self.inflight
            .keys()
            .next()
            .copied()
            .map_or(self.next, |first| first.min(self.next))
    }

    /// FIFO: the queue is held while anything handed out is still invisible.
    pub fn fifo_blocked(&self, now: i64) -> bool {
        self.inflight.values().any(|i| i.visible_at > now)
    }

    /// Handed-out messages visible again, in queue order.
    pub fn due(&self, now: i64) -> impl Iterator<Item = (u64, &Inflight)> {
        self.inflight
            .iter()
            .filter(move |(_, i)| i.visible_at <= now)
            .map(|(o, i)| (*o, i))
    }

    /// When the next in-flight message becomes visible again.
    pub fn next_visible_at(&self) -> Option<i64> {
        self.inflight.values().map(|i| i.visible_at).min()
    }
}

/// One change to the POP state: a journal line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Handed out (first time or again).
    Popped {
        key: QueueKey,
        offset: u64,
        entry: Inflight,
    },
    /// The cursor moved past offsets handed out or filtered out.
    Advanced { key: QueueKey, next: u64 },
    /// Acknowledged, or moved to the dead-letter queue.
    Acked { key: QueueKey, offset: u64 },
    /// A new invisible time, with a new pop time (the old handle no longer acks).
    Changed {
        key: QueueKey,
        offset: u64,
        pop_time: i64,
        visible_at: i64,
    },
    /// The group's position was moved (offset reset): everything handed out is forgotten.
    Reset { key: QueueKey, next: u64 },
}

impl Event {
    pub fn key(&self) -> &QueueKey {
        match self {
            Event::Popped { key, .. }
            | Event::Advanced { key, .. }
            | Event::Acked { key, .. }
            | Event::Changed { key, .. }
            | Event::Reset { key, .. } => key,
        }
    }

    /// Appends the journal line (with its newline). Group and topic names never hold
    /// whitespace: both are validated against Apache's character set.
    pub fn write_line(&self, out: &mut String) {
        let k = self.key();
        let head = |out: &mut String, tag: char| {
            let _ = write!(out, "{tag} {} {} {}", k.group, k.topic, k.queue_id);
        };
        match self {
            Event::Popped { offset, entry, .. } => {
                head(out, 'P');
                let _ = write!(
                    out,
                    " {offset} {} {} {} {}",
                    entry.phys, entry.pop_time, entry.visible_at, entry.reconsume
                );
            }
            Event::Advanced { next, .. } => {
                head(out, 'N');
                let _ = write!(out, " {next}");
            }
            Event::Acked { offset, .. } => {
                head(out, 'A');
                let _ = write!(out, " {offset}");
            }
            Event::Changed {
                offset,
                pop_time,
                visible_at,
                ..
            } => {
                head(out, 'C');
                let _ = write!(out, " {offset} {pop_time} {visible_at}");
            }
            Event::Reset { next, .. } => {
                head(out, 'R');
                let _ = write!(out, " {next}");
            }
        }
        out.push('\n');
    }

    /// Parses one journal line (without its newline); `None` for anything malformed.
    pub fn parse_line(line: &str) -> Option<Event> {
        let mut f = line.split(' ');
        let tag = f.next()?;
        let key = QueueKey::new(f.next()?, f.next()?, f.next()?.parse().ok()?);
        let mut num = || f.next()?.parse::<i64>().ok();
        let event = match tag {
            "P" => {
                let offset = u64::try_from(num()?).ok()?;
                let entry = Inflight {
                    phys: u64::try_from(num()?).ok()?,
                    pop_time: num()?,
                    visible_at: num()?,
                    reconsume: i32::try_from(num()?).ok()?,
                };
                Event::Popped { key, offset, entry }
            }
            "N" => Event::Advanced {
                key,
                next: u64::try_from(num()?).ok()?,
            },
            "A" => Event::Acked {
                key,
                offset: u64::try_from(num()?).ok()?,
            },
            "C" => Event::Changed {
                key,
                offset: u64::try_from(num()?).ok()?,
                pop_time: num()?,
                visible_at: num()?,
            },
            "R" => Event::Reset {
                key,
                next: u64::try_from(num()?).ok()?,
            },
            _ => return None,
        };
        // Trailing fields mean a line from elsewhere, not ours.
        f.next().is_none().then_some(event)
    }
}

/// Every queue's POP state.
#[derive(Debug, Default)]
pub struct PopState {
    pub queues: HashMap<QueueKey, QueueState>,
}

impl PopState {
    /// The delivery of `offset` awaiting an ack, if its pop time is `pop_time` (the
    /// receipt handle naming it is current).
    pub fn current(&self, key: &QueueKey, offset: u64, pop_time: i64) -> Option<Inflight> {
        self.queues
            .get(key)
            .and_then(|q| q.inflight.get(&offset))
            .copied()
            .filter(|i| i.pop_time == pop_time)
    }

    /// Applies one event. Replaying a journal twice over a snapshot gives the same state:
    /// every event sets absolute values for its key.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Popped { key, offset, entry } => {
                let q = self.queues.entry(key.clone()).or_default();
                q.inflight.insert(*offset, *entry);
                q.next = q.next.max(offset + 1);
            }
            Event::Advanced { key, next } => {
                let q = self.queues.entry(key.clone()).or_default();
                q.next = q.next.max(*next);
            }
            Event::Acked { key, offset } => {
                if let Some(q) = self.queues.get_mut(key) {
                    q.inflight.remove(offset);
                }
            }
            Event::Changed {
                key,
                offset,
                pop_time,
                visible_at,
            } => {
                if let Some(i) = self
                    .queues
                    .get_mut(key)
                    .and_then(|q| q.inflight.get_mut(offset))
                {
                    i.pop_time = *pop_time;
                    i.visible_at = *visible_at;
                }
            }
            Event::Reset { key, next } => {
                self.queues.insert(
                    key.clone(),
                    QueueState {
                        next: *next,
                        inflight: BTreeMap::new(),
                    },
                );
            }
        }
    }

    /// The events that rebuild this state from nothing (a snapshot).
    pub fn snapshot_events(&self) -> impl Iterator<Item = Event> + '_ {
        self.queues.iter().flat_map(|(key, q)| {
            std::iter::once(Event::Reset {
                key: key.clone(),
                next: q.next,
            })
            .chain(q.inflight.iter().map(|(offset, entry)| Event::Popped {
                key: key.clone(),
                offset: *offset,
                entry: *entry,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> QueueKey {
        QueueKey::new("g", "t", 3)
    }

    fn popped(offset: u64, pop_time: i64, visible_at: i64) -> Event {
        Event::Popped {
            key: key(),
            offset,
            entry: Inflight {
                phys: offset * 100,
                pop_time,
                visible_at,
                reconsume: 0,
            },
        }
    }

    #[test]
    fn lines_round_trip_and_malformed_lines_are_refused() {
        let events = [
            popped(7, 1000, 31_000),
            Event::Advanced {
                key: key(),
                next: 9,
            },
            Event::Acked {
                key: key(),
                offset: 7,
            },
            Event::Changed {
                key: key(),
                offset: 8,
                pop_time: 5,
                visible_at: 6,
            },
            Event::Reset {
                key: key(),
                next: 2,
            },
        ];
        for e in &events {
            let mut line = String::new();
            e.write_line(&mut line);
            assert_eq!(
                Event::parse_line(line.trim_end()).as_ref(),
                Some(e),
                "{line}"
            );
        }
        for bad in [
            "",
            "P g t",
            "P g t x 1 2 3 4 5",
            "P g t 1 -1 2 3 4 5",
            "A g t 1 2 3",
            "Z g t 1 2",
            "N g t 1",
            "C g t 1 2 3",
        ] {
            assert_eq!(Event::parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn committed_is_the_first_unacknowledged_offset() {
        let mut s = PopState::default();
        for o in 0..4 {
            s.apply(&popped(o, 1, 10));
        }
        s.apply(&Event::Advanced {
            key: key(),
            next: 6,
        });
        let q = &s.queues[&key()];
        assert_eq!((q.next, q.committed()), (6, 0));
        s.apply(&Event::Acked {
            key: key(),
            offset: 1,
        });
        s.apply(&Event::Acked {
            key: key(),
            offset: 0,
        });
        assert_eq!(s.queues[&key()].committed(), 2);
        for o in 2..4 {
            s.apply(&Event::Acked {
                key: key(),
                offset: o,
            });
        }
        assert_eq!(s.queues[&key()].committed(), 6);
    }

    #[test]
    fn fifo_holds_the_queue_until_everything_is_visible_again() {
        let mut s = PopState::default();
        s.apply(&popped(0, 1, 10));
        s.apply(&popped(1, 1, 20));
        let q = &s.queues[&key()];
        assert!(q.fifo_blocked(15));
        assert_eq!(q.due(15).map(|(o, _)| o).collect::<Vec<_>>(), vec![0]);
        assert!(!q.fifo_blocked(20));
        assert_eq!(q.next_visible_at(), Some(10));
    }

    #[test]
    fn a_replayed_journal_over_its_snapshot_gives_the_same_state() {
        let journal = [
            popped(0, 1, 10),
            popped(1, 1, 10),
            Event::Advanced {
                key: key(),
                next: 5,
            },
            Event::Acked {
                key: key(),
                offset: 0,
            },
            Event::Changed {
                key: key(),
                offset: 1,
                pop_time: 4,
                visible_at: 40,
            },
        ];
        let mut direct = PopState::default();
        journal.iter().for_each(|e| direct.apply(e));
        let mut again = PopState::default();
        direct.snapshot_events().for_each(|e| again.apply(&e));
        journal.iter().for_each(|e| again.apply(e));
        assert_eq!(direct.queues, again.queues);
    }
}
