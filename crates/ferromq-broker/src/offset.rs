//! Committed consumer offsets, keyed `topic@group` → queue → offset as in Apache's
//! `ConsumerOffsetManager`, persisted to `config/consumerOffset.json`.
//!
//! A slave also remembers the offsets consumers committed to it while they could not reach
//! the master ("unsent"), so that it can hand them to the master when it returns, and
//! keeps them over the master's older copies until then.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::persist;

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OffsetFile {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
    /// A FerroMQ field: kept in the file so that a slave restarting before its master
    /// returns still hands them over. Apache's readers ignore it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    unsent_to_master: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// An offset a slave took while its master was away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsentOffset {
    pub topic: String,
    pub group: String,
    pub queue_id: i32,
    pub offset: i64,
}

#[derive(Default)]
struct Tables {
    committed: HashMap<String, BTreeMap<i32, i64>>,
    unsent: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Which groups have offsets on which topics, both ways: "who consumes this topic"
    /// then costs its own groups, not a walk over every key (thousands of groups ask it).
    groups_by_topic: HashMap<String, BTreeSet<String>>,
    topics_by_group: HashMap<String, BTreeSet<String>>,
}

impl Tables {
    fn with_committed(committed: HashMap<String, BTreeMap<i32, i64>>) -> Self {
        let mut t = Tables::default();
        for k in committed.keys() {
            t.index(k);
        }
        t.committed = committed;
        t
    }

    /// The queues of a `topic@group` key, indexing a new key.
    fn queues_of(&mut self, k: String) -> &mut BTreeMap<i32, i64> {
        if !self.committed.contains_key(&k) {
            self.index(&k);
        }
        self.committed.entry(k).or_default()
    }

    fn index(&mut self, k: &str) {
        if let Some((topic, group)) = k.split_once('@') {
            self.groups_by_topic
                .entry(topic.to_string())
                .or_default()
                .insert(group.to_string());
            self.topics_by_group
                .entry(group.to_string())
                .or_default()
                .insert(topic.to_string());
        }
    }

    /// Forgets a pair's committed offsets (callers clear `unsent`, which the index omits).
    fn remove_pair(&mut self, topic: &str, group: &str) {
        self.committed.remove(&key(topic, group));
        for (index, outer, inner) in [
            (&mut self.groups_by_topic, topic, group),
            (&mut self.topics_by_group, group, topic),
        ] {
            if let Some(set) = index.get_mut(outer) {
                set.remove(inner);
                if set.is_empty() {
                    index.remove(outer);
                }
            }
        }
    }
}

pub struct ConsumerOffsetManager {
    path: PathBuf,
    table: Mutex<Tables>,
    dirty: AtomicBool,
}

/// The table key of a group's offsets on a topic (Apache's `topic@group`).
pub(crate) fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

