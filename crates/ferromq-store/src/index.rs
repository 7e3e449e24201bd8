//! Hash index from `topic#key` (message keys and unique ids) to commit-log offsets.
//!
//! ```text
//! | magic u32 | count u32 | min_phys u64 | max_phys u64 | begin_ms i64 | end_ms i64 |   header, 40 bytes
//! | slot u32 × slots |                       1-based number of the newest entry per hash slot
//! | hash u32 | phys u64 | store_ms i64 | prev u32 | × entries      24 bytes each, chained by prev
//! ```
//! Files are sparse and written with positioned writes; a file is full at `entries`.
//! The active file's slot table lives in memory and its newest entries are written behind
//! (see [`WRITE_BEHIND_BYTES`]); both reach the file at checkpoints, and recovery rebuilds
//! anything later from the commit log.
//! Hash collisions and stale chains after a crash are tolerated: callers verify each hit
//! against the stored record.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::{file_io, io_err, list_offset_files, offset_file_name, StoreError};

const MAGIC: u32 = 0x4645_4958; // "FEIX"
const HEADER_BYTES: u64 = 40;
const ENTRY_BYTES: u64 = 24;
/// Chain steps one query may take, so a pathological chain cannot stall a request.
const MAX_CHAIN_STEPS: usize = 100_000;
/// Unwritten entry bytes that make an insert write them out (256 entries): one positioned
/// write per this many keys instead of one per send.
const WRITE_BEHIND_BYTES: usize = 256 * ENTRY_BYTES as usize;

#[derive(Debug, Clone, Copy, Default)]
struct Header {
    count: u32,
    min_phys: u64,
    max_phys: u64,
    begin_ms: i64,
    end_ms: i64,
}

struct IndexFile {
    file: File,
    path: PathBuf,
    header: Mutex<Header>,
}

pub(crate) struct Index {
    dir: PathBuf,
    slots: u32,
    entries: u32,
    files: RwLock<Vec<Arc<IndexFile>>>,
    /// The file being written, with its slot table in memory: appends then cost one
    /// positioned write per batch, and the table is written out at checkpoints.
    active: Mutex<Option<ActiveFile>>,
}

struct ActiveFile {
    file: Arc<IndexFile>,
    slots: Vec<u32>,
    dirty: bool,
    /// Encoded entries from number `unwritten_first` on, not yet in the file.
    unwritten: Vec<u8>,
    unwritten_first: u32,
}

impl ActiveFile {
    fn new(file: Arc<IndexFile>, slots: Vec<u32>) -> Self {
        let next = file.header.lock().expect("index header lock").count + 1;
        ActiveFile {
            file,
            slots,
            dirty: false,
            unwritten: Vec::new(),
            unwritten_first: next,
        }
    }

    /// Writes the unwritten entries to the file.
    fn write_unwritten(&mut self, slots: u32) -> Result<(), StoreError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let f = &self.file;
        let at = f.entry_pos(slots, self.unwritten_first);
        file_io::write_at(&f.file, &f.path, &self.unwritten, at).map_err(io_err(&f.path))?;
        self.unwritten_first += (self.unwritten.len() / ENTRY_BYTES as usize) as u32;
        self.unwritten.clear();
        Ok(())
    }
}

/// The hash a message key is indexed under: the CRC of `topic#key`, fed in parts so that
/// no string is built per key.
pub(crate) fn key_hash(topic: &str, key: &str) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(topic.as_bytes());
    h.update(b"#");
    h.update(key.as_bytes());
    h.finalize()
}

impl IndexFile {
    fn slot_pos(slot: u32) -> u64 {
        // Slots of sealed files are read from disk; the active file's live in memory.
        HEADER_BYTES + slot as u64 * 4
    }

    fn entry_pos(&self, slots: u32, n: u32) -> u64 {
        HEADER_BYTES + slots as u64 * 4 + (n as u64 - 1) * ENTRY_BYTES
    }

