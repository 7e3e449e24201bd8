//! FerroMQ's message store: synchronous, deterministic, no protocol knowledge beyond the
//! stored record format it shares with pulls.
//!
//! ```text
//! <root>/commitlog/<20-digit base offset>      segments of Apache records, each ended by a
//!                                             blank record: byte for byte Apache's layout
//! <root>/consumequeue/<topic>/<queue>/<20-digit first logical offset>
//!                                             entries: | phys: i64 | size: i32 | tag: i64 | store_ms: i64 |
//! <root>/index/<20-digit first commit-log offset>   hash index of topic#key → commit-log offsets
//! <root>/checkpoint                            | magic | consistent_offset | timestamp | crc |
//! ```
//! Recovery tells a torn tail from data as Apache does (magic, sizes that agree with the
//! fields, body CRC) and also checks that each record names the offset it is found at. Consume-queue and index entries are written in the same step as the
//! record (a message acknowledged is immediately visible), and are rebuilt from the commit
//! log past the checkpoint after a crash: start-up costs time proportional to the
//! unflushed tail, not to the log size.

mod checkpoint;
mod commit_log;
mod consume_queue;
pub mod epoch;
mod file_cache;
mod file_io;
mod index;
mod replica;
mod store;
pub mod timer;

#[cfg(feature = "power-loss")]
pub use file_io::power_loss;

pub use store::{
    AppendResult, GetResult, GetStatus, MessageStore, PutMessage, QueueEntry, QueueStats,
    DUE_TIME_PROPERTY,
};

use std::path::PathBuf;

/// How appended data reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Acknowledge once appended (survives a process crash); fsync periodically.
    Async,
    /// Acknowledge only after an fsync covers the message (survives power loss).
    Sync,
}

/// Store configuration; every field has Apache's default unless noted.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root directory (`storePathRootDir`).
    pub root: PathBuf,
    /// Commit-log directory (`storePathCommitLog`), default `<root>/commitlog`.
    pub commit_log_dir: Option<PathBuf>,
    /// Commit-log segment size in bytes (`mapedFileSizeCommitLog`), default 1 GiB.
    pub segment_bytes: u64,
    /// Entries per consume-queue file, default 300,000.
    pub consume_queue_file_entries: u64,
    /// Consume-queue files held open at once, default 4,096: queues beyond that reopen
    /// their files on use, so 100,000 queues need no more descriptors than a few.
    pub open_queue_files: usize,
    /// Hash slots per index file.
    pub index_slots: u32,
    /// Entries per index file.
    pub index_entries: u32,
    pub flush_mode: FlushMode,
}

impl StoreConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StoreConfig {
            root: root.into(),
            commit_log_dir: None,
            segment_bytes: 1 << 30,
            consume_queue_file_entries: 300_000,
            open_queue_files: 4096,
            index_slots: 1 << 20,
            index_entries: 4 << 20,
            flush_mode: FlushMode::Async,
        }
    }

    pub fn commit_log_path(&self) -> PathBuf {
        self.commit_log_dir
            .clone()
            .unwrap_or_else(|| self.root.join("commitlog"))
    }
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "record of {size} bytes does not fit in a commit-log segment of {segment_bytes} bytes"
    )]
    RecordTooLarge { size: usize, segment_bytes: u64 },
    #[error("store directory {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error(
        "{path} was written by FerroMQ 0.1 (a CRC before every record); this version stores \
         Apache's layout. Drain its queues with the old version or move the directory aside"
    )]
    LegacyLayout { path: PathBuf },
    #[error("{len} bytes at commit-log offset {offset} would cross a segment boundary")]
    CrossesSegment { offset: u64, len: usize },
    #[error("commit-log offset {offset} is gone (retention); the log now starts at {min}")]
    LogOffsetGone { offset: u64, min: u64 },
    #[error("replica data at offset {offset} does not continue the log, which ends at {end}")]
    ReplicaOffset { offset: u64, end: u64 },
    #[error("cannot cut the commit log at {offset}: no record starts there")]
    Unaligned { offset: u64 },
    #[error("replica data at offset {offset} is not a valid record: {reason}")]
    ReplicaRecord { offset: u64, reason: String },
    #[error("queue {dir} would get a file at entry {at}, not next to its files at {first}..{end}")]
    QueueFileGap {
        dir: PathBuf,
        at: u64,
        first: u64,
        end: u64,
    },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

/// Zero-padded 20-digit file name of an offset, as Apache names its files.
pub(crate) fn offset_file_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// Lists `(offset, path)` of the offset-named files in `dir`, ascending.
pub(crate) fn list_offset_files(dir: &std::path::Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 20 {
            if let Ok(offset) = name.parse::<u64>() {
                files.push((offset, entry.path()));
            }
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
