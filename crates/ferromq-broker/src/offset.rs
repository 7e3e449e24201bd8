//! Committed consumer offsets, keyed `topic@group` → queue → offset as in Apache's
//! `ConsumerOffsetManager`, persisted to `config/consumerOffset.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::persist;

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OffsetFile {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

pub struct ConsumerOffsetManager {
    path: PathBuf,
    table: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
    dirty: AtomicBool,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

impl ConsumerOffsetManager {
    pub fn open(root: &std::path::Path) -> std::io::Result<Self> {
        let path = root.join("config").join("consumerOffset.json");
        let file: OffsetFile = persist::load(&path)?.unwrap_or_default();
        Ok(ConsumerOffsetManager {
            path,
            table: Mutex::new(file.offset_table.into_iter().collect()),
            dirty: AtomicBool::new(false),
        })
    }

    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.table
            .lock()
            .expect("offset table lock")
            .entry(key(topic, group))
            .or_default()
            .insert(queue_id, offset);
        self.dirty.store(true, Ordering::Release);
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.table
            .lock()
            .expect("offset table lock")
            .get(&key(topic, group))
            .and_then(|q| q.get(&queue_id).copied())
    }

    /// Offsets of a group on a topic, per queue.
    pub fn group_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.table
            .lock()
            .expect("offset table lock")
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    /// Topics a group has committed offsets on.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let suffix = format!("@{group}");
        let table = self.table.lock().expect("offset table lock");
        table
            .keys()
            .filter_map(|k| k.strip_suffix(&suffix).map(str::to_string))
            .collect()
    }

    /// Every group with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let table = self.table.lock().expect("offset table lock");
        let mut groups: Vec<String> = table
            .keys()
            .filter_map(|k| k.split_once('@').map(|(_, g)| g.to_string()))
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Forgets a deleted group's offsets.
    pub fn remove_group(&self, group: &str) {
        let suffix = format!("@{group}");
        self.table
            .lock()
            .expect("offset table lock")
            .retain(|k, _| !k.ends_with(&suffix));
        self.dirty.store(true, Ordering::Release);
    }

    /// Forgets every group's offsets on a deleted topic.
    pub fn remove_topic(&self, topic: &str) {
        let prefix = format!("{topic}@");
        self.table
            .lock()
            .expect("offset table lock")
            .retain(|k, _| !k.starts_with(&prefix));
        self.dirty.store(true, Ordering::Release);
    }

    /// Every committed offset, keyed `topic@group` (what a slave copies).
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<i32, i64>> {
        self.table
            .lock()
            .expect("offset table lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Takes a master's offsets over these, as Apache's slave does (`putAll`: offsets the
    /// master lacks are kept).
    pub fn put_all(&self, offsets: BTreeMap<String, BTreeMap<i32, i64>>) {
        let mut t = self.table.lock().expect("offset table lock");
        for (k, queues) in offsets {
            t.insert(k, queues);
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Writes the table if it changed since the last write.
    pub fn persist(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let snapshot = OffsetFile {
            offset_table: self
                .table
                .lock()
                .expect("offset table lock")
                .clone()
                .into_iter()
                .collect(),
        };
        persist::store(&self.path, &snapshot)
            .inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_offsets_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::open(dir.path()).unwrap();
        m.commit("g", "t", 2, 41);
        m.commit("g", "t", 2, 42);
        m.persist().unwrap();
        let m = ConsumerOffsetManager::open(dir.path()).unwrap();
        assert_eq!(m.query("g", "t", 2), Some(42));
        assert_eq!(m.query("g", "t", 1), None);
        assert_eq!(m.query("other", "t", 2), None);
    }
}
