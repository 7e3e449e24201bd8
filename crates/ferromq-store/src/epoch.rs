//! The epoch file: which master epoch wrote which part of the commit log, as Apache's
//! `EpochFileCache` keeps it (`<root>/epochFileCheckpoint`, same text format), so replicas
//! can find where their logs stop agreeing after a failover.
//!
//! ```text
//! <N>
//! <crc32 of the N lines below, each with its newline, masked to 31 bits>
//! <epoch>-<startOffset>      (N lines, epochs and start offsets strictly increasing)
//! ```
//! The previous content is kept in `<file>.bak`, read when the main file is damaged.

use std::path::{Path, PathBuf};

use crate::{io_err, StoreError};

/// One epoch's part of the log: from `start` to the next entry's start (the last one is
/// open-ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start: u64,
}

/// The epochs of this replica's log, oldest first.
#[derive(Debug)]
pub struct EpochFile {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

fn encode(entries: &[EpochEntry]) -> String {
    let lines: String = entries
        .iter()
        .map(|e| format!("{}-{}\n", e.epoch, e.start))
        .collect();
    let crc = crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF;
    format!("{}\n{crc}\n{lines}", entries.len())
}

fn decode(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    let n: usize = lines.next()?.trim().parse().ok()?;
    let crc: u32 = lines.next()?.trim().parse().ok()?;
    let body: Vec<&str> = lines.take(n).collect();
    if body.len() != n {
        return None;
    }
    let joined: String = body.iter().map(|l| format!("{l}\n")).collect();
    if crc != 0 && crc32fast::hash(joined.as_bytes()) & 0x7FFF_FFFF != crc {
        return None;
    }
    body.iter()
        .map(|l| {
            let (epoch, start) = l.trim().split_once('-')?;
            Some(EpochEntry {
                epoch: epoch.parse().ok()?,
                start: start.parse().ok()?,
            })
        })
        .collect()
}

impl EpochFile {
    /// Opens `<root>/epochFileCheckpoint` (or its backup when the main file is damaged).
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let path = root.join("epochFileCheckpoint");
        let read = |p: &Path| std::fs::read_to_string(p).ok().and_then(|t| decode(&t));
        let entries = read(&path)
            .filter(|e| !e.is_empty())
            .or_else(|| read(&path.with_extension("bak")))
            .unwrap_or_default();
        Ok(EpochFile { path, entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` writes from `start` on. Refused unless both are greater than
    /// the last entry's, as Apache's `appendEntry`.
    pub fn append(&mut self, epoch: i32, start: u64) -> Result<bool, StoreError> {
        if let Some(last) = self.last() {
            if last.epoch >= epoch || last.start >= start {
                return Ok(false);
            }
        }
        self.entries.push(EpochEntry { epoch, start });
        self.persist()?;
        Ok(true)
    }

    /// Drops the entries that start at or after `offset` (the log was cut there).
    pub fn truncate_from_offset(&mut self, offset: u64) -> Result<(), StoreError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Replaces the entries (a replica adopting its master's history).
    pub fn replace(&mut self, entries: Vec<EpochEntry>) -> Result<(), StoreError> {
        self.entries = entries;
        self.persist()
    }

    fn persist(&self) -> Result<(), StoreError> {
        let bak = self.path.with_extension("bak");
        if self.path.exists() {
            std::fs::copy(&self.path, &bak).map_err(io_err(&bak))?;
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            std::fs::write(&tmp, encode(&self.entries))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(io_err(&self.path))
    }
}

/// Where two replicas' logs stop agreeing: the newest epoch both have with the same start,
/// up to where the shorter of the two goes in it (Apache's `findConsistentPoint`). `None`
/// when they share no epoch.
pub fn consistent_point(
    local: &[EpochEntry],
    local_end: u64,
    other: &[EpochEntry],
    other_end: u64,
) -> Option<u64> {
    let end_of = |entries: &[EpochEntry], i: usize, end: u64| {
        entries.get(i + 1).map_or(end, |next| next.start)
    };
    for (i, mine) in local.iter().enumerate().rev() {
        if let Some(j) = other
            .iter()
            .position(|o| o.epoch == mine.epoch && o.start == mine.start)
        {
            return Some(end_of(local, i, local_end).min(end_of(other, j, other_end)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start: u64) -> EpochEntry {
        EpochEntry { epoch, start }
    }

    #[test]
    fn the_file_is_apaches_text_and_survives_a_reopen_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = EpochFile::open(dir.path()).unwrap();
        assert!(f.append(1, 0).unwrap());
        assert!(f.append(2, 500).unwrap());
        assert!(!f.append(2, 900).unwrap(), "epochs only grow");
        assert!(!f.append(3, 500).unwrap(), "start offsets only grow");
        let text = std::fs::read_to_string(dir.path().join("epochFileCheckpoint")).unwrap();
        let crc = crc32fast::hash(b"1-0\n2-500\n") & 0x7FFF_FFFF;
        assert_eq!(text, format!("2\n{crc}\n1-0\n2-500\n"));
        drop(f);
        assert_eq!(
            EpochFile::open(dir.path()).unwrap().entries(),
            &[e(1, 0), e(2, 500)]
        );
        // A damaged main file falls back to the backup (the content before the last write).
        std::fs::write(dir.path().join("epochFileCheckpoint"), "2\n1\n1-0\n2-500\n").unwrap();
        assert_eq!(EpochFile::open(dir.path()).unwrap().entries(), &[e(1, 0)]);
    }

    #[test]
    fn truncation_drops_epochs_that_start_at_or_past_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = EpochFile::open(dir.path()).unwrap();
        f.append(1, 0).unwrap();
        f.append(2, 500).unwrap();
        f.append(3, 800).unwrap();
        f.truncate_from_offset(500).unwrap();
        assert_eq!(f.entries(), &[e(1, 0)]);
    }

    #[test]
    fn the_consistent_point_is_where_the_newest_shared_epoch_ends_in_the_shorter_log() {
        // An old master wrote epoch 2 past 700 while the new master (epoch 3) took over at 600.
        let old = [e(1, 0), e(2, 300)];
        let new = [e(1, 0), e(2, 300), e(3, 600)];
        assert_eq!(consistent_point(&old, 900, &new, 1200), Some(600));
        // A slave that is merely behind keeps everything.
        assert_eq!(consistent_point(&new[..2], 450, &new, 1200), Some(450));
        // Epoch 2 started elsewhere on the other side: fall back to epoch 1's end.
        assert_eq!(
            consistent_point(&[e(1, 0), e(2, 200)], 900, &new, 1200),
            Some(200)
        );
        assert_eq!(consistent_point(&[e(5, 0)], 10, &new, 1200), None);
    }
}
