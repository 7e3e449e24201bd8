//! Consume queues: per (topic, queue) dense logical offsets pointing into the commit log,
//! in files of a fixed number of fixed-size entries.
//!
//! Entries are written behind: an append only adds them to an in-memory tail, which is
//! written out once it holds [`WRITE_BEHIND_ENTRIES`] or at the next flush (checkpoint).
//! That takes a positioned write off every send; the files only need to be complete up to
//! the checkpoint, since recovery rebuilds later entries from the commit log.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::file_cache::FileCache;
use crate::{file_io, io_err, list_offset_files, offset_file_name, StoreError};

/// Bytes of one entry: | phys: i64 | size: i32 | tag: i64 | store_ms: i64 |.
pub(crate) const ENTRY_BYTES: u64 = 28;

/// Unwritten entries that make an append write the tail out itself (7 KiB): one write per
/// this many sends under load, and a bound on the memory an idle checkpoint leaves.
const WRITE_BEHIND_ENTRIES: usize = 256;

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

/// The queue's files: always a contiguous run (`open` removes what follows a gap), so two
/// numbers name them all. With 100,000 queues a map of file records per queue cost ~330
/// bytes each (33 MB); paths are made when a file is used, and handles come from the
/// store's [`FileCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FileRun {
    /// First logical offset of the first file.
    first: u64,
    count: u64,
}

impl FileRun {
    /// The first offset of each file, in order.
    fn firsts(self, file_entries: u64) -> impl DoubleEndedIterator<Item = u64> {
        (0..self.count).map(move |i| self.first + i * file_entries)
    }

    fn holds(self, first: u64, file_entries: u64) -> bool {
        self.count > 0
            && first >= self.first
            && first < self.end(file_entries)
            && (first - self.first).is_multiple_of(file_entries)
    }

    /// First offset after the last file.
    fn end(self, file_entries: u64) -> u64 {
        self.first + self.count * file_entries
    }
}

pub(crate) struct ConsumeQueue {
    dir: PathBuf,
    file_entries: u64,
    cache: Arc<FileCache>,
    files: RwLock<FileRun>,
    min_offset: AtomicU64,
    max_offset: AtomicU64,
    flushed_offset: AtomicU64,
    /// Entries appended but not yet in the files.
    tail: Mutex<Tail>,
    /// Held while the files change (tail write-out, truncation), so those never interleave.
    file_writer: Mutex<()>,
}

/// When a checkpoint may leave a queue's unwritten entries for a later one: while they are
/// at most `max_entries`, the first was stored at `since_ms` or later, and it points at
/// `from_phys` or past it in the commit log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferral {
    pub max_entries: usize,
    pub since_ms: i64,
    pub from_phys: u64,
}

/// What [`ConsumeQueue::write_out_unless`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOut {
    /// Written (or nothing to write); the written end when no sync has covered it yet.
    Done(Option<u64>),
    /// Left in memory: recovery must rebuild the queue from `first_phys` on.
    Deferred { first_phys: u64, entries: usize },
}

/// The unwritten entries `[written, written + entries.len())`; the files hold those below.
struct Tail {
    written: u64,
    entries: Vec<CqEntry>,
}

