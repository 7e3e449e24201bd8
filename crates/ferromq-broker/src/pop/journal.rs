//! The POP state on disk: `<root>/pop/snapshot` (the whole state as events, replaced
//! atomically) and `<root>/pop/journal` (every change since, one line each).
//!
//! Each change is written before its answer leaves, in one `write` per request, so it is
//! in the page cache when the client hears of it and survives a SIGKILL; the journal is
//! synced once a second. A line torn by a crash is cut off on the next start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::state::{Event, PopState};

/// Past this size the journal is folded into a new snapshot.
const COMPACT_AT_BYTES: u64 = 32 << 20;

pub struct Journal {
    snapshot_path: PathBuf,
    file: File,
    bytes: u64,
    unsynced: bool,
    line: String,
}

/// What opening found.
pub struct Recovered {
    pub state: PopState,
    /// Complete lines that did not parse (skipped).
    pub malformed: usize,
    /// Bytes of a torn last line cut off.
    pub torn_bytes: u64,
}

impl Journal {
    /// Loads the snapshot and replays the journal over it.
    ///
    /// # Errors
    /// The directory or its files cannot be read or written.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let snapshot_path = dir.join("snapshot");
        let journal_path = dir.join("journal");
        let mut recovered = Recovered {
            state: PopState::default(),
            malformed: 0,
            torn_bytes: 0,
        };
        match std::fs::read_to_string(&snapshot_path) {
            Ok(text) => {
                // The snapshot was renamed into place whole; a torn tail cannot happen.
                replay(&text, &mut recovered);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&journal_path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let whole = raw
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |last| last + 1);
        if whole < raw.len() {
            recovered.torn_bytes = (raw.len() - whole) as u64;
            file.set_len(whole as u64)?;
        }
        replay(&String::from_utf8_lossy(&raw[..whole]), &mut recovered);
        if recovered.malformed > 0 || recovered.torn_bytes > 0 {
            warn!(
                malformed = recovered.malformed,
                torn_bytes = recovered.torn_bytes,
                dir = %dir.display(),
                "POP journal had unreadable lines; they were skipped"
            );
        }
        Ok((
            Journal {
                snapshot_path,
                file,
                bytes: whole as u64,
                unsynced: false,
                line: String::new(),
            },
            recovered,
        ))
    }

    /// Writes these events in one write.
    ///
    /// # Errors
    /// The write failed; the caller must not answer as if the change happened.
    pub fn append(&mut self, events: &[Event]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.line.clear();
        for e in events {
            e.write_line(&mut self.line);
        }
        self.file.write_all(self.line.as_bytes())?;
        self.bytes += self.line.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Forces what was written to the disk.
    ///
    /// # Errors
    /// The sync failed.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    pub fn needs_compaction(&self) -> bool {
        self.bytes >= COMPACT_AT_BYTES
    }

    /// Replaces the snapshot with `state` and empties the journal. A crash between the two
    /// replays the old journal over the new snapshot, which gives the same state.
    ///
    /// # Errors
    /// Writing the snapshot or truncating the journal failed.
    pub fn compact(&mut self, state: &PopState) -> std::io::Result<()> {
        let mut text = String::new();
        for e in state.snapshot_events() {
            e.write_line(&mut text);
        }
        crate::persist::replace(&self.snapshot_path, text.as_bytes())?;
        self.file.set_len(0)?;
        self.file.sync_data()?;
        self.bytes = 0;
        self.unsynced = false;
        Ok(())
    }
}

fn replay(text: &str, into: &mut Recovered) {
    for line in text.lines().filter(|l| !l.is_empty()) {
        match Event::parse_line(line) {
            Some(e) => into.state.apply(&e),
            None => into.malformed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{Inflight, QueueKey};
    use super::*;

    fn popped(offset: u64) -> Event {
        Event::Popped {
            key: QueueKey::new("g", "t", 0),
            offset,
            entry: Inflight {
                phys: 1,
                pop_time: 3,
                visible_at: 4,
                reconsume: 0,
            },
        }
    }

    #[test]
    fn state_survives_reopen_compaction_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let key = QueueKey::new("g", "t", 0);
        {
            let (mut j, r) = Journal::open(dir.path()).unwrap();
            assert!(r.state.queues.is_empty());
            j.append(&[popped(0), popped(1)]).unwrap();
            j.append(&[Event::Acked {
                key: key.clone(),
                offset: 0,
            }])
            .unwrap();
        }
        let (mut j, r) = Journal::open(dir.path()).unwrap();
        let q = &r.state.queues[&key];
        assert_eq!((q.committed(), q.next), (1, 2));
        j.compact(&r.state).unwrap();
        j.append(&[popped(2)]).unwrap();
        drop(j);
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal"))
            .unwrap();
        f.write_all(b"A g t 0 2\nA g t 0 1").unwrap();
        f.write_all(b"garbage line\n").unwrap();
        f.write_all(b"P g t 0 9").unwrap();
        drop(f);
        let (_, r) = Journal::open(dir.path()).unwrap();
        let q = &r.state.queues[&key];
        // "A g t 0 1garbage line" is malformed; the torn "P g t 0 9" is cut off.
        assert_eq!(q.inflight.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!((r.malformed, r.torn_bytes), (1, 9));
        let (_, again) = Journal::open(dir.path()).unwrap();
        assert_eq!(again.torn_bytes, 0, "the torn tail was removed");
    }
}