    fn read_u32(&self, pos: u64) -> Result<u32, StoreError> {
        let mut b = [0u8; 4];
        match self.file.read_exact_at(&mut b, pos) {
            Ok(()) => Ok(u32::from_be_bytes(b)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }

    fn write_header(&self) -> Result<(), StoreError> {
        let h = *self.header.lock().expect("index header lock");
        let mut b = Vec::with_capacity(HEADER_BYTES as usize);
        b.extend_from_slice(&MAGIC.to_be_bytes());
        b.extend_from_slice(&h.count.to_be_bytes());
        b.extend_from_slice(&h.min_phys.to_be_bytes());
        b.extend_from_slice(&h.max_phys.to_be_bytes());
        b.extend_from_slice(&h.begin_ms.to_be_bytes());
        b.extend_from_slice(&h.end_ms.to_be_bytes());
        file_io::write_at(&self.file, &self.path, &b, 0).map_err(io_err(&self.path))
    }

    fn read_header(file: &File, path: &Path) -> Result<Header, StoreError> {
        let mut b = [0u8; HEADER_BYTES as usize];
        file.read_exact_at(&mut b, 0).map_err(io_err(path))?;
        if u32::from_be_bytes(b[0..4].try_into().expect("4 bytes")) != MAGIC {
            return Ok(Header::default());
        }
        Ok(Header {
            count: u32::from_be_bytes(b[4..8].try_into().expect("4 bytes")),
            min_phys: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            max_phys: u64::from_be_bytes(b[16..24].try_into().expect("8 bytes")),
            begin_ms: i64::from_be_bytes(b[24..32].try_into().expect("8 bytes")),
            end_ms: i64::from_be_bytes(b[32..40].try_into().expect("8 bytes")),
        })
    }
}

impl Index {
    pub fn open(dir: &Path, slots: u32, entries: u32) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut files = Vec::new();
        for (_, path) in list_offset_files(dir)? {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            // A file created after the last checkpoint may be empty or short after a power
            // failure; recovery rebuilds its entries from the commit log.
            let len = file.metadata().map_err(io_err(&path))?.len();
            if len < HEADER_BYTES + slots as u64 * 4 {
                tracing::warn!(path = %path.display(), len, "index file cut short (power failure?); removed, its entries are rebuilt");
                drop(file);
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            let header = IndexFile::read_header(&file, &path)?;
            files.push(Arc::new(IndexFile {
                file,
                path,
                header: Mutex::new(header),
            }));
        }
        Ok(Index {
            dir: dir.to_path_buf(),
            slots,
            entries,
            files: RwLock::new(files),
            active: Mutex::new(None),
        })
    }

    fn slot_table_bytes(&self) -> usize {
        self.slots as usize * 4
    }

    fn load_slots(&self, f: &IndexFile) -> Result<Vec<u32>, StoreError> {
        let mut raw = vec![0u8; self.slot_table_bytes()];
        f.file
            .read_exact_at(&mut raw, HEADER_BYTES)
            .map_err(io_err(&f.path))?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }

    fn write_slots(&self, active: &ActiveFile) -> Result<(), StoreError> {
        let mut raw = Vec::with_capacity(self.slot_table_bytes());
        for s in &active.slots {
            raw.extend_from_slice(&s.to_be_bytes());
        }
        let f = &active.file;
        file_io::write_at(&f.file, &f.path, &raw, HEADER_BYTES).map_err(io_err(&f.path))?;
        f.write_header()
    }

    /// The active file, opening the newest one or creating a new one when it is full.
    fn active_file<'a>(
        &self,
        active: &'a mut Option<ActiveFile>,
        phys: u64,
    ) -> Result<&'a mut ActiveFile, StoreError> {
        let full =
            |a: &ActiveFile| a.file.header.lock().expect("index header lock").count >= self.entries;
        if active.is_none() {
            let newest = self.files.read().expect("index files lock").last().cloned();
            if let Some(f) = newest {
                let slots = self.load_slots(&f)?;
                *active = Some(ActiveFile::new(f, slots));
            }
        }
        if active.as_ref().is_some_and(full) {
            // Seal the full file before moving on.
            let mut a = active.take().expect("checked above");
            a.write_unwritten(self.slots)?;
            self.write_slots(&a)?;
            file_io::sync_data(&a.file.file, &a.file.path).map_err(io_err(&a.file.path))?;
        }
        if active.is_none() {
            let path = self.dir.join(offset_file_name(phys));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let len = HEADER_BYTES + self.slots as u64 * 4 + self.entries as u64 * ENTRY_BYTES;
            file_io::set_len(&file, &path, len).map_err(io_err(&path))?;
            let f = Arc::new(IndexFile {
                file,
                path,
                header: Mutex::new(Header {
                    min_phys: phys,
                    ..Default::default()
                }),
            });
            f.write_header()?;
            self.files
                .write()
                .expect("index files lock")
                .push(f.clone());
            *active = Some(ActiveFile::new(f, vec![0; self.slots as usize]));
        }
        Ok(active.as_mut().expect("set above"))
    }

    /// Adds (key hash, `phys`, store time) entries; see [`key_hash`]. Only the appender
    /// calls this.
    pub fn put_batch(&self, items: &[(u32, u64, i64)]) -> Result<(), StoreError> {
        let mut guard = self.active.lock().expect("active index lock");
        let mut rest = items;
        while let Some(first) = rest.first() {
            let a = self.active_file(&mut guard, first.1)?;
            let mut h = *a.file.header.lock().expect("index header lock");
            let room = (self.entries - h.count) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            let buf = &mut a.unwritten;
            for &(hash, ref phys, ref ms) in now {
                let slot = (hash % self.slots) as usize;
                h.count += 1;
                if h.count == 1 {
                    h.min_phys = *phys;
                    h.begin_ms = *ms;
                }
                h.max_phys = h.max_phys.max(*phys);
                h.end_ms = h.end_ms.max(*ms);
                buf.extend_from_slice(&hash.to_be_bytes());
                buf.extend_from_slice(&phys.to_be_bytes());
                buf.extend_from_slice(&ms.to_be_bytes());
                buf.extend_from_slice(&a.slots[slot].to_be_bytes());
                a.slots[slot] = h.count;
            }
            *a.file.header.lock().expect("index header lock") = h;
            a.dirty = true;
            if a.unwritten.len() >= WRITE_BEHIND_BYTES {
                a.write_unwritten(self.slots)?;
            }
            rest = later;
        }
        Ok(())
    }

