//! The replica-facing side of the store: raw commit-log bytes out (for a master to send)
//! and in (for a slave to append), with the slave rebuilding queue and index entries from
//! what it receives as recovery does. Sockets and frames live in `ferromq-ha`.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::commit_log::{parse_head, record_is_valid, Head, BLANK_BYTES};
use crate::epoch::EpochEntry;
use crate::{MessageStore, StoreError};

impl MessageStore {
    /// Commit-log bytes from `from`, at most `max` and never past the end of `from`'s
    /// segment (a replica frame lies in one segment, as Apache's do). Only what the
    /// appender has finished with is served: a batch rolled back after a failed write is
    /// never seen by a replica. Empty when there is nothing new.
    ///
    /// # Errors
    /// [`StoreError::LogOffsetGone`] when `from` was deleted by retention.
    pub fn read_log(&self, from: u64, max: usize) -> Result<Bytes, StoreError> {
        let min = self.commit_log.min_offset();
        if from < min {
            return Err(StoreError::LogOffsetGone { offset: from, min });
        }
        let end = self.dispatched_offset.load(Ordering::Acquire);
        if from >= end {
            return Ok(Bytes::new());
        }
        let segment = self.commit_log.segment_bytes();
        let segment_end = from - from % segment + segment;
        let to = end.min(segment_end).min(from.saturating_add(max as u64));
        Ok(self
            .commit_log
            .read(from, (to - from) as usize)?
            .unwrap_or_default())
    }

    /// The epochs of this log, oldest first.
    pub fn epochs(&self) -> Vec<EpochEntry> {
        self.epochs.lock().expect("epochs lock").entries().to_vec()
    }

    /// Records that a master's `epoch` wrote from `start` on, as a replica learns it from
    /// its master. `false` (nothing recorded) unless both are past the last entry.
    pub fn record_epoch(&self, epoch: i32, start: u64) -> Result<bool, StoreError> {
        self.epochs
            .lock()
            .expect("epochs lock")
            .append(epoch, start)
    }

    /// Where the whole records end: a partly received record is not counted.
    pub fn complete_offset(&self) -> u64 {
        self.dispatched_offset.load(Ordering::Acquire)
    }

    /// This broker becomes the master of `epoch`: a partly received record is dropped, the
    /// epoch starts where the log now ends, and reads may go that far. Epochs at or past that point that wrote
    /// nothing are superseded (an epoch list strictly increasing in both fields).
    pub fn begin_epoch(&self, epoch: i32) -> Result<(), StoreError> {
        self.truncate_log(self.complete_offset())?;
        let end = self.replica_offset();
        let mut epochs = self.epochs.lock().expect("epochs lock");
        let kept: Vec<EpochEntry> = epochs
            .entries()
            .iter()
            .copied()
            .filter(|e| e.epoch < epoch && e.start < end)
            .collect();
        if kept.len() != epochs.entries().len() {
            epochs.replace(kept)?;
        }
        epochs.append(epoch, end)?;
        // What the new master held is the group's log now: all of it readable. Past it,
        // the broker moves the limit as the in-sync brokers acknowledge.
        self.read_limit.store(end, Ordering::Release);
        Ok(())
    }

    /// Limits reads to records ending at or before `offset` (the group's confirm offset);
    /// `u64::MAX` lifts the limit.
    pub fn set_read_limit(&self, offset: u64) {
        self.read_limit.store(offset, Ordering::Release);
    }

    /// Where reads stop: the confirm offset, or the log's end when that comes first.
    pub fn read_limit(&self) -> u64 {
        self.read_limit
            .load(Ordering::Acquire)
            .min(self.complete_offset())
    }

    /// Where a replica's copy ends: what it reports to its master.
    pub fn replica_offset(&self) -> u64 {
        self.commit_log.write_offset()
    }

