//! Writes, syncs and resizes of the store's data files, in one place so that tests can
//! simulate a power failure (feature `power-loss`): every write a sync has not yet made
//! durable is undone, as the page cache would lose it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub(crate) fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(feature = "power-loss")]
    power_loss::before_change(file, path, offset, buf.len() as u64);
    #[cfg(not(feature = "power-loss"))]
    let _ = path;
    file.write_all_at(buf, offset)
}

/// Frees `len` bytes at `offset` without changing the file's length; reads there then
/// return zeros.
pub(crate) fn punch_hole(file: &File, path: &Path, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(feature = "power-loss")]
    power_loss::before_change(file, path, offset, len);
    #[cfg(not(feature = "power-loss"))]
    let _ = path;
    let mode = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    rustix::fs::fallocate(file, mode, offset, len).map_err(io::Error::from)
}

pub(crate) fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    #[cfg(feature = "power-loss")]
    {
        let current = file.metadata()?.len();
        power_loss::before_change(file, path, len.min(current), current.saturating_sub(len));
    }
    #[cfg(not(feature = "power-loss"))]
    let _ = path;
    file.set_len(len)
}

pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(feature = "power-loss")]
    let mark = power_loss::mark(path);
    #[cfg(not(feature = "power-loss"))]
    let _ = path;
    file.sync_data()?;
    #[cfg(feature = "power-loss")]
    power_loss::synced(path, mark);
    Ok(())
}

/// Makes every file under `dir` durable with one `syncfs` of its file system: one journal
/// commit for thousands of queue files instead of one `fsync` (and commit) each. The
/// directory's file system is the queues' own in a broker's data directory.
pub(crate) fn sync_file_system_of(dir: &Path) -> io::Result<()> {
    #[cfg(feature = "power-loss")]
    let marks = power_loss::mark_under(dir);
    let handle = File::open(dir)?;
    rustix::fs::syncfs(&handle).map_err(io::Error::from)?;
    #[cfg(feature = "power-loss")]
    for (path, mark) in marks {
        power_loss::synced(&path, mark);
    }
    Ok(())
}

/// A power failure for tests: [`arm`](power_loss::arm) starts recording, for every file,
/// what each write replaced; a sync of the file forgets what was recorded before it began;
/// [`cut`](power_loss::cut) puts back everything still recorded, newest first, and restores
/// each file's length from before its first unsynced change.
#[cfg(feature = "power-loss")]
pub mod power_loss {
    use std::collections::HashMap;
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// Bytes a change replaced, and the file's length before it.
    struct Undo {
        offset: u64,
        old: Vec<u8>,
        len_before: u64,
    }

    struct Journal {
        root: PathBuf,
        files: HashMap<PathBuf, Vec<Undo>>,
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

    /// Starts recording unsynced changes of the files under `root` (one root at a time).
    pub fn arm(root: &Path) {
        *JOURNAL.lock().expect("journal") = Some(Journal {
            root: root.to_path_buf(),
            files: HashMap::new(),
        });
        ARMED.store(true, Ordering::SeqCst);
    }

    pub(crate) fn before_change(file: &File, path: &Path, offset: u64, len: u64) {
        if !ARMED.load(Ordering::Relaxed) {
            return;
        }
        let mut journal = JOURNAL.lock().expect("journal");
        let Some(Journal { root, files }) = journal.as_mut() else {
            return;
        };
        if !path.starts_with(root) {
            return;
        }
        let len_before = file.metadata().map_or(0, |m| m.len());
        let end = (offset + len).min(len_before);
        let mut old = vec![0u8; end.saturating_sub(offset) as usize];
        if !old.is_empty() {
            file.read_exact_at(&mut old, offset)
                .expect("reading what a write will replace");
        }
        files.entry(path.to_path_buf()).or_default().push(Undo {
            offset,
            old,
            len_before,
        });
    }

    /// How many changes of `path` a sync starting now covers.
    pub(crate) fn mark(path: &Path) -> usize {
        if !ARMED.load(Ordering::Relaxed) {
            return 0;
        }
        let journal = JOURNAL.lock().expect("journal");
        journal
            .as_ref()
            .and_then(|j| j.files.get(path))
            .map_or(0, Vec::len)
    }

    /// [`mark`] of every file under `dir`: what a file system sync starting now covers.
    pub(crate) fn mark_under(dir: &Path) -> Vec<(PathBuf, usize)> {
        if !ARMED.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let journal = JOURNAL.lock().expect("journal");
        journal
            .as_ref()
            .map(|j| {
                j.files
                    .iter()
                    .filter(|(path, _)| path.starts_with(dir))
                    .map(|(path, undo)| (path.clone(), undo.len()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn synced(path: &Path, mark: usize) {
        if !ARMED.load(Ordering::Relaxed) {
            return;
        }
        let mut journal = JOURNAL.lock().expect("journal");
        if let Some(undo) = journal.as_mut().and_then(|j| j.files.get_mut(path)) {
            undo.drain(..mark.min(undo.len()));
        }
    }

    /// The power fails: undoes every unsynced change and stops recording. Returns how many
    /// files lost something and how many bytes were written back or cut off.
    pub fn cut() -> (usize, u64) {
        ARMED.store(false, Ordering::SeqCst);
        let files = JOURNAL
            .lock()
            .expect("journal")
            .take()
            .map(|j| j.files)
            .unwrap_or_default();
        let (mut touched, mut bytes) = (0, 0);
        for (path, undo) in files {
            let Some(first) = undo.first() else { continue };
            let durable_len = first.len_before;
            // A file removed since (a deleted segment) has nothing to restore.
            let Ok(file) = OpenOptions::new().write(true).open(&path) else {
                continue;
            };
            touched += 1;
            for u in undo.iter().rev() {
                file.write_all_at(&u.old, u.offset)
                    .expect("undoing a write");
                bytes += u.old.len() as u64;
            }
            let len = file.metadata().expect("file length").len();
            bytes += len.saturating_sub(durable_len);
            file.set_len(durable_len)
                .expect("restoring the durable length");
        }
        (touched, bytes)
    }
}
