//! The commit log: one append-only sequence of Apache `MessageExt` records over fixed-size
//! segment files, byte for byte as Apache's `CommitLog` lays them out, so that replicas of
//! either kind can copy it. A record never spans two segments: when one does not fit (with
//! room for the 8-byte end marker), the writer fills the rest of the segment with a blank
//! record and moves to the next segment, whose base is the previous base plus the size.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use ferromq_protocol::message::{
    record_physical_offset, verify_record, BLANK_MAGIC, MAGIC_V1, MAGIC_V2,
};
use tracing::{info, warn};

use crate::{file_io, io_err, list_offset_files, offset_file_name, StoreError};

/// Smallest valid record: the fixed fields of a V1 record with empty body, topic, props.
const MIN_RECORD_BYTES: u32 = 84 + 4 + 1 + 2;

/// Room every segment keeps for its end marker (`END_FILE_MIN_BLANK_LENGTH`).
pub(crate) const BLANK_BYTES: u64 = 8;

/// Where the next record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    pub at: u64,
    /// The record does not fit the current segment: a blank record must end it at this
    /// offset first.
    pub blank_at: Option<u64>,
}

/// The end marker for a segment, written at `offset`: `| rest of segment | BLANK_MAGIC |`.
pub(crate) fn blank_record(offset: u64, segment_bytes: u64) -> [u8; 8] {
    let rest = segment_bytes - offset % segment_bytes;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(rest as u32).to_be_bytes());
    b[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    b
}

/// What the 8 bytes at the head of an entry say.
pub(crate) enum Head {
    Record(u32),
    Blank(u32),
    Invalid,
}

pub(crate) fn parse_head(head: &[u8]) -> Head {
    let size = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
    let magic = i32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
    match magic {
        MAGIC_V1 | MAGIC_V2 if size >= MIN_RECORD_BYTES => Head::Record(size),
        BLANK_MAGIC if size as u64 >= BLANK_BYTES => Head::Blank(size),
        _ => Head::Invalid,
    }
}

/// A record that is whole and says it is stored where it was found.
pub(crate) fn record_is_valid(record: &[u8], offset: u64) -> bool {
    verify_record(record).is_ok() && record_physical_offset(record) == Some(offset as i64)
}

pub(crate) struct Segment {
    pub base: u64,
    pub file: File,
    pub path: PathBuf,
    /// The whole segment mapped read-only, made on its first read. Readers slice it
    /// instead of issuing a positioned read per record: consumers of a topic with several
    /// queues read records that are not adjacent in the log, and a `pread` each cost
    /// 45 % of the broker's CPU when draining a backlog.
    view: OnceLock<Bytes>,
}

impl Segment {
    fn new(base: u64, file: File, path: PathBuf) -> Self {
        Segment {
            base,
            file,
            path,
            view: OnceLock::new(),
        }
    }

    fn view(&self, segment_bytes: u64) -> Result<&Bytes, StoreError> {
        if let Some(view) = self.view.get() {
            return Ok(view);
        }
        let map = map_read_only(&self.file, segment_bytes).map_err(io_err(&self.path))?;
        Ok(self.view.get_or_init(|| Bytes::from_owner(map)))
    }
}

/// Maps `len` bytes of a segment file (which may still be shorter: it grows by appends).
#[allow(unsafe_code)]
fn map_read_only(file: &File, len: u64) -> std::io::Result<memmap2::Mmap> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: the mapping is read-only and only sliced below the commit log's write offset,
    // which never passes the file's length: appends extend the file before the offset moves,
    // the file is only shortened by recovery before any reader exists, and a roll-back punches
    // a hole (keeping the length) instead of truncating, so no mapped page a reader can reach
    // ever lies past the end of the file. Writes through `pwrite` are visible in a shared
    // mapping of the same file.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}

