//! The timer wheel: an on-disk index from due time to commit-log offset, so that pending
//! timer messages are bounded by disk, not memory.
//!
//! ```text
//! <dir>/wheel                 slots × | bucket_start_ms: i64 | last: u64 | count: u32 |   (20 bytes)
//! <dir>/log/<20-digit base>   records | due_ms: i64 | phys: u64 | prev: u64 |           (24 bytes)
//! ```
//! Time is cut into buckets of `bucket_ms`; bucket b lives in slot b mod slots, which
//! remembers the bucket it holds (a stale slot from an earlier turn of the wheel reads as
//! empty) and the newest log record of the bucket; records chain backwards through
//! `prev` (position + 1, 0 = end). The caller loads a bucket shortly before it is due and
//! fires its records from memory at their exact times.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{file_io, io_err, list_offset_files, offset_file_name, StoreError};

const SLOT_BYTES: u64 = 20;
const RECORD_BYTES: u64 = 24;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    bucket_start: i64,
    last: u64,
    count: u32,
}

/// The slots in memory, stored as plain words so that a new table is one zeroed
/// allocation (the kernel's zero pages, touched only where timers land) rather than
/// 6 MB written at start-up.
struct SlotTable(Vec<[u64; 3]>);

impl SlotTable {
    fn zeroed(len: usize) -> Self {
        SlotTable(vec![[0u64; 3]; len])
    }

    fn from_slots(slots: impl Iterator<Item = Slot>) -> Self {
        SlotTable(
            slots
                .map(|s| [s.bucket_start as u64, s.last, u64::from(s.count)])
                .collect(),
        )
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, idx: usize) -> Slot {
        let [bucket_start, last, count] = self.0[idx];
        Slot {
            bucket_start: bucket_start as i64,
            last,
            count: count as u32,
        }
    }

    fn set(&mut self, idx: usize, s: Slot) {
        self.0[idx] = [s.bucket_start as u64, s.last, u64::from(s.count)];
    }
}

struct LogSegment {
    file: File,
    path: PathBuf,
    max_due: i64,
}

/// A timer due at `due_ms` for the record at commit-log offset `phys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub due_ms: i64,
    pub phys: u64,
}

pub struct TimerWheel {
    bucket_ms: i64,
    wheel: File,
    wheel_path: PathBuf,
    slots: SlotTable,
    log_dir: PathBuf,
    log_segment_bytes: u64,
    log: BTreeMap<u64, LogSegment>,
    log_end: u64,
}