    /// Appends bytes a master sent for commit-log offset `offset`, then dispatches every
    /// record now whole. A record may arrive split over several calls; the part received
    /// waits on disk (recovery drops it if the process stops first). Returns the new end.
    ///
    /// # Errors
    /// [`StoreError::ReplicaOffset`] when `offset` is not where the copy ends (an empty
    /// store takes any segment start); [`StoreError::ReplicaRecord`] when the bytes are not
    /// valid records (the copy is cut back to the last good record); I/O failures.
    pub fn append_log(&self, offset: u64, data: &[u8]) -> Result<u64, StoreError> {
        let _writer = self.write_lock.lock().expect("store write lock");
        let end = self.commit_log.write_offset();
        if offset != end {
            let fresh = end == 0 && self.commit_log.is_empty();
            if !fresh || !offset.is_multiple_of(self.commit_log.segment_bytes()) {
                return Err(StoreError::ReplicaOffset { offset, end });
            }
            self.commit_log.start_at(offset);
            self.dispatched_offset.store(offset, Ordering::Release);
        }
        if data.is_empty() {
            return Ok(offset);
        }
        self.commit_log.write(offset, data)?;
        self.dispatch_received()?;
        Ok(self.commit_log.write_offset())
    }

    /// Cuts the log back to `offset` for good: a replica rejoining under a new master drops
    /// what its old master wrote that the new one never had. `offset` must be a record
    /// boundary. Queue entries past it go too, the cut is synced, and the checkpoint moves
    /// back, so a crash afterwards cannot bring the tail back.
    ///
    /// # Errors
    /// [`StoreError::Unaligned`] when no record starts at `offset` (nor the log end is
    /// there); I/O failures.
    pub fn truncate_log(&self, offset: u64) -> Result<(), StoreError> {
        let _writer = self.write_lock.lock().expect("store write lock");
        let end = self.commit_log.write_offset();
        if offset >= end {
            return Ok(());
        }
        let segment = self.commit_log.segment_bytes();
        let aligned = offset.is_multiple_of(segment)
            || offset == self.dispatched_offset.load(Ordering::Acquire)
            || self.commit_log.read_record(offset)?.is_some();
        if !aligned {
            return Err(StoreError::Unaligned { offset });
        }
        // Queues not open yet drop what they hold past the cut when they open.
        self.stale_from.fetch_min(offset, Ordering::AcqRel);
        for cq in self.all_queues() {
            cq.truncate_from_phys(offset)?;
        }
        self.commit_log.roll_back(offset)?;
        self.commit_log.sync_tail(offset)?;
        self.epochs
            .lock()
            .expect("epochs lock")
            .truncate_from_offset(offset)?;
        self.dispatched_offset.fetch_min(offset, Ordering::AcqRel);
        self.read_limit.fetch_min(offset, Ordering::AcqRel);
        self.write_checkpoint(offset)?;
        Ok(())
    }

    fn dispatch_received(&self) -> Result<(), StoreError> {
        let segment = self.commit_log.segment_bytes();
        let end = self.commit_log.write_offset();
        let mut pos = self.dispatched_offset.load(Ordering::Acquire);
        let outcome = loop {
            if pos >= end || end - pos < BLANK_BYTES {
                break Ok(());
            }
            let Some(head) = self.commit_log.read(pos, BLANK_BYTES as usize)? else {
                break Ok(());
            };
            match parse_head(&head) {
                Head::Blank(size) if pos % segment + size as u64 == segment => {
                    pos = pos - pos % segment + segment;
                }
                Head::Record(size) if pos % segment + size as u64 <= segment => {
                    if end - pos < size as u64 {
                        break Ok(());
                    }
                    let Some(record) = self.commit_log.read(pos, size as usize)? else {
                        break Ok(());
                    };
                    if !record_is_valid(&record, pos) {
                        break Err("record fails its checks or names another offset");
                    }
                    self.redispatch(pos, &record)?;
                    pos += size as u64;
                }
                _ => break Err("no record or segment end marker here"),
            }
        };
        self.dispatched_offset.store(pos, Ordering::Release);
        if let Err(reason) = outcome {
            self.commit_log.roll_back(pos.min(end))?;
            return Err(StoreError::ReplicaRecord {
                offset: pos,
                reason: reason.to_string(),
            });
        }
        Ok(())
    }
}