pub(crate) struct CommitLog {
    dir: PathBuf,
    segment_bytes: u64,
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    /// Offset where the next entry goes (or, rolled, the next segment's base).
    write_offset: AtomicU64,
    /// Offset up to which an fsync has completed.
    flushed_offset: AtomicU64,
    /// Serializes publishing a flush with rolling the tail back, so a flush that began
    /// before a roll-back never marks the rolled-back range as flushed.
    publish: Mutex<u64>,
    /// A segment was created since the directory was last fsynced. The next flush syncs it
    /// before any data in that segment counts as flushed; the append that created it does
    /// not wait for it (an unflushed entry is not promised to anyone yet).
    dir_unsynced: AtomicBool,
}

/// Calls `f(entry_offset, record)` for each valid entry found by a scan.
pub(crate) type RecordVisitor<'a> = dyn FnMut(u64, &[u8]) + 'a;

impl CommitLog {
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments = BTreeMap::new();
        for (base, path) in list_offset_files(dir)? {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            segments.insert(base, Arc::new(Segment::new(base, file, path)));
        }
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: RwLock::new(segments),
            write_offset: AtomicU64::new(0),
            flushed_offset: AtomicU64::new(0),
            publish: Mutex::new(0),
            dir_unsynced: AtomicBool::new(false),
        })
    }

    pub fn write_offset(&self) -> u64 {
        self.write_offset.load(Ordering::Acquire)
    }

    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset.load(Ordering::Acquire)
    }

    /// Smallest offset still stored.
    pub fn min_offset(&self) -> u64 {
        let segs = self.segments.read().expect("segments lock");
        segs.keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.write_offset())
    }

    /// Refuses a log written in FerroMQ's first layout (a CRC before every record): its
    /// offsets differ from Apache's, so it cannot be read as this layout.
    pub fn check_layout(&self) -> Result<(), StoreError> {
        let Some(first) = self
            .segments
            .read()
            .expect("segments lock")
            .values()
            .next()
            .cloned()
        else {
            return Ok(());
        };
        let mut head = [0u8; 12];
        let mut reader = &first.file;
        if reader.read_exact(&mut head).is_err() {
            return Ok(());
        }
        let magic_at = |pos: usize| i32::from_be_bytes(head[pos..pos + 4].try_into().expect("4"));
        let is_magic = |m: i32| m == MAGIC_V1 || m == MAGIC_V2;
        if !is_magic(magic_at(4)) && is_magic(magic_at(8)) {
            return Err(StoreError::LegacyLayout {
                path: first.path.clone(),
            });
        }
        Ok(())
    }

    /// Scans from `from` (a record boundary; clamped to the oldest segment), verifying every
    /// record, calling `visit` for each. The first invalid record ends the log: it and
    /// everything after it are removed. Returns the end offset.
    pub fn recover(&self, from: u64, visit: &mut RecordVisitor<'_>) -> Result<u64, StoreError> {
        let segs: Vec<Arc<Segment>> = self
            .segments
            .read()
            .expect("segments lock")
            .values()
            .cloned()
            .collect();
        let Some(first) = segs.first() else {
            self.write_offset.store(from, Ordering::Release);
            self.flushed_offset.store(from, Ordering::Release);
            return Ok(from);
        };
        let start = from.max(first.base);
        let mut pos = start;
        let mut end = pos;
        let mut torn = false;
        let scanned: Vec<&Arc<Segment>> = segs
            .iter()
            .filter(|s| s.base + self.segment_bytes > start)
            .collect();
        for (i, seg) in scanned.iter().enumerate() {
            if torn {
                warn!(path = %seg.path.display(), "removing segment after a torn record");
                std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
                self.segments
                    .write()
                    .expect("segments lock")
                    .remove(&seg.base);
                continue;
            }
            if pos < seg.base {
                pos = seg.base;
            }
            let (valid_end, clean) = self.scan_segment(seg, pos - seg.base, visit)?;
            end = seg.base + valid_end;
            let has_next = i + 1 < scanned.len();
            if !clean {
                warn!(path = %seg.path.display(), offset = end, "torn or corrupt record; truncating the commit log here");
                file_io::set_len(&seg.file, &seg.path, valid_end).map_err(io_err(&seg.path))?;
                file_io::sync_data(&seg.file, &seg.path).map_err(io_err(&seg.path))?;
                torn = true;
            } else if has_next && valid_end < self.segment_bytes {
                // A power failure lost this segment's end marker but kept the next
                // segment's records: put the marker back, so the log reads (and copies)
                // across the boundary.
                self.seal(seg, valid_end)?;
                end = seg.base + self.segment_bytes;
            }
            pos = end;
        }
        self.write_offset.store(end, Ordering::Release);
        self.flushed_offset.store(end, Ordering::Release);
        info!(end_offset = end, "commit log recovered");
        Ok(end)
    }

    fn seal(&self, seg: &Segment, within: u64) -> Result<(), StoreError> {
        warn!(path = %seg.path.display(), at = within, "segment end marker missing; rewriting it");
        let blank = blank_record(seg.base + within, self.segment_bytes);
        file_io::write_at(&seg.file, &seg.path, &blank, within).map_err(io_err(&seg.path))?;
        file_io::set_len(&seg.file, &seg.path, self.segment_bytes).map_err(io_err(&seg.path))?;
        file_io::sync_data(&seg.file, &seg.path).map_err(io_err(&seg.path))
    }

    /// Returns (end of valid data within the segment, whether the segment ended cleanly).
    /// A segment ended by a blank record is valid to its full size.
    fn scan_segment(
        &self,
        seg: &Segment,
        start: u64,
        visit: &mut RecordVisitor<'_>,
    ) -> Result<(u64, bool), StoreError> {
        let len = seg.file.metadata().map_err(io_err(&seg.path))?.len();
        if start > len {
            return Ok((len, false));
        }
        let mut reader = BufReader::with_capacity(1 << 20, &seg.file);
        reader
            .seek(SeekFrom::Start(start))
            .map_err(io_err(&seg.path))?;
        let mut pos = start;
        let mut record = Vec::new();
        loop {
            if pos == len {
                return Ok((pos, true));
            }
            if len - pos < BLANK_BYTES {
                return Ok((pos, false));
            }
            let mut head = [0u8; 8];
            reader.read_exact(&mut head).map_err(io_err(&seg.path))?;
            let size = match parse_head(&head) {
                Head::Blank(size) if pos + size as u64 == self.segment_bytes => {
                    return Ok((self.segment_bytes, true));
                }
                Head::Record(size) if size as u64 <= len - pos => size,
                _ => return Ok((pos, false)),
            };
            record.clear();
            record.extend_from_slice(&head);
            record.resize(size as usize, 0);
            reader
                .read_exact(&mut record[8..])
                .map_err(io_err(&seg.path))?;
            if !record_is_valid(&record, seg.base + pos) {
                return Ok((pos, false));
            }
            visit(seg.base + pos, &record);
            pos += size as u64;
        }
    }

    /// Where a record of `len` bytes appended at `offset` goes.
    pub fn place(&self, offset: u64, len: u64) -> Result<Placement, StoreError> {
        if len + BLANK_BYTES > self.segment_bytes {
            return Err(StoreError::RecordTooLarge {
                size: len as usize,
                segment_bytes: self.segment_bytes,
            });
        }
        let within = offset % self.segment_bytes;
        if within + len + BLANK_BYTES > self.segment_bytes {
            Ok(Placement {
                at: offset - within + self.segment_bytes,
                blank_at: Some(offset),
            })
        } else {
            Ok(Placement {
                at: offset,
                blank_at: None,
            })
        }
    }

    /// No segment yet: a replica may start its copy at any segment base.
    pub fn is_empty(&self) -> bool {
        self.segments.read().expect("segments lock").is_empty()
    }

    /// Moves an empty log's end to `offset`.
    pub fn start_at(&self, offset: u64) {
        self.write_offset.store(offset, Ordering::Release);
        self.flushed_offset.store(offset, Ordering::Release);
    }

    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Writes `bytes` (whole records, within one segment) at `offset`. Only the appender
    /// calls this, and `offset` is the current write offset or the next segment's base.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let base = offset - offset % self.segment_bytes;
        if offset - base + bytes.len() as u64 > self.segment_bytes {
            return Err(StoreError::CrossesSegment {
                offset,
                len: bytes.len(),
            });
        }
        let seg = self.segment_for_write(base)?;
        file_io::write_at(&seg.file, &seg.path, bytes, offset - base).map_err(io_err(&seg.path))?;
        self.write_offset
            .store(offset + bytes.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Ends the segment holding `offset` (the write offset) with a blank record; the next
    /// write goes to the next segment's base.
    pub fn write_blank(&self, offset: u64) -> Result<(), StoreError> {
        let base = offset - offset % self.segment_bytes;
        let seg = self.segment_for_write(base)?;
        let blank = blank_record(offset, self.segment_bytes);
        file_io::write_at(&seg.file, &seg.path, &blank, offset - base)
            .map_err(io_err(&seg.path))?;
        // The marker claims the rest of the segment: give the file that length (a hole), so
        // the whole segment reads, as Apache's does.
        file_io::set_len(&seg.file, &seg.path, self.segment_bytes).map_err(io_err(&seg.path))?;
        self.write_offset
            .store(base + self.segment_bytes, Ordering::Release);
        Ok(())
    }
    fn segment_for_write(&self, base: u64) -> Result<Arc<Segment>, StoreError> {
        if let Some(seg) = self.segments.read().expect("segments lock").get(&base) {
            return Ok(seg.clone());
        }
        let path = self.dir.join(offset_file_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        // Set before the segment can take data, so that a flush which sees that data also
        // sees this (see `flush`).
        self.dir_unsynced.store(true, Ordering::Release);
        let seg = Arc::new(Segment::new(base, file, path));
        self.segments
            .write()
            .expect("segments lock")
            .insert(base, seg.clone());
        Ok(seg)
    }

    /// The `len` bytes at `offset`, without copying; `None` when that range is not stored.
    pub fn read(&self, offset: u64, len: usize) -> Result<Option<Bytes>, StoreError> {
        let within = offset % self.segment_bytes;
        if offset + len as u64 > self.write_offset() || within + len as u64 > self.segment_bytes {
            return Ok(None);
        }
        let base = offset - within;
        let Some(seg) = self
            .segments
            .read()
            .expect("segments lock")
            .get(&base)
            .cloned()
        else {
            return Ok(None);
        };
        let within = within as usize;
        Ok(Some(
            seg.view(self.segment_bytes)?.slice(within..within + len),
        ))
    }

    /// Reads the record at `offset`, checking that it is whole.
    pub fn read_record(&self, offset: u64) -> Result<Option<Bytes>, StoreError> {
        let Some(head) = self.read(offset, 8)? else {
            return Ok(None);
        };
        let Head::Record(size) = parse_head(&head) else {
            return Ok(None);
        };
        let Some(record) = self.read(offset, size as usize)? else {
            return Ok(None);
        };
        if !record_is_valid(&record, offset) {
            warn!(offset, "record failed its checks; not served");
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// fsyncs every segment that may hold unflushed data. Returns the flushed offset.
    pub fn flush(&self) -> Result<u64, StoreError> {
        let roll_backs = *self.publish.lock().expect("flush publish lock");
        let target = self.write_offset();
        let from = self.flushed_offset();
        if target <= from {
            return Ok(from);
        }
        // After `target` was read: a segment holding data below it has raised the flag.
        if self.dir_unsynced.swap(false, Ordering::AcqRel) {
            // A new file's directory entry must be durable before anything in it counts
            // as flushed.
            let synced = File::open(&self.dir).and_then(|dir| dir.sync_all());
            if let Err(e) = synced {
                self.dir_unsynced.store(true, Ordering::Release);
                return Err(io_err(&self.dir)(e));
            }
        }
        let first_base = from - from % self.segment_bytes;
        let segs: Vec<Arc<Segment>> = self
            .segments
            .read()
            .expect("segments lock")
            .range(first_base..)
            .map(|(_, s)| s.clone())
            .collect();
        for seg in segs {
            file_io::sync_data(&seg.file, &seg.path).map_err(io_err(&seg.path))?;
        }
        let published = self.publish.lock().expect("flush publish lock");
        if *published == roll_backs {
            self.flushed_offset.fetch_max(target, Ordering::AcqRel);
        }
        drop(published);
        Ok(self.flushed_offset())
    }

    /// Undoes a failed append: the tail from `to` on is cut off (freeing its space) so
    /// that neither readers nor recovery ever see it.
    pub fn roll_back(&self, to: u64) -> Result<(), StoreError> {
        let mut roll_backs = self.publish.lock().expect("flush publish lock");
        *roll_backs += 1;
        self.write_offset.store(to, Ordering::Release);
        self.flushed_offset.fetch_min(to, Ordering::AcqRel);
        drop(roll_backs);
        let mut segments = self.segments.write().expect("segments lock");
        let base = to - to % self.segment_bytes;
        let doomed: Vec<u64> = segments
            .range(base..)
            .map(|(b, _)| *b)
            .filter(|b| *b > base || to == base)
            .collect();
        for b in doomed {
            if let Some(seg) = segments.remove(&b) {
                std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            }
        }
        if let Some(seg) = segments.get(&base) {
            free_tail(seg, to - base)?;
        }
        Ok(())
    }

    /// Makes a cut at `offset` durable: the segment holding it and the directory are synced.
    pub fn sync_tail(&self, offset: u64) -> Result<(), StoreError> {
        let base = offset - offset % self.segment_bytes;
        if let Some(seg) = self.segments.read().expect("segments lock").get(&base) {
            file_io::sync_data(&seg.file, &seg.path).map_err(io_err(&seg.path))?;
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }

    /// Deletes whole segments, oldest first, that were last written before `cutoff` and are
    /// not the active one. Returns the new minimum offset.
    pub fn delete_segments_older_than(
        &self,
        cutoff: std::time::SystemTime,
    ) -> Result<u64, StoreError> {
        let active = self.write_offset().saturating_sub(1);
        let active_base = active - active % self.segment_bytes;
        let segs: Vec<Arc<Segment>> = self
            .segments
            .read()
            .expect("segments lock")
            .values()
            .cloned()
            .collect();
        for seg in segs {
            if seg.base >= active_base {
                break;
            }
            let modified = seg
                .file
                .metadata()
                .and_then(|m| m.modified())
                .map_err(io_err(&seg.path))?;
            if modified >= cutoff {
                break;
            }
            info!(path = %seg.path.display(), "deleting expired commit-log segment");
            self.segments
                .write()
                .expect("segments lock")
                .remove(&seg.base);
            std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
        }
        Ok(self.min_offset())
    }
}

/// Frees a segment's space from `from` on without shortening the file: readers may hold
/// mapped pages there, and a page past the end of a file faults (SIGBUS) when touched.
/// Recovery finds zeros where the cut entries were and ends the log there.
fn free_tail(seg: &Segment, from: u64) -> Result<(), StoreError> {
    let len = seg.file.metadata().map_err(io_err(&seg.path))?.len();
    if len <= from {
        return Ok(());
    }
    match file_io::punch_hole(&seg.file, &seg.path, from, len - from) {
        Ok(()) => Ok(()),
        // A file system without hole punching: zero the first entry header instead, which
        // ends the log there for recovery just the same (it needs no new space).
        Err(_) => file_io::write_at(&seg.file, &seg.path, &[0u8; BLANK_BYTES as usize], from)
            .map_err(io_err(&seg.path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferromq_protocol::message::MessageExt;

    fn record(fill: u8, body_len: usize, at: u64) -> Vec<u8> {
        let msg = MessageExt {
            topic: "T".into(),
            commit_log_offset: at as i64,
            body: vec![fill; body_len].into(),
            ..Default::default()
        };
        let mut buf = bytes::BytesMut::new();
        msg.encode(&mut buf);
        buf.to_vec()
    }

    #[test]
    fn a_reader_holding_rolled_back_bytes_sees_zeros_not_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), 1 << 20).unwrap();
        log.recover(0, &mut |_, _| {}).unwrap();
        let kept = record(1, 200, 0);
        let doomed = record(2, 20_000, kept.len() as u64);
        log.write(0, &kept).unwrap();
        log.write(kept.len() as u64, &doomed).unwrap();
        let held = log
            .read(kept.len() as u64, doomed.len())
            .unwrap()
            .expect("the doomed record is readable before the roll-back");
        log.roll_back(kept.len() as u64).unwrap();
        // Touching every page of the held view: past a truncated file's end this would be
        // SIGBUS and take the whole broker down.
        let touched: u64 = held.iter().map(|b| u64::from(*b)).sum();
        assert!(
            touched < u64::from(u8::MAX) * 4096,
            "only the first page may keep data"
        );
        assert!(
            held[4096..].iter().all(|b| *b == 0),
            "the cut tail's space is freed"
        );
        assert_eq!(log.read(kept.len() as u64, 8).unwrap(), None);
        let read = log.read_record(0).unwrap().expect("the kept record stays");
        assert_eq!(&read[..], &kept[..]);
        drop(log);
        // Recovery ends the log where the cut began.
        let log = CommitLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(log.recover(0, &mut |_, _| {}).unwrap(), kept.len() as u64);
    }

    #[test]
    fn a_full_segment_ends_with_a_blank_record_and_recovery_reads_across_it() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 4096;
        let log = CommitLog::open(dir.path(), seg).unwrap();
        log.recover(0, &mut |_, _| {}).unwrap();
        let mut at = 0;
        let mut placed = Vec::new();
        for i in 0..10u8 {
            let len = record(i, 1000, 0).len() as u64;
            let p = log.place(at, len).unwrap();
            if let Some(blank) = p.blank_at {
                log.write_blank(blank).unwrap();
            }
            log.write(p.at, &record(i, 1000, p.at)).unwrap();
            placed.push(p.at);
            at = p.at + len;
        }
        // Three 1,092-byte records fit a 4 KiB segment with room for the marker; the fourth
        // goes to the next segment.
        let len = record(0, 1000, 0).len() as u64;
        assert_eq!(len, 1092);
        assert_eq!(placed[3], seg);
        let first = dir.path().join(offset_file_name(0));
        assert_eq!(std::fs::metadata(&first).unwrap().len(), seg);
        let tail = log.read(placed[2] + len, 8).unwrap().unwrap();
        assert!(matches!(parse_head(&tail), Head::Blank(n) if placed[2] + len + n as u64 == seg));
        drop(log);
        let log = CommitLog::open(dir.path(), seg).unwrap();
        let mut seen = Vec::new();
        assert_eq!(log.recover(0, &mut |o, _| seen.push(o)).unwrap(), at);
        assert_eq!(seen, placed);
        assert!(
            log.place(0, seg).is_err(),
            "a record must leave room for the marker"
        );
    }

    #[test]
    fn a_lost_end_marker_is_rewritten_when_the_next_segment_survived() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 4096;
        let log = CommitLog::open(dir.path(), seg).unwrap();
        log.recover(0, &mut |_, _| {}).unwrap();
        let first_record = record(1, 1000, 0);
        let len = first_record.len() as u64;
        log.write(0, &first_record).unwrap();
        log.write_blank(len).unwrap();
        log.write(seg, &record(2, 1000, seg)).unwrap();
        drop(log);
        let first = dir.path().join(offset_file_name(0));
        let f = OpenOptions::new().write(true).open(&first).unwrap();
        f.set_len(len).unwrap();
        let log = CommitLog::open(dir.path(), seg).unwrap();
        assert_eq!(log.recover(0, &mut |_, _| {}).unwrap(), seg + len);
        assert!(matches!(
            parse_head(&log.read(len, 8).unwrap().unwrap()),
            Head::Blank(_)
        ));
    }
}
