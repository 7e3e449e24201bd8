//! `MessageStore`: the commit log, consume queues and index behind one synchronous API.
//! One appender at a time (the write lock); reads run concurrently with it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use ferromq_protocol::message::{patch_record, property, tag_hash, MessageExt};
use tracing::{info, warn};

use crate::checkpoint::{self, Checkpoint};
use crate::commit_log::{record_is_valid, CommitLog};
use crate::consume_queue::{ConsumeQueue, CqEntry, Deferral, WriteOut};
use crate::file_cache::FileCache;
use crate::index::{key_hash, Index};
use crate::{io_err, now_ms, StoreConfig, StoreError};

/// Consume-queue entries one pull may scan past when a filter rejects them.
const MAX_SCAN_ENTRIES: usize = 2000;

type QueueKey = (String, i32);

/// Queues with unsynced entries up to which a checkpoint fsyncs their files one by one;
/// beyond, one `syncfs` is cheaper (each `fsync` is a journal commit: 100,000 queues took
/// 30 s to checkpoint one by one).
const SYNC_QUEUES_ONE_BY_ONE: usize = 64;

/// What the periodic checkpoint may leave unwritten in a queue (see
/// [`MessageStore::checkpoint_lazily`]): up to this many entries per queue, none older than
/// `DEFER_MS`, none further back in the log than `DEFER_LOG_BYTES` (what a restart after a
/// crash re-reads because of them), and this many in all (32 bytes each in memory).
const DEFER_ENTRIES_PER_QUEUE: usize = 16;
const DEFER_MS: i64 = 30_000;
const DEFER_LOG_BYTES: u64 = 256 << 20;
const DEFER_ENTRIES_IN_ALL: usize = 1 << 20;

/// A message ready to append: its encoded record (offsets and store time are filled in
/// by the store) and what the consume queue and index need.
#[derive(Debug)]
pub struct PutMessage {
    pub topic: String,
    pub queue_id: i32,
    pub tag_code: i64,
    /// Index keys (without the topic prefix): each KEYS entry and the UNIQ_KEY.
    pub keys: Vec<String>,
    pub record: BytesMut,
}

impl PutMessage {
    /// Derives tag code and index keys from the message properties.
    pub fn new(topic: String, queue_id: i32, properties: &str, record: BytesMut) -> Self {
        let (tag_code, keys) = dispatch_info(properties);
        PutMessage {
            topic,
            queue_id,
            tag_code,
            keys,
            record,
        }
    }
}

/// Property holding a due time (ms): delayed and timer messages carry it, and their
/// consume-queue tag slot holds the due time instead of a tag hash, so schedulers can
/// tell what is due from the queue alone.
pub const DUE_TIME_PROPERTY: &str = "TIMER_OUT_MS";

fn dispatch_info(properties: &str) -> (i64, Vec<String>) {
    let tag_code = match property(properties, DUE_TIME_PROPERTY).and_then(|d| d.parse::<i64>().ok())
    {
        Some(due_ms) => due_ms,
        None => property(properties, "TAGS").map(tag_hash).unwrap_or(0),
    };
    let mut keys: Vec<String> = property(properties, "KEYS")
        .map(|k| {
            k.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(uniq) = property(properties, "UNIQ_KEY") {
        keys.push(uniq.to_string());
    }
    (tag_code, keys)
}

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub phys_offset: u64,
    pub queue_offset: u64,
    pub record_bytes: u32,
    pub store_ms: i64,
    /// Commit-log offset just past this entry: it is durable once the flushed offset
    /// reaches it.
    pub end_offset: u64,
}

/// Outcome of a read from a queue, named as Apache's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMessageInQueue,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
    NoMatchedMessage,
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    pub next_begin_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// Whole records, each verified against its CRC.
    pub messages: Vec<Bytes>,
}

/// One consume-queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEntry {
    /// Logical offset in the queue.
    pub offset: u64,
    /// Commit-log offset of the entry.
    pub phys: u64,
    /// Record size in bytes.
    pub size: u32,
    /// Tag hash, or the due time for delayed and timer messages.
    pub tag: i64,
    pub store_ms: i64,
}