impl ConsumerOffsetManager {
    pub fn open(root: &std::path::Path) -> std::io::Result<Self> {
        let path = root.join("config").join("consumerOffset.json");
        let file: OffsetFile = persist::load(&path)?.unwrap_or_default();
        Ok(ConsumerOffsetManager {
            path,
            table: Mutex::new(Tables {
                unsent: file.unsent_to_master,
                ..Tables::with_committed(file.offset_table.into_iter().collect())
            }),
            dirty: AtomicBool::new(false),
        })
    }

    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.table
            .lock()
            .expect("offset table lock")
            .queues_of(key(topic, group))
            .insert(queue_id, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// A commit a slave takes for its absent master: stored, and kept to hand over.
    pub fn commit_unsent(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let mut t = self.table.lock().expect("offset table lock");
        let k = key(topic, group);
        t.queues_of(k.clone()).insert(queue_id, offset);
        t.unsent.entry(k).or_default().insert(queue_id, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// This broker became the master: nothing waits for another.
    pub fn forget_unsent(&self) {
        let mut t = self.table.lock().expect("offset table lock");
        if !t.unsent.is_empty() {
            t.unsent.clear();
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// The offsets waiting for the master.
    pub fn unsent(&self) -> Vec<UnsentOffset> {
        let t = self.table.lock().expect("offset table lock");
        t.unsent
            .iter()
            .filter_map(|(k, queues)| {
                k.split_once('@')
                    .map(|(topic, group)| (topic, group, queues))
            })
            .flat_map(|(topic, group, queues)| {
                queues.iter().map(move |(&queue_id, &offset)| UnsentOffset {
                    topic: topic.to_string(),
                    group: group.to_string(),
                    queue_id,
                    offset,
                })
            })
            .collect()
    }

    /// The master holds `sent`; forgets it unless a newer commit came meanwhile.
    pub fn mark_sent(&self, sent: &UnsentOffset) {
        let mut t = self.table.lock().expect("offset table lock");
        let k = key(&sent.topic, &sent.group);
        if let Some(queues) = t.unsent.get_mut(&k) {
            if queues.get(&sent.queue_id) == Some(&sent.offset) {
                queues.remove(&sent.queue_id);
            }
            if queues.is_empty() {
                t.unsent.remove(&k);
            }
        }
        self.dirty.store(true, Ordering::Release);
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.table
            .lock()
            .expect("offset table lock")
            .committed
            .get(&key(topic, group))
            .and_then(|q| q.get(&queue_id).copied())
    }

    /// Offsets of a group on a topic, per queue.
    pub fn group_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.table
            .lock()
            .expect("offset table lock")
            .committed
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    /// Topics a group has committed offsets on.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let table = self.table.lock().expect("offset table lock");
        table
            .topics_by_group
            .get(group)
            .map(|topics| topics.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Groups with committed offsets on a topic.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let table = self.table.lock().expect("offset table lock");
        table
            .groups_by_topic
            .get(topic)
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every group with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let table = self.table.lock().expect("offset table lock");
        let mut groups: Vec<String> = table.topics_by_group.keys().cloned().collect();
        groups.sort();
        groups
    }

    /// Forgets a deleted group's offsets.
    pub fn remove_group(&self, group: &str) {
        let mut t = self.table.lock().expect("offset table lock");
        for topic in t.topics_by_group.get(group).cloned().unwrap_or_default() {
            t.remove_pair(&topic, group);
        }
        // Offsets only a slave holds for its master are not in the index.
        let suffix = format!("@{group}");
        t.unsent.retain(|k, _| !k.ends_with(&suffix));
        self.dirty.store(true, Ordering::Release);
    }

    /// Forgets every group's offsets on a deleted topic.
    pub fn remove_topic(&self, topic: &str) {
        let mut t = self.table.lock().expect("offset table lock");
        for group in t.groups_by_topic.get(topic).cloned().unwrap_or_default() {
            t.remove_pair(topic, &group);
        }
        let prefix = format!("{topic}@");
        t.unsent.retain(|k, _| !k.starts_with(&prefix));
        self.dirty.store(true, Ordering::Release);
    }

    /// Every committed offset, keyed `topic@group` (what a slave copies).
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<i32, i64>> {
        self.table
            .lock()
            .expect("offset table lock")
            .committed
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Takes a master's offsets over these, as Apache's slave does (`putAll`: offsets the
    /// master lacks are kept), except those still waiting to reach the master.
    pub fn put_all(&self, offsets: BTreeMap<String, BTreeMap<i32, i64>>) {
        let mut t = self.table.lock().expect("offset table lock");
        for (k, mut queues) in offsets {
            if let Some(waiting) = t.unsent.get(&k) {
                queues.extend(waiting.iter().map(|(&q, &o)| (q, o)));
            }
            *t.queues_of(k) = queues;
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Writes the table if it changed since the last write.
    pub fn persist(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let snapshot = {
            let t = self.table.lock().expect("offset table lock");
            OffsetFile {
                offset_table: t
                    .committed
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                unsent_to_master: t.unsent.clone(),
            }
        };
        persist::store(&self.path, &snapshot)
            .inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_offsets_outlive_the_masters_older_copy_until_sent() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::open(dir.path()).unwrap();
        m.commit_unsent("g", "t", 0, 90);
        let master = BTreeMap::from([("t@g".to_string(), BTreeMap::from([(0, 10), (1, 5)]))]);
        m.put_all(master.clone());
        assert_eq!(
            m.query("g", "t", 0),
            Some(90),
            "the master's older copy must not win"
        );
        assert_eq!(m.query("g", "t", 1), Some(5));
        m.persist().unwrap();
        let m = ConsumerOffsetManager::open(dir.path()).unwrap();
        let unsent = m.unsent();
        assert_eq!(
            unsent,
            vec![UnsentOffset {
                topic: "t".into(),
                group: "g".into(),
                queue_id: 0,
                offset: 90
            }]
        );
        m.commit_unsent("g", "t", 0, 95);
        m.mark_sent(&unsent[0]);
        assert_eq!(m.unsent().len(), 1, "a newer commit stays waiting");
        m.mark_sent(&m.unsent()[0]);
        assert!(m.unsent().is_empty());
        m.put_all(master);
        assert_eq!(
            m.query("g", "t", 0),
            Some(10),
            "once sent, the master's copy rules"
        );
    }

    #[test]
    fn groups_of_a_topic_and_topics_of_a_group_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::open(dir.path()).unwrap();
        m.commit("g1", "t1", 0, 1);
        m.commit("g1", "t2", 0, 1);
        m.commit_unsent("g2", "t1", 3, 7);
        m.put_all(BTreeMap::from([(
            "t3@g3".to_string(),
            BTreeMap::from([(0, 1)]),
        )]));
        assert_eq!(m.groups_of_topic("t1"), ["g1", "g2"]);
        assert_eq!(m.topics_of_group("g1"), ["t1", "t2"]);
        assert_eq!(m.groups(), ["g1", "g2", "g3"]);
        m.persist().unwrap();
        let m = ConsumerOffsetManager::open(dir.path()).unwrap();
        assert_eq!(m.groups_of_topic("t1"), ["g1", "g2"], "rebuilt on open");
        m.remove_topic("t1");
        assert!(m.groups_of_topic("t1").is_empty());
        assert_eq!(m.topics_of_group("g1"), ["t2"]);
        assert!(m.topics_of_group("g2").is_empty());
        assert!(
            m.unsent().is_empty(),
            "the deleted topic's unsent offsets go too"
        );
        m.remove_group("g1");
        assert!(m.groups_of_topic("t2").is_empty());
        assert_eq!(m.groups(), ["g3"]);
        assert_eq!(m.query("g1", "t2", 0), None);
    }

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
