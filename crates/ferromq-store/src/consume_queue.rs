//! Consume queues: per (topic, queue) dense logical offsets pointing into the commit log,
//! in files of a fixed number of fixed-size entries.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::{file_io, io_err, list_offset_files, offset_file_name, StoreError};

/// Bytes of one entry: | phys: i64 | size: i32 | tag: i64 | store_ms: i64 |.
pub(crate) const ENTRY_BYTES: u64 = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CqEntry {
    pub phys: u64,
    pub size: u32,
    pub tag: i64,
    pub store_ms: i64,
}

impl CqEntry {
    fn encode(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.phys.to_be_bytes());
        dst.extend_from_slice(&self.size.to_be_bytes());
        dst.extend_from_slice(&self.tag.to_be_bytes());
        dst.extend_from_slice(&self.store_ms.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        CqEntry {
            phys: u64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            size: u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
            tag: i64::from_be_bytes(b[12..20].try_into().expect("8 bytes")),
            store_ms: i64::from_be_bytes(b[20..28].try_into().expect("8 bytes")),
        }
    }
}

struct CqFile {
    first: u64,
    file: std::fs::File,
    path: PathBuf,
}

pub(crate) struct ConsumeQueue {
    dir: PathBuf,
    file_entries: u64,
    files: RwLock<BTreeMap<u64, Arc<CqFile>>>,
    min_offset: AtomicU64,
    max_offset: AtomicU64,
    flushed_offset: AtomicU64,
}

impl ConsumeQueue {
    /// Opens the queue's files; a partial trailing entry is cut off, and so is everything
    /// after a file that is not full or a missing file: a power failure can leave a later
    /// file on disk while unsynced entries before it are lost, and entries must stay
    /// contiguous (recovery rebuilds the cut ones from the commit log).
    pub fn open(dir: &Path, file_entries: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut files = BTreeMap::new();
        let mut max = 0;
        let mut min = None;
        let mut next_first: Option<u64> = None;
        let mut ended = false;
        for (first_byte, path) in list_offset_files(dir)? {
            let first = first_byte / ENTRY_BYTES;
            if ended || next_first.is_some_and(|n| n != first) {
                tracing::warn!(path = %path.display(), "queue file after a gap removed; recovery rebuilds its entries");
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                ended = true;
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let len = file.metadata().map_err(io_err(&path))?.len();
            let whole = len / ENTRY_BYTES;
            if whole * ENTRY_BYTES != len {
                file_io::set_len(&file, &path, whole * ENTRY_BYTES).map_err(io_err(&path))?;
            }
            min.get_or_insert(first);
            max = first + whole;
            ended = whole < file_entries;
            next_first = Some(first + file_entries);
            files.insert(first, Arc::new(CqFile { first, file, path }));
        }
        Ok(ConsumeQueue {
            dir: dir.to_path_buf(),
            file_entries,
            files: RwLock::new(files),
            min_offset: AtomicU64::new(min.unwrap_or(0)),
            max_offset: AtomicU64::new(max),
            flushed_offset: AtomicU64::new(max),
        })
    }

    pub fn min_offset(&self) -> u64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// Next logical offset to be written (= number of entries ever written).
    pub fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }

    pub fn set_min_offset(&self, min: u64) {
        self.min_offset.store(min, Ordering::Release);
    }

    /// Appends entries at the current max offset. Only the appender calls this.
    pub fn append(&self, entries: &[CqEntry]) -> Result<(), StoreError> {
        let start = self.max_offset();
        let written = self.write_entries(start, entries);
        if written.is_err() {
            // The file length is the queue length on restart: nothing half-written may stay.
            if let Err(e) = self.cut_files_at(start) {
                tracing::error!(error = %e, "removing half-written queue entries failed");
            }
        }
        written
    }

    fn write_entries(&self, start: u64, entries: &[CqEntry]) -> Result<(), StoreError> {
        let mut offset = start;
        let mut rest = entries;
        let mut buf = Vec::with_capacity(entries.len() * ENTRY_BYTES as usize);
        while !rest.is_empty() {
            let first = offset - offset % self.file_entries;
            let room = (first + self.file_entries - offset) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            buf.clear();
            for e in now {
                e.encode(&mut buf);
            }
            let f = self.file_for_write(first)?;
            file_io::write_at(&f.file, &f.path, &buf, (offset - first) * ENTRY_BYTES)
                .map_err(io_err(&f.path))?;
            offset += now.len() as u64;
            rest = later;
        }
        // Publish only after the bytes are written: readers trust entries below max.
        self.max_offset.store(offset, Ordering::Release);
        Ok(())
    }

    fn file_for_write(&self, first: u64) -> Result<Arc<CqFile>, StoreError> {
        if let Some(f) = self.files.read().expect("cq files lock").get(&first) {
            return Ok(f.clone());
        }
        let path = self.dir.join(offset_file_name(first * ENTRY_BYTES));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        let f = Arc::new(CqFile { first, file, path });
        self.files
            .write()
            .expect("cq files lock")
            .insert(first, f.clone());
        Ok(f)
    }