/// Offsets of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub topic: String,
    pub queue_id: i32,
    pub min_offset: u64,
    pub max_offset: u64,
    pub last_store_ms: Option<i64>,
}

pub struct MessageStore {
    config: StoreConfig,
    pub(crate) commit_log: CommitLog,
    /// The queues opened since start.
    queues: RwLock<HashMap<QueueKey, Arc<ConsumeQueue>>>,
    /// Queues found on disk at start and not opened since: each is opened on first use,
    /// so a start costs no work per idle queue.
    unopened: Mutex<HashSet<QueueKey>>,
    /// A queue opened after start drops its entries at or past this commit-log offset:
    /// recovery rebuilt every queue the log holds records for past it, by then open; what
    /// another queue holds there is stale (a torn tail, a replica's truncation).
    pub(crate) stale_from: AtomicU64,
    /// The consume-queue files' open handles, bounded (`StoreConfig::open_queue_files`).
    queue_files: Arc<FileCache>,
    index: Index,
    pub(crate) write_lock: Mutex<()>,
    /// Commit-log offset below which every record's queue and index entries are written.
    pub(crate) dispatched_offset: AtomicU64,
    checkpoint_lock: Mutex<()>,
    pub(crate) epochs: Mutex<crate::epoch::EpochFile>,
    /// Reads see no record ending past this commit-log offset: in controller mode, the
    /// group's confirm offset, so that no consumer sees a record an election could still
    /// cut away. `u64::MAX` (the default): no limit.
    pub(crate) read_limit: AtomicU64,
    _lock_file: File,
}

fn queue_dir(root: &Path, topic: &str, queue_id: i32) -> PathBuf {
    root.join("consumequeue")
        .join(topic)
        .join(queue_id.to_string())
}