impl ConsumeQueue {
    /// Opens the queue's files; a partial trailing entry is cut off, and so is everything
    /// after a file that is not full or a missing file: a power failure can leave a later
    /// file on disk while unsynced entries before it are lost, and entries must stay
    /// contiguous (recovery rebuilds the cut ones from the commit log).
    ///
    /// A new queue's directory is made with its first file, by the write-out, not here:
    /// `open` runs on the append path, and a broker taking its first messages for 80,000
    /// queues spent its time in the file system's inode allocation for their directories.
    pub fn open(dir: &Path, file_entries: u64, cache: Arc<FileCache>) -> Result<Self, StoreError> {
        let mut files = FileRun::default();
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
            // Sized without opening: a queue costs no descriptor until it is read or written.
            let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
            let whole = len / ENTRY_BYTES;
            if whole * ENTRY_BYTES != len {
                let file = cache.get(&path, false).map_err(io_err(&path))?;
                file_io::set_len(&file, &path, whole * ENTRY_BYTES).map_err(io_err(&path))?;
            }
            min.get_or_insert(first);
            max = first + whole;
            ended = whole < file_entries;
            next_first = Some(first + file_entries);
            if files.count == 0 {
                files.first = first;
            }
            files.count += 1;
        }
        let cq = ConsumeQueue {
            dir: dir.to_path_buf(),
            file_entries,
            cache,
            files: RwLock::new(files),
            min_offset: AtomicU64::new(min.unwrap_or(0)),
            max_offset: AtomicU64::new(max),
            flushed_offset: AtomicU64::new(max),
            tail: Mutex::new(Tail {
                written: max,
                entries: Vec::new(),
            }),
            file_writer: Mutex::new(()),
        };
        // A queue a replica started part-way (see `start_at`) begins with a hole of zeroed
        // entries; no real entry has size 0.
        let (min, max) = (cq.min_offset(), cq.max_offset());
        if cq.entry(min)?.is_some_and(|e| e.size == 0) {
            let first_real = cq.partition_point(min, max, |e| e.size != 0)?;
            cq.set_min_offset(first_real);
        }
        Ok(cq)
    }

    /// Makes an empty queue begin at logical `offset`: a replica that copies a log from
    /// part-way must keep the queue offsets the records carry.
    pub fn start_at(&self, offset: u64) {
        let _writer = self.file_writer.lock().expect("cq file writer lock");
        let mut tail = self.tail.lock().expect("cq tail lock");
        if self.max_offset() != 0 || !tail.entries.is_empty() {
            return;
        }
        tail.written = offset;
        self.max_offset.store(offset, Ordering::Release);
        self.min_offset.store(offset, Ordering::Release);
        self.flushed_offset.store(offset, Ordering::Release);
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
    ///
    /// # Errors
    /// The tail was due to be written out and that failed; the entries given stay in the
    /// queue (the caller rolls them back with [`Self::truncate_from_phys`]).
    pub fn append(&self, entries: &[CqEntry]) -> Result<(), StoreError> {
        let due = {
            let mut tail = self.tail.lock().expect("cq tail lock");
            tail.entries.extend_from_slice(entries);
            // Published under the tail lock: readers take it to find where entries are.
            self.max_offset
                .store(tail.written + tail.entries.len() as u64, Ordering::Release);
            tail.entries.len() >= WRITE_BEHIND_ENTRIES
        };
        if due {
            self.write_tail()?;
        }
        Ok(())
    }

    /// Writes the unwritten entries to the files.
    fn write_tail(&self) -> Result<(), StoreError> {
        let _writer = self.file_writer.lock().expect("cq file writer lock");
        let (start, count, bytes) = {
            let tail = self.tail.lock().expect("cq tail lock");
            let mut bytes = Vec::with_capacity(tail.entries.len() * ENTRY_BYTES as usize);
            for e in &tail.entries {
                e.encode(&mut bytes);
            }
            (tail.written, tail.entries.len(), bytes)
        };
        if count == 0 {
            return Ok(());
        }
        if let Err(e) = self.write_entries(start, &bytes) {
            // The file length is the queue length on restart: nothing half-written may stay.
            if let Err(cut) = self.cut_files_at(start) {
                tracing::error!(error = %cut, "removing half-written queue entries failed");
            }
            return Err(e);
        }
        let mut tail = self.tail.lock().expect("cq tail lock");
        // Only appends ran meanwhile (truncation takes the writer lock), adding behind these.
        tail.entries.drain(..count);
        if tail.entries.is_empty() {
            // An idle queue keeps no buffer: 100,000 queues × 7 KiB would be 700 MB.
            tail.entries = Vec::new();
        }
        tail.written = start + count as u64;
        Ok(())
    }

    /// Writes encoded entries at logical offset `start`, across file boundaries.
    fn write_entries(&self, start: u64, mut bytes: &[u8]) -> Result<(), StoreError> {
        let mut offset = start;
        while !bytes.is_empty() {
            let first = offset - offset % self.file_entries;
            let room = ((first + self.file_entries - offset) * ENTRY_BYTES) as usize;
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            let path = self.file_for_write(first)?;
            let file = self.cache.get(&path, true).map_err(io_err(&path))?;
            file_io::write_at(&file, &path, now, (offset - first) * ENTRY_BYTES)
                .map_err(io_err(&path))?;
            offset += now.len() as u64 / ENTRY_BYTES;
            bytes = later;
        }
        Ok(())
    }

    fn path_of(&self, first: u64) -> PathBuf {
        self.dir.join(offset_file_name(first * ENTRY_BYTES))
    }

    /// The file starting at `first`, created when it is the next one (written entries are
    /// contiguous, so a write only ever goes to a held file or the one after the last).
    fn file_for_write(&self, first: u64) -> Result<PathBuf, StoreError> {
        let path = self.path_of(first);
        if self
            .files
            .read()
            .expect("cq files lock")
            .holds(first, self.file_entries)
        {
            return Ok(path);
        }
        let mut files = self.files.write().expect("cq files lock");
        if files.holds(first, self.file_entries) {
            return Ok(path);
        }
        if files.count > 0 && first != files.end(self.file_entries) {
            return Err(StoreError::QueueFileGap {
                dir: self.dir.clone(),
                at: first,
                first: files.first,
                end: files.end(self.file_entries),
            });
        }
        if files.count == 0 {
            std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        }
        self.cache.get(&path, true).map_err(io_err(&path))?;
        if files.count == 0 {
            files.first = first;
        }
        files.count += 1;
        Ok(path)
    }

    /// Reads up to `max_entries` entries starting at logical `from`.
    pub fn read(&self, from: u64, max_entries: usize) -> Result<Vec<CqEntry>, StoreError> {
        let end = self.max_offset().min(from + max_entries as u64);
        if from >= end || from < self.min_offset() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - from) as usize);
        // The unwritten part first, under the tail lock; entries below `written` are in the
        // files before `written` moves past them.
        let (in_files_end, unwritten) = {
            let tail = self.tail.lock().expect("cq tail lock");
            let lo = from.max(tail.written);
            let unwritten = if lo < end {
                tail.entries[(lo - tail.written) as usize..(end - tail.written) as usize].to_vec()
            } else {
                Vec::new()
            };
            (end.min(tail.written), unwritten)
        };
        let mut offset = from;
        while offset < in_files_end {
            let first = offset - offset % self.file_entries;
            if !self
                .files
                .read()
                .expect("cq files lock")
                .holds(first, self.file_entries)
            {
                break;
            }
            let path = self.path_of(first);
            let upto = in_files_end.min(first + self.file_entries);
            let mut buf = vec![0u8; ((upto - offset) * ENTRY_BYTES) as usize];
            let file = match self.cache.get(&path, false) {
                Ok(file) => file,
                // Removed by retention since the lookup: those entries have expired.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_err(&path)(e)),
            };
            file.read_exact_at(&mut buf, (offset - first) * ENTRY_BYTES)
                .map_err(io_err(&path))?;
            out.extend(buf.chunks_exact(ENTRY_BYTES as usize).map(CqEntry::decode));
            offset = upto;
        }
        // Unless a file was missing: entries must stay contiguous.
        if offset >= in_files_end {
            out.extend(unwritten);
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
        // The common answers at start-up (nothing to cut, nothing expired) in one read each,
        // instead of a search per queue.
        if lo < hi {
            match self.entry(hi - 1)? {
                Some(e) if !pred(&e) => return Ok(hi),
                _ => {}
            }
            if self.entry(lo)?.is_some_and(|e| pred(&e)) {
                return Ok(lo);
            }
        }
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
        // Last file first, so an error part-way still leaves a contiguous run.
        while files.count > 0 {
            let last = files.first + (files.count - 1) * self.file_entries;
            if last < end {
                let path = self.path_of(last);
                let file = self.cache.get(&path, false).map_err(io_err(&path))?;
                file_io::set_len(&file, &path, (end - last) * ENTRY_BYTES)
                    .map_err(io_err(&path))?;
                break;
            }
            let path = self.path_of(last);
            self.cache.forget(&path);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            files.count -= 1;
        }
        Ok(())
    }

    /// Drops entries pointing at or beyond commit-log offset `phys` (recovery re-adds them).
    pub fn truncate_from_phys(&self, phys: u64) -> Result<(), StoreError> {
        let _writer = self.file_writer.lock().expect("cq file writer lock");
        let max = self.max_offset();
        let cut = self.partition_point(self.min_offset(), max, |e| e.phys >= phys)?;
        if cut == max {
            return Ok(());
        }
        let cuts_files = {
            let mut tail = self.tail.lock().expect("cq tail lock");
            let cuts_files = cut < tail.written;
            if cuts_files {
                tail.entries.clear();
                tail.written = cut;
            } else {
                let keep = (cut - tail.written) as usize;
                tail.entries.truncate(keep);
            }
            self.max_offset.store(cut, Ordering::Release);
            cuts_files
        };
        if cuts_files {
            self.cut_files_at(cut)?;
        }
        self.flushed_offset.fetch_min(cut, Ordering::AcqRel);
        if self.min_offset() > cut {
            self.set_min_offset(cut);
        }
        Ok(())
    }

    /// Writes out the unwritten entries, unless `deferral` allows leaving them in memory
    /// (then says where the first of them points into the commit log). Once written, gives
    /// the queue's written end when files hold entries no sync has covered yet.
    pub fn write_out_unless(&self, deferral: Option<&Deferral>) -> Result<WriteOut, StoreError> {
        // A queue without files makes them at once: a crash soon after many queues were
        // first used should not have to rebuild them all, and their first write-out (a
        // directory and a file each) is cheapest done while the log is still near.
        let has_files = || self.files.read().expect("cq files lock").count > 0;
        if let Some(d) = deferral.filter(|_| has_files()) {
            let tail = self.tail.lock().expect("cq tail lock");
            if let Some(first) = tail.entries.first() {
                if tail.entries.len() <= d.max_entries
                    && first.store_ms >= d.since_ms
                    && first.phys >= d.from_phys
                {
                    return Ok(WriteOut::Deferred {
                        first_phys: first.phys,
                        entries: tail.entries.len(),
                    });
                }
            }
        }
        self.write_tail()?;
        let written = self.tail.lock().expect("cq tail lock").written;
        Ok(WriteOut::Done(
            (self.flushed_offset.load(Ordering::Acquire) < written).then_some(written),
        ))
    }

    /// Records that the entries below `written` are durable (a sync of the whole file
    /// system covered them).
    pub fn mark_synced(&self, written: u64) {
        self.flushed_offset.fetch_max(written, Ordering::AcqRel);
    }

    /// Fsyncs the files holding entries written since the last sync, up to `max`.
    pub fn sync_files(&self, max: u64) -> Result<(), StoreError> {
        let from = self.flushed_offset.load(Ordering::Acquire);
        if from >= max {
            return Ok(());
        }
        let first = from - from % self.file_entries;
        let files = *self.files.read().expect("cq files lock");
        for first in files.firsts(self.file_entries).filter(|f| *f >= first) {
            let path = self.path_of(first);
            let file = self.cache.get(&path, false).map_err(io_err(&path))?;
            file_io::sync_data(&file, &path).map_err(io_err(&path))?;
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
        // First file first, so an error part-way still leaves a contiguous run.
        while files.count > 0 && files.first + self.file_entries <= new_min {
            let path = self.path_of(files.first);
            self.cache.forget(&path);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            files.first += self.file_entries;
            files.count -= 1;
        }
        Ok(())
    }

    /// Removes every file of the queue.
    pub fn destroy(&self) -> Result<(), StoreError> {
        let _writer = self.file_writer.lock().expect("cq file writer lock");
        let mut files = self.files.write().expect("cq files lock");
        for first in files.firsts(self.file_entries) {
            self.cache.forget(&self.path_of(first));
        }
        *files = FileRun::default();
        *self.tail.lock().expect("cq tail lock") = Tail {
            written: 0,
            entries: Vec::new(),
        };
        self.max_offset.store(0, Ordering::Release);
        self.min_offset.store(0, Ordering::Release);
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> CqEntry {
        CqEntry {
            phys: i * 10,
            size: 10,
            tag: i as i64,
            store_ms: 1,
        }
    }

    fn phys_of(cq: &ConsumeQueue, from: u64, max: usize) -> Vec<u64> {
        cq.read(from, max)
            .unwrap()
            .iter()
            .map(|e| e.phys / 10)
            .collect()
    }

    fn bytes_on_disk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn written_behind_entries_read_as_one_queue_across_files_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), 100, Arc::new(FileCache::new(2))).unwrap();
        for i in 0..300 {
            cq.append(&[entry(i)]).unwrap();
        }
        assert_eq!(cq.max_offset(), 300);
        assert_eq!(
            bytes_on_disk(dir.path()),
            WRITE_BEHIND_ENTRIES as u64 * ENTRY_BYTES,
            "the tail is written out once it is due, not before"
        );
        assert_eq!(phys_of(&cq, 0, 1000), (0..300).collect::<Vec<_>>());
        assert_eq!(phys_of(&cq, 250, 10), (250..260).collect::<Vec<_>>());
        assert_eq!(phys_of(&cq, 270, 5), (270..275).collect::<Vec<_>>());
        assert_eq!(phys_of(&cq, 300, 5), Vec::<u64>::new());

        // A cut inside the unwritten tail leaves the files alone.
        cq.truncate_from_phys(280 * 10).unwrap();
        assert_eq!(cq.max_offset(), 280);
        assert_eq!(phys_of(&cq, 0, 1000), (0..280).collect::<Vec<_>>());
        // A cut below what is written shortens the files too.
        cq.truncate_from_phys(200 * 10).unwrap();
        assert_eq!(cq.max_offset(), 200);
        assert_eq!(bytes_on_disk(dir.path()), 200 * ENTRY_BYTES);
        for i in 200..210 {
            cq.append(&[entry(i)]).unwrap();
        }
        assert_eq!(phys_of(&cq, 190, 100), (190..210).collect::<Vec<_>>());

        let WriteOut::Done(Some(written)) = cq.write_out_unless(None).unwrap() else {
            panic!("entries to sync");
        };
        cq.sync_files(written).unwrap();
        assert_eq!(bytes_on_disk(dir.path()), 210 * ENTRY_BYTES);
        drop(cq);
        let reopened = ConsumeQueue::open(dir.path(), 100, Arc::new(FileCache::new(2))).unwrap();
        assert_eq!(reopened.max_offset(), 210);
        assert_eq!(phys_of(&reopened, 0, 1000), (0..210).collect::<Vec<_>>());
    }

    #[test]
    fn expired_front_files_go_and_the_run_keeps_growing_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(FileCache::new(2));
        let cq = ConsumeQueue::open(dir.path(), 100, cache.clone()).unwrap();
        for i in 0..350 {
            cq.append(&[entry(i)]).unwrap();
        }
        cq.write_out_unless(None).unwrap();
        let files = |d: &Path| std::fs::read_dir(d).unwrap().count();
        assert_eq!(files(dir.path()), 4);
        // Entries below phys 2500 expire: files [0,100) and [100,200) hold none that live.
        cq.drop_below_phys(250 * 10).unwrap();
        assert_eq!(cq.min_offset(), 250);
        assert_eq!(files(dir.path()), 2, "the two expired files are deleted");
        assert_eq!(phys_of(&cq, 250, 1000), (250..350).collect::<Vec<_>>());
        for i in 350..450 {
            cq.append(&[entry(i)]).unwrap();
        }
        cq.write_out_unless(None).unwrap();
        assert_eq!(files(dir.path()), 3);
        // A cut back into the second file left deletes the files after it.
        cq.truncate_from_phys(320 * 10).unwrap();
        assert_eq!(files(dir.path()), 2);
        assert_eq!(phys_of(&cq, 250, 1000), (250..320).collect::<Vec<_>>());
        drop(cq);
        let reopened = ConsumeQueue::open(dir.path(), 100, cache).unwrap();
        assert_eq!((reopened.min_offset(), reopened.max_offset()), (200, 320));
        reopened.destroy().unwrap();
        assert!(!dir.path().exists());
    }
}
