//! Topic configurations: the table registered with name servers, persisted in
//! `config/topics.json`, including auto-creation from the `TBW102` template.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ferromq_protocol::body::{perm, DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use tracing::info;

use crate::{now_ms, persist};

/// Template topic for auto-creation.
pub const AUTO_CREATE_TOPIC_TEMPLATE: &str = "TBW102";
/// Topic Apache brokers keep for self tests.
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// Longest topic name (the stored record's topic length is one signed byte for Java).
pub const MAX_TOPIC_LEN: usize = 127;

/// Why a topic name is refused.
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic name is empty".into());
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "the topic name is longer than {MAX_TOPIC_LEN} characters"
        ));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'|' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "the topic name '{topic}' contains characters other than %|a-zA-Z0-9_-"
        ));
    }
    Ok(())
}

struct Table {
    topics: BTreeMap<String, TopicConfig>,
    version: DataVersion,
}

impl Table {
    /// Creates or replaces topics; returns whether anything changed (the version moves if so).
    fn insert_all(&mut self, configs: impl IntoIterator<Item = TopicConfig>) -> bool {
        let mut changed = false;
        for config in configs {
            if self.topics.get(&config.topic_name) == Some(&config) {
                continue;
            }
            info!(topic = %config.topic_name, queues = config.write_queue_nums, perm = config.perm, "topic created or updated");
            self.topics.insert(config.topic_name.clone(), config);
            changed = true;
        }
        if changed {
            self.bump_version();
        }
        changed
    }

    fn bump_version(&mut self) {
        self.version.counter += 1;
        self.version.timestamp = now_ms();
    }
}

pub struct TopicConfigManager {
    path: PathBuf,
    table: Mutex<Table>,
    /// The table version last written to `topics.json`; held while writing, so that writes
    /// made off the caller's thread never replace a newer table with an older one.
    written: Arc<Mutex<i64>>,
}

/// A change to the topic table not yet written to disk: the table as it was right after
/// the change. Callers that may overlap the write with other work run it themselves.
#[must_use = "the change is not durable until the write has run"]
pub struct PendingWrite {
    path: PathBuf,
    topics: BTreeMap<String, TopicConfig>,
    version: i64,
    written: Arc<Mutex<i64>>,
}

impl PendingWrite {
    /// Writes the table unless a newer one is already on disk.
    pub fn run(self) -> std::io::Result<()> {
        let mut written = self.written.lock().expect("topic file lock");
        if *written >= self.version {
            return Ok(());
        }
        persist::store(&self.path, &self.topics)?;
        *written = self.version;
        Ok(())
    }
}

impl TopicConfigManager {
    /// Loads `topics.json` and ensures the system topics exist.
    pub fn open(
        root: &std::path::Path,
        auto_create: bool,
        default_queues: i32,
    ) -> std::io::Result<Self> {
        let path = root.join("config").join("topics.json");
        let topics: BTreeMap<String, TopicConfig> = persist::load(&path)?.unwrap_or_default();
        let mgr = TopicConfigManager {
            path,
            written: Arc::new(Mutex::new(0)),
            table: Mutex::new(Table {
                topics,
                version: DataVersion {
                    timestamp: now_ms(),
                    counter: 0,
                    state_version: 0,
                },
            }),
        };
        // TBW102's INHERIT bit is what lets clients auto-create through it; Apache forces
        // it off when auto-creation is disabled.
        let template_perm = if auto_create {
            perm::READ | perm::WRITE | perm::INHERIT
        } else {
            perm::READ | perm::WRITE
        };
        let mut system = vec![TopicConfig::new(
            AUTO_CREATE_TOPIC_TEMPLATE,
            default_queues,
            template_perm,
        )];
        if mgr.get(SELF_TEST_TOPIC).is_none() {
            system.push(TopicConfig::new(
                SELF_TEST_TOPIC,
                1,
                perm::READ | perm::WRITE,
            ));
        }
        // Not written to disk: they are put back like this at every start, and a first
        // start need not wait for an fsync. The next change to the table writes them along.
        mgr.table
            .lock()
            .expect("topic table lock")
            .insert_all(system);
        Ok(mgr)
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table
            .lock()
            .expect("topic table lock")
            .topics
            .get(topic)
            .cloned()
    }

    pub fn all(&self) -> Vec<TopicConfig> {
        self.table
            .lock()
            .expect("topic table lock")
            .topics
            .values()
            .cloned()
            .collect()
    }