    /// Candidate commit-log offsets for `key` stored within `[begin_ms, end_ms]`, newest
    /// first, at most `max`.
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let hash = key_hash(topic, key);
        let slot = hash % self.slots;
        let files: Vec<Arc<IndexFile>> = self.files.read().expect("index files lock").clone();
        let mut out = Vec::new();
        for f in files.iter().rev() {
            let h = *f.header.lock().expect("index header lock");
            if h.count == 0 || h.end_ms < begin_ms || h.begin_ms > end_ms {
                continue;
            }
            // The active file's slot and unwritten entries, as of now: entries never change
            // once added, so a copy stays true after it is written out.
            let in_memory = {
                let active = self.active.lock().expect("active index lock");
                active
                    .as_ref()
                    .filter(|a| Arc::ptr_eq(&a.file, f))
                    .map(|a| {
                        (
                            a.slots[slot as usize],
                            a.unwritten_first,
                            a.unwritten.clone(),
                        )
                    })
            };
            let (mut n, unwritten_first, unwritten) = match in_memory {
                Some(m) => m,
                None => (f.read_u32(IndexFile::slot_pos(slot))?, u32::MAX, Vec::new()),
            };
            let mut steps = 0;
            while n != 0 && n <= self.entries && out.len() < max && steps < MAX_CHAIN_STEPS {
                let mut e = [0u8; ENTRY_BYTES as usize];
                let at = n
                    .checked_sub(unwritten_first)
                    .map(|i| i as usize * ENTRY_BYTES as usize);
                match at.and_then(|at| unwritten.get(at..at + ENTRY_BYTES as usize)) {
                    Some(bytes) => e.copy_from_slice(bytes),
                    None => f
                        .file
                        .read_exact_at(&mut e, f.entry_pos(self.slots, n))
                        .map_err(io_err(&f.path))?,
                }
                let ehash = u32::from_be_bytes(e[0..4].try_into().expect("4 bytes"));
                let phys = u64::from_be_bytes(e[4..12].try_into().expect("8 bytes"));
                let ms = i64::from_be_bytes(e[12..20].try_into().expect("8 bytes"));
                let prev = u32::from_be_bytes(e[20..24].try_into().expect("4 bytes"));
                if ehash == hash && ms >= begin_ms && ms <= end_ms && !out.contains(&phys) {
                    out.push(phys);
                }
                // Chains only point backwards; anything else is damage.
                if prev >= n {
                    break;
                }
                n = prev;
                steps += 1;
            }
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    /// Writes the active file's unwritten entries, slot table and header, then syncs it.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut guard = self.active.lock().expect("active index lock");
        if let Some(a) = guard.as_mut().filter(|a| a.dirty) {
            a.write_unwritten(self.slots)?;
            self.write_slots(a)?;
            file_io::sync_data(&a.file.file, &a.file.path).map_err(io_err(&a.file.path))?;
            a.dirty = false;
        }
        Ok(())
    }

    /// Deletes full files whose entries all point below `min_phys`.
    pub fn delete_below(&self, min_phys: u64) -> Result<(), StoreError> {
        let mut files = self.files.write().expect("index files lock");
        while files.len() > 1 {
            let h = *files[0].header.lock().expect("index header lock");
            if h.max_phys >= min_phys {
                break;
            }
            let f = files.remove(0);
            std::fs::remove_file(&f.path).map_err(io_err(&f.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_run_through_written_and_unwritten_entries_alike() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path(), 4, 1000).unwrap();
        // 4 slots: every chain interleaves entries written out at 256 and 512 with
        // entries still in memory.
        let keys = 600u64;
        for i in 0..keys {
            index
                .put_batch(&[(key_hash("T", &format!("k{i}")), i, 1)])
                .unwrap();
        }
        let check = |index: &Index| {
            for i in 0..keys {
                let hits = index
                    .query("T", &format!("k{i}"), 1000, 0, i64::MAX)
                    .unwrap();
                assert!(hits.contains(&i), "k{i}: {hits:?}");
            }
        };
        check(&index);
        index.flush().unwrap();
        check(&index);
        drop(index);
        check(&Index::open(dir.path(), 4, 1000).unwrap());
    }
}