    /// Reads up to `max_entries` entries starting at logical `from`.
    pub fn read(&self, from: u64, max_entries: usize) -> Result<Vec<CqEntry>, StoreError> {
        let end = self.max_offset().min(from + max_entries as u64);
        if from >= end || from < self.min_offset() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - from) as usize);
        let mut offset = from;
        while offset < end {
            let first = offset - offset % self.file_entries;
            let Some(f) = self
                .files
                .read()
                .expect("cq files lock")
                .get(&first)
                .cloned()
            else {
                break;
            };
            let upto = end.min(first + self.file_entries);
            let mut buf = vec![0u8; ((upto - offset) * ENTRY_BYTES) as usize];
            f.file
                .read_exact_at(&mut buf, (offset - first) * ENTRY_BYTES)
                .map_err(io_err(&f.path))?;
            out.extend(buf.chunks_exact(ENTRY_BYTES as usize).map(CqEntry::decode));
            offset = upto;
        }
        Ok(out)
    }

    pub fn entry(&self, offset: u64) -> Result<Option<CqEntry>, StoreError> {
        Ok(self.read(offset, 1)?.into_iter().next())
    }

    /// First logical offset in `[lo, hi)` whose entry satisfies `pred`, assuming `pred` is
    /// monotonic (false…false true…true); `hi` when none does.
    pub fn partition_point(
        &self,
        mut lo: u64,
        mut hi: u64,
        pred: impl Fn(&CqEntry) -> bool,
    ) -> Result<u64, StoreError> {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid)? {
                Some(e) if !pred(&e) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// Shortens the files to exactly `end` entries.
    fn cut_files_at(&self, end: u64) -> Result<(), StoreError> {
        let mut files = self.files.write().expect("cq files lock");
        let doomed: Vec<u64> = files.range(end..).map(|(k, _)| *k).collect();
        for first in doomed {
            if let Some(f) = files.remove(&first) {
                std::fs::remove_file(&f.path).map_err(io_err(&f.path))?;
            }
        }
        if let Some((_, f)) = files.range(..end).next_back() {
            file_io::set_len(&f.file, &f.path, (end - f.first) * ENTRY_BYTES)
                .map_err(io_err(&f.path))?;
        }
        Ok(())
    }

    /// Drops entries pointing at or beyond commit-log offset `phys` (recovery re-adds them).
    pub fn truncate_from_phys(&self, phys: u64) -> Result<(), StoreError> {
        let max = self.max_offset();
        let cut = self.partition_point(self.min_offset(), max, |e| e.phys >= phys)?;
        if cut == max {
            return Ok(());
        }
        self.cut_files_at(cut)?;
        self.max_offset.store(cut, Ordering::Release);
        self.flushed_offset.fetch_min(cut, Ordering::AcqRel);
        if self.min_offset() > cut {
            self.set_min_offset(cut);
        }
        Ok(())
    }

    /// fsyncs the files holding entries written since the last flush.
    pub fn flush(&self) -> Result<(), StoreError> {
        let max = self.max_offset();
        let from = self.flushed_offset.load(Ordering::Acquire);
        if from >= max {
            return Ok(());
        }
        let first = from - from % self.file_entries;
        let files: Vec<Arc<CqFile>> = self
            .files
            .read()
            .expect("cq files lock")
            .range(first..)
            .map(|(_, f)| f.clone())
            .collect();
        for f in files {
            file_io::sync_data(&f.file, &f.path).map_err(io_err(&f.path))?;
        }
        self.flushed_offset.fetch_max(max, Ordering::AcqRel);
        Ok(())
    }

    /// Moves the min offset past entries pointing below `min_phys`, deleting whole files
    /// that no longer hold a live entry.
    pub fn drop_below_phys(&self, min_phys: u64) -> Result<(), StoreError> {
        let max = self.max_offset();
        let new_min = self.partition_point(self.min_offset(), max, |e| e.phys >= min_phys)?;
        self.set_min_offset(new_min);
        let mut files = self.files.write().expect("cq files lock");
        let doomed: Vec<u64> = files
            .keys()
            .copied()
            .filter(|first| first + self.file_entries <= new_min)
            .collect();
        for first in doomed {
            if let Some(f) = files.remove(&first) {
                std::fs::remove_file(&f.path).map_err(io_err(&f.path))?;
            }
        }
        Ok(())
    }

    /// Removes every file of the queue.
    pub fn destroy(&self) -> Result<(), StoreError> {
        let mut files = self.files.write().expect("cq files lock");
        files.clear();
        self.max_offset.store(0, Ordering::Release);
        self.min_offset.store(0, Ordering::Release);
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.dir)(e)),
        }
    }
}