    /// The table as registered with name servers.
    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        let t = self.table.lock().expect("topic table lock");
        TopicConfigSerializeWrapper {
            topic_config_table: t.topics.clone(),
            data_version: t.version.clone(),
        }
    }

    /// Creates or replaces a topic. Returns whether anything changed.
    pub fn upsert(&self, config: TopicConfig) -> std::io::Result<bool> {
        self.upsert_all([config])
    }

    /// Creates or replaces topics, persisting once. Returns whether anything changed.
    pub fn upsert_all(
        &self,
        configs: impl IntoIterator<Item = TopicConfig>,
    ) -> std::io::Result<bool> {
        let write = {
            let mut t = self.table.lock().expect("topic table lock");
            if !t.insert_all(configs) {
                return Ok(false);
            }
            self.pending_write(&t)
        };
        write.run().map(|()| true)
    }

    /// The write that makes the table as it is now durable.
    fn pending_write(&self, t: &Table) -> PendingWrite {
        PendingWrite {
            path: self.path.clone(),
            topics: t.topics.clone(),
            version: t.version.counter,
            written: self.written.clone(),
        }
    }

    pub fn delete(&self, topic: &str) -> std::io::Result<bool> {
        let mut t = self.table.lock().expect("topic table lock");
        if t.topics.remove(topic).is_none() {
            return Ok(false);
        }
        t.bump_version();
        let write = self.pending_write(&t);
        drop(t);
        write.run().map(|()| true)
    }

    /// Creates `topic` from a template named by a send request, as Apache's
    /// `createTopicInSendMessageMethod`: only if the template exists and has INHERIT.
    /// The new topic is in the table at once; the returned write makes it durable (none
    /// when another request created it first).
    pub fn create_from_template(
        &self,
        topic: &str,
        template: &str,
        requested_queues: i32,
    ) -> Option<(TopicConfig, Option<PendingWrite>)> {
        let tpl = self.get(template)?;
        if tpl.perm & perm::INHERIT == 0 {
            return None;
        }
        let queues = requested_queues.clamp(1, tpl.write_queue_nums.max(1));
        let mut config = TopicConfig::new(topic, queues, tpl.perm & !perm::INHERIT);
        config.topic_filter_type = tpl.topic_filter_type.clone();
        let mut t = self.table.lock().expect("topic table lock");
        if let Some(existing) = t.topics.get(topic) {
            return Some((existing.clone(), None));
        }
        info!(
            topic,
            queues,
            perm = config.perm,
            "topic created from {template}"
        );
        t.topics.insert(topic.to_string(), config.clone());
        t.bump_version();
        Some((config, Some(self.pending_write(&t))))
    }

    /// Creates a group's retry or dead-letter topic if missing.
    pub fn ensure_system_topic(
        &self,
        topic: &str,
        queues: i32,
        perm_bits: i32,
    ) -> std::io::Result<(TopicConfig, bool)> {
        if let Some(existing) = self.get(topic) {
            return Ok((existing, false));
        }
        let config = TopicConfig::new(topic, queues, perm_bits);
        self.upsert(config.clone())?;
        Ok((config, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_validated_like_apache() {
        assert!(validate_topic_name("imooc1").is_ok());
        assert!(validate_topic_name("%RETRY%maxshop").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name(&"t".repeat(128)).is_err());
    }

    #[test]
    fn auto_create_inherits_from_template_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), true, 4).unwrap();
        let (created, write) = mgr
            .create_from_template("orders", AUTO_CREATE_TOPIC_TEMPLATE, 16)
            .unwrap();
        assert_eq!(created.write_queue_nums, 4);
        assert_eq!(created.perm, perm::READ | perm::WRITE);
        assert_eq!(mgr.get("orders"), Some(created.clone()));
        write.expect("a new topic is written").run().unwrap();
        // A second creation finds the first and has nothing to write.
        let (again, write) = mgr
            .create_from_template("orders", AUTO_CREATE_TOPIC_TEMPLATE, 8)
            .unwrap();
        assert_eq!(again, created);
        assert!(write.is_none());
        let reopened = TopicConfigManager::open(dir.path(), true, 4).unwrap();
        assert_eq!(reopened.get("orders"), Some(created));
    }

    #[test]
    fn system_topics_are_not_written_at_start_but_always_present() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), true, 4).unwrap();
        assert!(mgr.get(AUTO_CREATE_TOPIC_TEMPLATE).is_some());
        assert!(!dir.path().join("config").join("topics.json").exists());
        drop(mgr);
        // Auto-creation turned off: the template comes back without INHERIT.
        let mgr = TopicConfigManager::open(dir.path(), false, 4).unwrap();
        let template = mgr.get(AUTO_CREATE_TOPIC_TEMPLATE).unwrap();
        assert_eq!(template.perm & perm::INHERIT, 0);
        assert!(mgr.get(SELF_TEST_TOPIC).is_some());
    }

    #[test]
    fn an_older_pending_write_never_replaces_a_newer_table() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), true, 4).unwrap();
        let (_, first) = mgr
            .create_from_template("first", AUTO_CREATE_TOPIC_TEMPLATE, 4)
            .unwrap();
        let (_, second) = mgr
            .create_from_template("second", AUTO_CREATE_TOPIC_TEMPLATE, 4)
            .unwrap();
        // Written out of order, as overlapping requests may.
        second.unwrap().run().unwrap();
        first.unwrap().run().unwrap();
        let reopened = TopicConfigManager::open(dir.path(), true, 4).unwrap();
        assert!(reopened.get("first").is_some());
        assert!(reopened.get("second").is_some());
    }

    #[test]
    fn auto_create_disabled_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), false, 4).unwrap();
        assert!(mgr
            .create_from_template("orders", AUTO_CREATE_TOPIC_TEMPLATE, 4)
            .is_none());
    }
}
