//! Open handles of consume-queue files, shared by every queue and bounded: 100,000 queues
//! must not hold 100,000 descriptors (a process's default limit is 1,024 to 20,000). A file
//! is opened on use and the least recently used handle is closed when the cache is full;
//! an operation in flight keeps its handle alive until it ends.
//!
//! Closing a descriptor neither syncs nor loses written data (it stays in the page cache),
//! and a later `fsync` through a new descriptor makes the file's every write durable.

use std::fs::{File, OpenOptions};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lru::LruCache;

pub(crate) struct FileCache {
    open: Mutex<LruCache<PathBuf, Arc<File>>>,
}

impl FileCache {
    pub(crate) fn new(capacity: usize) -> Self {
        FileCache {
            open: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).expect("at least one"),
            )),
        }
    }

    /// The file at `path`, opened for reading and writing; `create`: made when missing.
    pub(crate) fn get(&self, path: &Path, create: bool) -> std::io::Result<Arc<File>> {
        if let Some(f) = self.open.lock().expect("file cache lock").get(path) {
            return Ok(f.clone());
        }
        // Opened outside the lock: a slow open (cold directory) holds up no other queue.
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false)
                .open(path)?,
        );
        let mut open = self.open.lock().expect("file cache lock");
        if let Some(f) = open.get(path) {
            return Ok(f.clone());
        }
        open.put(path.to_path_buf(), file.clone());
        Ok(file)
    }

    /// Closes the handle of a file about to be removed.
    pub(crate) fn forget(&self, path: &Path) {
        self.open.lock().expect("file cache lock").pop(path);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().expect("file cache lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn handles_stay_bounded_and_data_survives_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(3);
        for i in 0..10u8 {
            let path = dir.path().join(format!("f{i}"));
            cache
                .get(&path, true)
                .unwrap()
                .write_all_at(&[i], 0)
                .unwrap();
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(&dir.path().join("missing"), false).is_err());
        for i in 0..10u8 {
            let mut b = [0u8; 1];
            let f = cache.get(&dir.path().join(format!("f{i}")), false).unwrap();
            f.read_exact_at(&mut b, 0).unwrap();
            assert_eq!(b[0], i, "written through a handle since closed");
        }
        assert_eq!(cache.len(), 3);
        cache.forget(&dir.path().join("f9"));
        assert_eq!(cache.len(), 2);
    }
}