impl MessageStore {
    /// Opens (creating if needed) the store and recovers it: the commit log is verified
    /// from the checkpoint on, a torn tail is truncated, and queue and index entries past
    /// the checkpoint are rebuilt.
    ///
    /// # Errors
    /// I/O failures, or another process holding the directory.
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let root = config.root.clone();
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let lock_path = root.join("lock");
        let lock_file = File::create(&lock_path).map_err(io_err(&lock_path))?;
        if lock_file.try_lock().is_err() {
            return Err(StoreError::Locked { path: root });
        }
        let cp = checkpoint::load(&root);
        let commit_log = CommitLog::open(&config.commit_log_path(), config.segment_bytes)?;
        commit_log.check_layout()?;
        let index = Index::open(
            &root.join("index"),
            config.index_slots,
            config.index_entries,
        )?;
        let queue_files = Arc::new(FileCache::new(config.open_queue_files));
        let store = MessageStore {
            queues: RwLock::new(HashMap::new()),
            unopened: Mutex::new(Self::queues_on_disk(&root)),
            stale_from: AtomicU64::new(u64::MAX),
            queue_files,
            config,
            commit_log,
            index,
            write_lock: Mutex::new(()),
            dispatched_offset: AtomicU64::new(0),
            checkpoint_lock: Mutex::new(()),
            epochs: Mutex::new(crate::epoch::EpochFile::open(&root)?),
            read_limit: AtomicU64::new(u64::MAX),
            _lock_file: lock_file,
        };
        store.recover(cp)?;
        Ok(store)
    }

    /// The queues the store's directory holds (listed, not opened).
    fn queues_on_disk(root: &Path) -> HashSet<QueueKey> {
        let mut queues = HashSet::new();
        let Ok(topics) = std::fs::read_dir(root.join("consumequeue")) else {
            return queues;
        };
        for topic in topics.flatten() {
            let Some(topic_name) = topic.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(qdirs) = std::fs::read_dir(topic.path()) else {
                continue;
            };
            for q in qdirs.flatten() {
                if let Some(qid) = q.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                    queues.insert((topic_name.clone(), qid));
                }
            }
        }
        queues
    }

    fn recover(&self, cp: Checkpoint) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let from = cp.consistent_offset;
        // Queues open as the scan below reaches their records, dropping what they held
        // from the checkpoint on; the others open when first used.
        self.stale_from.store(from, Ordering::Release);
        let mut rebuilt = 0u64;
        let mut failure = None;
        let end = self.commit_log.recover(from, &mut |phys, record| {
            if failure.is_some() {
                return;
            }
            match self.redispatch(phys, record) {
                Ok(()) => rebuilt += 1,
                Err(e) => failure = Some(e),
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.dispatched_offset.store(end, Ordering::Release);
        // No checkpoint here: the rebuilt entries reach disk with the next periodic one,
        // after the broker serves (writing out thousands of queues first would delay it by
        // seconds), and until then another crash rebuilds them again from the same log.
        info!(
            from,
            end,
            rebuilt,
            queues_opened = self.queues.read().expect("queues lock").len(),
            queues_unopened = self.unopened.lock().expect("unopened queues lock").len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store recovered"
        );
        Ok(())
    }

    pub(crate) fn redispatch(&self, phys: u64, record: &[u8]) -> Result<(), StoreError> {
        let Ok((msg, _)) = MessageExt::decode(record) else {
            warn!(phys, "record with a valid CRC does not decode; skipped");
            return Ok(());
        };
        let (tag_code, keys) = dispatch_info(&msg.properties);
        let cq = self.queue(&msg.topic, msg.queue_id)?;
        if cq.max_offset() == 0 {
            cq.start_at(msg.queue_offset as u64);
        }
        if cq.max_offset() != msg.queue_offset as u64 {
            warn!(topic = %msg.topic, queue_id = msg.queue_id, expected = cq.max_offset(), found = msg.queue_offset,
                "queue offset gap while rebuilding; appending at the queue's end");
        }
        cq.append(&[CqEntry {
            phys,
            size: record.len() as u32,
            tag: tag_code,
            store_ms: msg.store_timestamp,
        }])?;
        let items: Vec<(u32, u64, i64)> = keys
            .iter()
            .map(|k| (key_hash(&msg.topic, k), phys, msg.store_timestamp))
            .collect();
        self.index.put_batch(&items)?;
        Ok(())
    }

    fn queue(&self, topic: &str, queue_id: i32) -> Result<Arc<ConsumeQueue>, StoreError> {
        if let Some(q) = self
            .queues
            .read()
            .expect("queues lock")
            .get(&(topic.to_string(), queue_id))
        {
            return Ok(q.clone());
        }
        let mut queues = self.queues.write().expect("queues lock");
        let key = (topic.to_string(), queue_id);
        if let Some(q) = queues.get(&key) {
            return Ok(q.clone());
        }
        let dir = queue_dir(&self.config.root, topic, queue_id);
        let q = Arc::new(ConsumeQueue::open(
            &dir,
            self.config.consume_queue_file_entries,
            self.queue_files.clone(),
        )?);
        // Checked against the log as recovery would have: nothing stale past the cut,
        // nothing below the log's start (retention may have run while it was closed).
        q.truncate_from_phys(self.stale_from.load(Ordering::Acquire))?;
        q.drop_below_phys(self.commit_log.min_offset())?;
        self.unopened
            .lock()
            .expect("unopened queues lock")
            .remove(&key);
        queues.insert(key, q.clone());
        Ok(q)
    }

    fn existing_queue(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        let key = (topic.to_string(), queue_id);
        if let Some(q) = self.queues.read().expect("queues lock").get(&key) {
            return Some(q.clone());
        }
        if !self
            .unopened
            .lock()
            .expect("unopened queues lock")
            .contains(&key)
        {
            return None;
        }
        match self.queue(topic, queue_id) {
            Ok(q) => Some(q),
            Err(e) => {
                warn!(topic, queue_id, error = %e, "opening a queue failed");
                None
            }
        }
    }

    /// Opens every queue still unopened (retention and listings need them all).
    fn open_all_queues(&self) -> Result<(), StoreError> {
        let keys: Vec<QueueKey> = self
            .unopened
            .lock()
            .expect("unopened queues lock")
            .iter()
            .cloned()
            .collect();
        for (topic, queue_id) in keys {
            self.queue(&topic, queue_id)?;
        }
        Ok(())
    }

    /// Appends messages in order, as one batch: records are written with one positioned
    /// write per segment touched, then their queue and index entries.
    ///
    /// # Errors
    /// I/O failure, such as a full disk (nothing of the batch stays: what was written is
    /// rolled back), or a record larger than a segment.
    pub fn append(&self, msgs: &mut [PutMessage]) -> Result<Vec<AppendResult>, StoreError> {
        let _writer = self.write_lock.lock().expect("store write lock");
        let start = self.commit_log.write_offset();
        let mut touched = Vec::new();
        let appended = self.append_locked(msgs, &mut touched);
        if appended.is_err() {
            // Queue entries first: none may point into the commit-log tail being cut.
            for cq in &touched {
                if let Err(e) = cq.truncate_from_phys(start) {
                    tracing::error!(error = %e, "rolling back consume-queue entries failed");
                }
            }
            if let Err(e) = self.commit_log.roll_back(start) {
                tracing::error!(error = %e, "rolling back the commit log failed");
            }
        }
        appended
    }

    fn append_locked(
        &self,
        msgs: &mut [PutMessage],
        touched: &mut Vec<Arc<ConsumeQueue>>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let store_ms = now_ms();
        let mut offset = self.commit_log.write_offset();
        let mut run_start = offset;
        let mut run = Vec::with_capacity(msgs.iter().map(|m| m.record.len()).sum());
        let mut results = Vec::with_capacity(msgs.len());
        // Each message's queue, as an index into `queues`: found before the records are
        // patched, keyed by borrowed names (no per-message allocation).
        let mut queues: Vec<(Arc<ConsumeQueue>, Vec<CqEntry>)> = Vec::new();
        let group_of: Vec<usize> = {
            let mut seen: HashMap<(&str, i32), usize> = HashMap::new();
            let mut group_of = Vec::with_capacity(msgs.len());
            for m in msgs.iter() {
                let g = match seen.get(&(m.topic.as_str(), m.queue_id)) {
                    Some(&g) => g,
                    None => {
                        queues.push((self.queue(&m.topic, m.queue_id)?, Vec::new()));
                        seen.insert((m.topic.as_str(), m.queue_id), queues.len() - 1);
                        queues.len() - 1
                    }
                };
                group_of.push(g);
            }
            group_of
        };
        for (m, &g) in msgs.iter_mut().zip(&group_of) {
            let len = m.record.len() as u64;
            let place = self.commit_log.place(offset, len)?;
            if let Some(blank_at) = place.blank_at {
                if !run.is_empty() {
                    self.commit_log.write(run_start, &run)?;
                    run.clear();
                }
                self.commit_log.write_blank(blank_at)?;
                run_start = place.at;
            }
            let at = place.at;
            let (cq, entries) = &mut queues[g];
            let queue_offset = cq.max_offset() + entries.len() as u64;
            patch_record(&mut m.record, queue_offset as i64, at as i64, store_ms);
            run.extend_from_slice(&m.record);
            entries.push(CqEntry {
                phys: at,
                size: m.record.len() as u32,
                tag: m.tag_code,
                store_ms,
            });
            offset = at + len;
            results.push(AppendResult {
                phys_offset: at,
                queue_offset,
                record_bytes: m.record.len() as u32,
                store_ms,
                end_offset: offset,
            });
        }
        if !run.is_empty() {
            self.commit_log.write(run_start, &run)?;
        }
        touched.extend(queues.iter().map(|(cq, _)| cq.clone()));
        for (cq, entries) in &queues {
            cq.append(entries)?;
        }
        let index_items: Vec<(u32, u64, i64)> = msgs
            .iter()
            .zip(&results)
            .flat_map(|(m, r)| {
                m.keys
                    .iter()
                    .map(move |k| (key_hash(&m.topic, k), r.phys_offset, store_ms))
            })
            .collect();
        self.index.put_batch(&index_items)?;
        self.dispatched_offset.store(offset, Ordering::Release);
        Ok(results)
    }

    /// Reads up to `max_msgs` messages (and about `max_bytes`) from a queue starting at
    /// logical `offset`, keeping those whose tag code `filter` accepts.
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: u64,
        max_msgs: usize,
        max_bytes: usize,
        filter: &dyn Fn(i64) -> bool,
    ) -> Result<GetResult, StoreError> {
        let Some(cq) = self.existing_queue(topic, queue_id) else {
            return Ok(GetResult {
                status: GetStatus::NoMessageInQueue,
                next_begin_offset: 0,
                min_offset: 0,
                max_offset: 0,
                messages: vec![],
            });
        };
        let (min, max) = (cq.min_offset(), cq.max_offset());
        let result = |status, next| GetResult {
            status,
            next_begin_offset: next,
            min_offset: min,
            max_offset: max,
            messages: vec![],
        };
        if max == 0 {
            return Ok(result(GetStatus::NoMessageInQueue, 0));
        }
        if offset < min {
            return Ok(result(GetStatus::OffsetTooSmall, min));
        }
        if offset == max {
            return Ok(result(GetStatus::OffsetOverflowOne, offset));
        }
        if offset > max {
            return Ok(result(GetStatus::OffsetOverflowBadly, max));
        }
        let mut entries = cq.read(offset, MAX_SCAN_ENTRIES.max(max_msgs))?;
        let limit = self.read_limit.load(Ordering::Acquire);
        let visible = entries
            .iter()
            .take_while(|e| e.phys + u64::from(e.size) <= limit)
            .count();
        if visible == 0 && !entries.is_empty() {
            // Nothing here is confirmed yet: the reader is as far as it may go.
            return Ok(result(GetStatus::OffsetOverflowOne, offset));
        }
        entries.truncate(visible);
        let log_min = self.commit_log.min_offset();
        let mut messages = Vec::new();
        let mut bytes = 0usize;
        let mut next = offset;
        let mut i = 0;
        while i < entries.len() && messages.len() < max_msgs && bytes < max_bytes {
            let e = entries[i];
            if e.phys < log_min || !filter(e.tag) {
                i += 1;
                next += 1;
                continue;
            }
            // Read the longest run of adjacent wanted entries with one positioned read.
            let mut j = i + 1;
            let mut run_bytes = e.size as usize;
            while j < entries.len()
                && messages.len() + (j - i) < max_msgs
                && bytes + run_bytes < max_bytes
                && entries[j].phys == entries[j - 1].phys + entries[j - 1].size as u64
                // An entry at a segment's base is in the next segment: a run is one read.
                && entries[j].phys % self.config.segment_bytes != 0
                && filter(entries[j].tag)
            {
                run_bytes += entries[j].size as usize;
                j += 1;
            }
            let last = entries[j - 1];
            let span = (last.phys + last.size as u64 - e.phys) as usize;
            let Some(raw) = self.commit_log.read(e.phys, span)? else {
                break;
            };
            for entry in &entries[i..j] {
                let at = (entry.phys - e.phys) as usize;
                let record = raw.slice(at..at + entry.size as usize);
                if record_is_valid(&record, entry.phys) {
                    bytes += record.len();
                    messages.push(record);
                } else {
                    warn!(
                        topic,
                        queue_id,
                        phys = entry.phys,
                        "record failed its checks; skipped"
                    );
                }
                next += 1;
            }
            i = j;
        }
        let status = if messages.is_empty() {
            GetStatus::NoMatchedMessage
        } else {
            GetStatus::Found
        };
        Ok(GetResult {
            status,
            next_begin_offset: next,
            min_offset: min,
            max_offset: max,
            messages,
        })
    }

    /// Raw consume-queue entries of a queue from logical `from`, at most `max`.
    pub fn queue_entries(
        &self,
        topic: &str,
        queue_id: i32,
        from: u64,
        max: usize,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let Some(q) = self.existing_queue(topic, queue_id) else {
            return Ok(Vec::new());
        };
        let from = from.max(q.min_offset());
        Ok(q.read(from, max)?
            .into_iter()
            .enumerate()
            .map(|(i, e)| QueueEntry {
                offset: from + i as u64,
                phys: e.phys,
                size: e.size,
                tag: e.tag,
                store_ms: e.store_ms,
            })
            .collect())
    }

    /// The record stored at a commit-log offset, CRC-checked.
    pub fn read_message(&self, phys: u64) -> Result<Option<Bytes>, StoreError> {
        self.commit_log.read_record(phys)
    }

    pub fn max_offset(&self, topic: &str, queue_id: i32) -> u64 {
        self.existing_queue(topic, queue_id)
            .map_or(0, |q| q.max_offset())
    }

    pub fn min_offset(&self, topic: &str, queue_id: i32) -> u64 {
        self.existing_queue(topic, queue_id)
            .map_or(0, |q| q.min_offset())
    }

    /// First offset stored at or after `timestamp_ms`, or the max offset if none.
    pub fn search_offset_by_time(
        &self,
        topic: &str,
        queue_id: i32,
        timestamp_ms: i64,
    ) -> Result<u64, StoreError> {
        let Some(q) = self.existing_queue(topic, queue_id) else {
            return Ok(0);
        };
        q.partition_point(q.min_offset(), q.max_offset(), |e| {
            e.store_ms >= timestamp_ms
        })
    }

    /// Store time of the oldest message still in the queue.
    pub fn earliest_store_time(
        &self,
        topic: &str,
        queue_id: i32,
    ) -> Result<Option<i64>, StoreError> {
        let Some(q) = self.existing_queue(topic, queue_id) else {
            return Ok(None);
        };
        Ok(q.entry(q.min_offset())?.map(|e| e.store_ms))
    }

    /// Records of `topic` carrying `key` (a KEYS entry or the UNIQ_KEY), newest first.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Bytes>, StoreError> {
        let mut out = Vec::new();
        for phys in self
            .index
            .query(topic, key, max.saturating_mul(2), begin_ms, end_ms)?
        {
            let Some(record) = self.read_message(phys)? else {
                continue;
            };
            let Ok((m, _)) = MessageExt::decode(&record) else {
                continue;
            };
            let (_, keys) = dispatch_info(&m.properties);
            if m.topic == topic && keys.iter().any(|k| k == key) {
                out.push(record);
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every queue the store holds, with its offsets.
    pub fn queue_stats(&self) -> Vec<QueueStats> {
        if let Err(e) = self.open_all_queues() {
            warn!(error = %e, "opening the queues for a listing failed");
        }
        let queues: Vec<(QueueKey, Arc<ConsumeQueue>)> = self
            .queues
            .read()
            .expect("queues lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out: Vec<QueueStats> = queues
            .into_iter()
            .map(|((topic, queue_id), q)| {
                let max = q.max_offset();
                let last_store_ms = if max > 0 {
                    q.entry(max - 1).ok().flatten().map(|e| e.store_ms)
                } else {
                    None
                };
                QueueStats {
                    topic,
                    queue_id,
                    min_offset: q.min_offset(),
                    max_offset: max,
                    last_store_ms,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
        out
    }

    /// Removes a topic's queues (its records stay in the commit log until retention).
    pub fn delete_topic(&self, topic: &str) -> Result<(), StoreError> {
        let _writer = self.write_lock.lock().expect("store write lock");
        self.unopened
            .lock()
            .expect("unopened queues lock")
            .retain(|(t, _)| t != topic);
        let doomed: Vec<Arc<ConsumeQueue>> = {
            let mut queues = self.queues.write().expect("queues lock");
            let keys: Vec<QueueKey> = queues.keys().filter(|(t, _)| t == topic).cloned().collect();
            keys.iter().filter_map(|k| queues.remove(k)).collect()
        };
        for q in doomed {
            q.destroy()?;
        }
        let dir = self.config.root.join("consumequeue").join(topic);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    /// fsyncs the commit log. Returns the offset now durable.
    pub fn flush(&self) -> Result<u64, StoreError> {
        self.commit_log.flush()
    }

    pub fn flushed_offset(&self) -> u64 {
        self.commit_log.flushed_offset()
    }

    pub fn write_offset(&self) -> u64 {
        self.commit_log.write_offset()
    }

    pub fn min_commit_log_offset(&self) -> u64 {
        self.commit_log.min_offset()
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn all_queues(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues
            .read()
            .expect("queues lock")
            .values()
            .cloned()
            .collect()
    }

    /// Makes queues and index durable up to what has been dispatched and records that in
    /// the checkpoint, so the next start rebuilds only what came after.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let consistent = self.dispatched_offset.load(Ordering::Acquire);
        self.write_checkpoint(consistent)
    }

    /// The periodic checkpoint: as [`Self::checkpoint`], but a queue holding a few recent
    /// unwritten entries keeps them for a later checkpoint, and the checkpoint then records
    /// the log offset of the oldest entry kept, from which recovery rebuilds. With 80,000
    /// queues each taking a message every few seconds, writing every queue's tail at every
    /// checkpoint cost an open, a 28-byte write and a close per message (the file cache
    /// holds a few thousand of the queues' files), 14 % of the broker's time.
    pub fn checkpoint_lazily(&self) -> Result<(), StoreError> {
        let consistent = self.dispatched_offset.load(Ordering::Acquire);
        let deferral = Deferral {
            max_entries: DEFER_ENTRIES_PER_QUEUE,
            since_ms: now_ms() - DEFER_MS,
            from_phys: consistent.saturating_sub(DEFER_LOG_BYTES),
        };
        self.write_checkpoint_deferring(consistent, Some(&deferral))
    }

    pub(crate) fn write_checkpoint(&self, consistent: u64) -> Result<(), StoreError> {
        self.write_checkpoint_deferring(consistent, None)
    }

    fn write_checkpoint_deferring(
        &self,
        mut consistent: u64,
        deferral: Option<&Deferral>,
    ) -> Result<(), StoreError> {
        self.commit_log.flush()?;
        let mut unsynced = Vec::new();
        let mut deferred_entries = 0;
        for q in self.all_queues() {
            let room = deferred_entries < DEFER_ENTRIES_IN_ALL;
            match q.write_out_unless(deferral.filter(|_| room))? {
                WriteOut::Done(Some(written)) => unsynced.push((q, written)),
                WriteOut::Done(None) => {}
                WriteOut::Deferred {
                    first_phys,
                    entries,
                } => {
                    consistent = consistent.min(first_phys);
                    deferred_entries += entries;
                }
            }
        }
        if unsynced.len() > SYNC_QUEUES_ONE_BY_ONE {
            let dir = self.config.root.join("consumequeue");
            crate::file_io::sync_file_system_of(&dir).map_err(io_err(&dir))?;
            for (q, written) in unsynced {
                q.mark_synced(written);
            }
        } else {
            for (q, written) in unsynced {
                q.sync_files(written)?;
            }
        }
        self.index.flush()?;
        // A replica's truncation lowers the dispatched offset and then writes its own
        // checkpoint under this lock; one taken before it must not land after it with an
        // offset past the cut (recovery would read the freed tail as data).
        let _publish = self.checkpoint_lock.lock().expect("checkpoint lock");
        let consistent = consistent.min(self.dispatched_offset.load(Ordering::Acquire));
        checkpoint::store(
            &self.config.root,
            Checkpoint {
                consistent_offset: consistent,
                timestamp_ms: now_ms(),
            },
        )
    }

    /// Drops queue and index entries that point below the commit log's start (CLEAN_EXPIRED_CONSUMEQUEUE):
    /// what retention would drop after deleting segments, without deleting any.
    pub fn drop_expired_queue_entries(&self) -> Result<(), StoreError> {
        self.drop_entries_below(self.commit_log.min_offset())
    }

    fn drop_entries_below(&self, min: u64) -> Result<(), StoreError> {
        self.open_all_queues()?;
        for q in self.all_queues() {
            q.drop_below_phys(min)?;
        }
        self.index.delete_below(min)
    }

    /// Topics that have queues in the store.
    pub fn stored_topics(&self) -> std::collections::BTreeSet<String> {
        let mut topics: std::collections::BTreeSet<String> = self
            .queues
            .read()
            .expect("queues lock")
            .keys()
            .map(|(t, _)| t.clone())
            .collect();
        topics.extend(
            self.unopened
                .lock()
                .expect("unopened queues lock")
                .iter()
                .map(|(t, _)| t.clone()),
        );
        topics
    }

    /// Deletes commit-log segments last written before `cutoff`, then the queue and index
    /// entries that pointed into them. Returns the new minimum commit-log offset.
    pub fn delete_expired(&self, cutoff: std::time::SystemTime) -> Result<u64, StoreError> {
        let min = self.commit_log.delete_segments_older_than(cutoff)?;
        self.drop_entries_below(min)?;
        Ok(min)
    }
}