impl TimerWheel {
    /// Opens the wheel in `dir`, covering `slots` buckets of `bucket_ms`.
    pub fn open(
        dir: &Path,
        bucket_ms: i64,
        slots: usize,
        log_segment_bytes: u64,
    ) -> Result<Self, StoreError> {
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir).map_err(io_err(&log_dir))?;
        let wheel_path = dir.join("wheel");
        let wheel = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&wheel_path)
            .map_err(io_err(&wheel_path))?;
        let wanted = slots as u64 * SLOT_BYTES;
        let slot_count = slots;
        let slots = if wheel.metadata().map_err(io_err(&wheel_path))?.len() != wanted {
            // New, or a different size (a different wheel): start it afresh, all zeros,
            // without reading back the zeros just written (a fast first start).
            file_io::set_len(&wheel, &wheel_path, 0).map_err(io_err(&wheel_path))?;
            file_io::set_len(&wheel, &wheel_path, wanted).map_err(io_err(&wheel_path))?;
            SlotTable::zeroed(slot_count)
        } else {
            let mut raw = vec![0u8; wanted as usize];
            wheel
                .read_exact_at(&mut raw, 0)
                .map_err(io_err(&wheel_path))?;
            SlotTable::from_slots(raw.chunks_exact(SLOT_BYTES as usize).map(|c| Slot {
                bucket_start: i64::from_be_bytes(c[0..8].try_into().expect("8 bytes")),
                last: u64::from_be_bytes(c[8..16].try_into().expect("8 bytes")),
                count: u32::from_be_bytes(c[16..20].try_into().expect("4 bytes")),
            }))
        };
        let mut log = BTreeMap::new();
        let mut log_end = 0;
        for (base, path) in list_offset_files(&log_dir)? {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let len = file.metadata().map_err(io_err(&path))?.len() / RECORD_BYTES * RECORD_BYTES;
            file_io::set_len(&file, &path, len).map_err(io_err(&path))?;
            let mut raw = vec![0u8; len as usize];
            file.read_exact_at(&mut raw, 0).map_err(io_err(&path))?;
            let max_due = raw
                .chunks_exact(RECORD_BYTES as usize)
                .map(|r| i64::from_be_bytes(r[0..8].try_into().expect("8 bytes")))
                .max()
                .unwrap_or(i64::MIN);
            log_end = base + len;
            log.insert(
                base,
                LogSegment {
                    file,
                    path,
                    max_due,
                },
            );
        }
        Ok(TimerWheel {
            bucket_ms,
            wheel,
            wheel_path,
            slots,
            log_dir,
            log_segment_bytes,
            log,
            log_end,
        })
    }

    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// Start of the bucket holding `ms`.
    pub fn bucket_start(&self, ms: i64) -> i64 {
        ms.div_euclid(self.bucket_ms) * self.bucket_ms
    }

    /// How far ahead of `now_ms` a timer may be due.
    pub fn span_ms(&self) -> i64 {
        self.slots.len() as i64 * self.bucket_ms
    }

    fn slot_index(&self, bucket_start: i64) -> usize {
        (bucket_start.div_euclid(self.bucket_ms)).rem_euclid(self.slots.len() as i64) as usize
    }

    /// Adds timers: their log records in one write per segment, then their slots.
    pub fn add(&mut self, timers: &[Timer]) -> Result<(), StoreError> {
        let mut rest = timers;
        while !rest.is_empty() {
            let base = self.log_end - self.log_end % self.log_segment_bytes;
            let room = ((base + self.log_segment_bytes - self.log_end) / RECORD_BYTES) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            let mut buf = Vec::with_capacity(now.len() * RECORD_BYTES as usize);
            let mut touched = HashSet::new();
            let mut max_due = i64::MIN;
            for (i, t) in now.iter().enumerate() {
                let bucket = self.bucket_start(t.due_ms);
                let idx = self.slot_index(bucket);
                let mut slot = self.slots.get(idx);
                if slot.bucket_start != bucket || slot.last == 0 {
                    slot = Slot {
                        bucket_start: bucket,
                        last: 0,
                        count: 0,
                    };
                }
                let pos = self.log_end + i as u64 * RECORD_BYTES;
                buf.extend_from_slice(&t.due_ms.to_be_bytes());
                buf.extend_from_slice(&t.phys.to_be_bytes());
                buf.extend_from_slice(&slot.last.to_be_bytes());
                slot.last = pos + 1;
                slot.count += 1;
                self.slots.set(idx, slot);
                touched.insert(idx);
                max_due = max_due.max(t.due_ms);
            }
            let at = self.log_end - base;
            let seg = self.segment_for_write(base)?;
            file_io::write_at(&seg.file, &seg.path, &buf, at).map_err(io_err(&seg.path))?;
            seg.max_due = seg.max_due.max(max_due);
            self.log_end += buf.len() as u64;
            // Slots after the records they point to, so a crash never leaves a slot
            // pointing past the log.
            for idx in touched {
                let s = self.slots.get(idx);
                let mut b = [0u8; SLOT_BYTES as usize];
                b[0..8].copy_from_slice(&s.bucket_start.to_be_bytes());
                b[8..16].copy_from_slice(&s.last.to_be_bytes());
                b[16..20].copy_from_slice(&s.count.to_be_bytes());
                file_io::write_at(&self.wheel, &self.wheel_path, &b, idx as u64 * SLOT_BYTES)
                    .map_err(io_err(&self.wheel_path))?;
            }
            rest = later;
        }
        Ok(())
    }

    fn segment_for_write(&mut self, base: u64) -> Result<&mut LogSegment, StoreError> {
        if !self.log.contains_key(&base) {
            let path = self.log_dir.join(offset_file_name(base));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_err(&path))?;
            self.log.insert(
                base,
                LogSegment {
                    file,
                    path,
                    max_due: i64::MIN,
                },
            );
        }
        Ok(self.log.get_mut(&base).expect("inserted above"))
    }

    fn read_record(&self, pos: u64) -> Result<Option<(Timer, u64)>, StoreError> {
        let base = pos - pos % self.log_segment_bytes;
        let Some(seg) = self.log.get(&base) else {
            return Ok(None);
        };
        let mut b = [0u8; RECORD_BYTES as usize];
        match seg.file.read_exact_at(&mut b, pos - base) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err(&seg.path)(e)),
        }
        let timer = Timer {
            due_ms: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            phys: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        };
        Ok(Some((
            timer,
            u64::from_be_bytes(b[16..24].try_into().expect("8 bytes")),
        )))
    }

    /// The timers of the bucket starting at `bucket_start`, each once, oldest first.
    pub fn bucket(&self, bucket_start: i64) -> Result<Vec<Timer>, StoreError> {
        let slot = self.slots.get(self.slot_index(bucket_start));
        if slot.bucket_start != bucket_start {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(slot.count as usize);
        let mut seen = HashSet::with_capacity(slot.count as usize);
        let mut next = slot.last;
        // Chains only point backwards; the bound stops a damaged chain from looping.
        let mut steps = 0u64;
        while next != 0 && steps <= slot.count as u64 + 1 {
            let pos = next - 1;
            let Some((timer, prev)) = self.read_record(pos)? else {
                break;
            };
            if self.bucket_start(timer.due_ms) == bucket_start && seen.insert(timer) {
                out.push(timer);
            }
            if prev >= next {
                break;
            }
            next = prev;
            steps += 1;
        }
        out.reverse();
        Ok(out)
    }

    /// Timers recorded for buckets starting in `[from_ms, to_ms)` (duplicates included).
    pub fn pending_between(&self, from_ms: i64, to_ms: i64) -> u64 {
        let mut total = 0u64;
        let mut b = self.bucket_start(from_ms);
        let end = to_ms.min(from_ms.saturating_add(self.span_ms()));
        while b < end {
            let slot = self.slots.get(self.slot_index(b));
            if slot.bucket_start == b {
                total += slot.count as u64;
            }
            b += self.bucket_ms;
        }
        total
    }

    /// fsyncs the log, then the wheel: a slot made durable never points past the durable
    /// log.
    pub fn flush(&self) -> Result<(), StoreError> {
        if let Some(seg) = self.log.values().next_back() {
            file_io::sync_data(&seg.file, &seg.path).map_err(io_err(&seg.path))?;
        }
        file_io::sync_data(&self.wheel, &self.wheel_path).map_err(io_err(&self.wheel_path))?;
        Ok(())
    }

    /// Deletes log segments whose timers are all due before `fired_before_ms` (already
    /// delivered), except the one being written.
    pub fn delete_fired_segments(&mut self, fired_before_ms: i64) -> Result<(), StoreError> {
        let active = self.log_end - self.log_end % self.log_segment_bytes;
        let doomed: Vec<u64> = self
            .log
            .iter()
            .filter(|(base, seg)| **base < active && seg.max_due < fired_before_ms)
            .map(|(b, _)| *b)
            .collect();
        for base in doomed {
            if let Some(seg) = self.log.remove(&base) {
                std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_back_by_bucket_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TimerWheel::open(dir.path(), 1000, 100, 24 * 10).unwrap();
        let timers: Vec<Timer> = (0..25)
            .map(|i| Timer {
                due_ms: 10_000 + i * 400,
                phys: i as u64,
            })
            .collect();
        w.add(&timers).unwrap();
        assert_eq!(w.bucket(10_000).unwrap(), timers[0..3].to_vec());
        assert_eq!(w.bucket(11_000).unwrap(), timers[3..5].to_vec());
        assert_eq!(w.pending_between(10_000, 20_000), 25);
        w.flush().unwrap();
        drop(w);
        let w = TimerWheel::open(dir.path(), 1000, 100, 24 * 10).unwrap();
        assert_eq!(
            w.bucket(19_000).unwrap(),
            timers
                .iter()
                .filter(|t| t.due_ms / 1000 == 19)
                .copied()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_stale_slot_from_an_earlier_turn_reads_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TimerWheel::open(dir.path(), 1000, 10, 1 << 20).unwrap();
        w.add(&[Timer {
            due_ms: 1_500,
            phys: 1,
        }])
        .unwrap();
        // 11_500 lands in the same slot, one turn later.
        w.add(&[Timer {
            due_ms: 11_500,
            phys: 2,
        }])
        .unwrap();
        assert_eq!(w.bucket(1_000).unwrap(), vec![]);
        assert_eq!(
            w.bucket(11_000).unwrap(),
            vec![Timer {
                due_ms: 11_500,
                phys: 2
            }]
        );
    }

    #[test]
    fn fired_log_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TimerWheel::open(dir.path(), 1000, 100, 24 * 4).unwrap();
        let timers: Vec<Timer> = (0..12)
            .map(|i| Timer {
                due_ms: i * 1000,
                phys: i as u64,
            })
            .collect();
        w.add(&timers).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("log")).unwrap().count(),
            3
        );
        w.delete_fired_segments(8_000).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("log")).unwrap().count(),
            1
        );
        assert_eq!(w.bucket(9_000).unwrap(), vec![timers[9]]);
    }
}
