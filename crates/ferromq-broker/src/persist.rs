//! Atomic JSON files under `<root>/config`: written to a temp file, synced, renamed.

use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Loads a JSON file; a missing file reads as `None`.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces a JSON file atomically.
pub(crate) fn store<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    replace(
        path,
        &serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?,
    )
}

/// Replaces a file's contents atomically: a temp file beside it, synced, renamed over it,
/// and the directory synced so that the rename itself survives a power cut.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// One change to a keyed table, as a journal line.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Change<V> {
    Put { key: String, value: V },
    Delete { key: String },
}

/// A keyed JSON table kept as its file (`<name>.json`, the whole table) plus a journal
/// beside it (`<name>.json.log`, one [`Change`] per line): a change costs one appended
/// line and a sync, not a rewrite of the file, which at 10,000 topics is megabytes per
/// change. The file is rewritten, and the journal emptied, only once the journal has
/// grown past the file's size (at least 1 MiB), so writes stay linear in the changes.
/// A line torn by a crash ends the replay: everything before it is kept.
pub(crate) struct Journaled {
    json: std::path::PathBuf,
    log: std::path::PathBuf,
    log_file: Option<std::fs::File>,
    log_bytes: u64,
    json_bytes: u64,
}

/// Journals shorter than this are never folded into the file.
const MIN_FOLD_BYTES: u64 = 1 << 20;

impl Journaled {
    /// Loads the table: the file, then the journal's changes in order.
    pub(crate) fn open<V: DeserializeOwned>(
        json: &Path,
    ) -> std::io::Result<(Self, std::collections::BTreeMap<String, V>)> {
        let mut table: std::collections::BTreeMap<String, V> = load(json)?.unwrap_or_default();
        let json_bytes = std::fs::metadata(json).map(|m| m.len()).unwrap_or(0);
        let mut log_name = json.file_name().unwrap_or_default().to_os_string();
        log_name.push(".log");
        let log = json.with_file_name(log_name);
        let mut log_bytes = 0;
        match std::fs::read(&log) {
            Ok(bytes) => {
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let Ok(change) = serde_json::from_slice::<Change<V>>(line) else {
                        tracing::warn!(path = %log.display(), "a torn or unreadable journal line; the changes before it are kept");
                        break;
                    };
                    log_bytes += line.len() as u64 + 1;
                    match change {
                        Change::Put { key, value } => {
                            table.insert(key, value);
                        }
                        Change::Delete { key } => {
                            table.remove(&key);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let journal = Journaled {
            json: json.to_path_buf(),
            log,
            log_file: None,
            log_bytes,
            json_bytes,
        };
        Ok((journal, table))
    }

    /// Whether the next write should be the whole table.
    pub(crate) fn wants_fold(&self) -> bool {
        self.log_bytes > self.json_bytes.max(MIN_FOLD_BYTES)
    }

    /// Appends changes and syncs them.
    pub(crate) fn append<V: Serialize>(&mut self, changes: &[Change<V>]) -> std::io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for c in changes {
            serde_json::to_writer(&mut lines, c).map_err(std::io::Error::other)?;
            lines.push(b'\n');
        }
        let file = match &mut self.log_file {
            Some(f) => f,
            None => {
                if let Some(dir) = self.log.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)?;
                // A new journal's directory entry must survive a power cut too.
                if self.log_bytes == 0 {
                    if let Some(dir) = self.log.parent() {
                        std::fs::File::open(dir)?.sync_all()?;
                    }
                }
                self.log_file.insert(f)
            }
        };
        file.write_all(&lines)?;
        file.sync_data()?;
        self.log_bytes += lines.len() as u64;
        Ok(())
    }

    /// Writes the whole table to the file and empties the journal.
    pub(crate) fn fold<V: Serialize>(
        &mut self,
        table: &std::collections::BTreeMap<String, V>,
    ) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(table).map_err(std::io::Error::other)?;
        replace(&self.json, &bytes)?;
        self.json_bytes = bytes.len() as u64;
        // The file now holds every change: the journal starts over.
        self.log_file = None;
        match std::fs::remove_file(&self.log) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.log_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn put(key: &str, value: u32) -> Change<u32> {
        Change::Put {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn changes_survive_reopening_and_a_torn_line_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("t.json");
        let (mut j, table) = Journaled::open::<u32>(&json).unwrap();
        assert!(table.is_empty());
        j.append(&[put("a", 1), put("b", 2)]).unwrap();
        j.append(&[Change::Delete { key: "a".into() }, put("c", 3)])
            .unwrap();
        drop(j);
        let (_, table) = Journaled::open::<u32>(&json).unwrap();
        assert_eq!(table, BTreeMap::from([("b".into(), 2), ("c".into(), 3)]));
        // A crash mid-line: the half line and anything after it are not applied.
        let log = dir.path().join("t.json.log");
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"put\":{\"key\":\"d\",\"val").unwrap();
        drop(f);
        let (_, table) = Journaled::open::<u32>(&json).unwrap();
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn folding_writes_the_file_and_empties_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("t.json");
        let (mut j, mut table) = Journaled::open::<u32>(&json).unwrap();
        // 400 appends of 100 changes (each line ~45 bytes): past 1 MiB, so folded once.
        let mut folds = 0;
        for batch in 0..400u32 {
            let changes: Vec<Change<u32>> = (0..100)
                .map(|i| put(&format!("key-{batch}-{i}"), i))
                .collect();
            j.append(&changes).unwrap();
            for i in 0..100 {
                table.insert(format!("key-{batch}-{i}"), i);
            }
            if j.wants_fold() {
                j.fold(&table).unwrap();
                folds += 1;
            }
        }
        assert_eq!(folds, 1);
        assert!(json.exists());
        let (j2, reread) = Journaled::open::<u32>(&json).unwrap();
        assert_eq!(reread, table);
        assert!(!j2.wants_fold());
    }
}
