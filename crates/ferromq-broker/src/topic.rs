//! Topic configurations: the table registered with name servers, persisted in
//! `config/topics.json`, including auto-creation from the `TBW102` template.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use ferromq_protocol::body::{perm, DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use tracing::{info, warn};

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

pub struct TopicConfigManager {
    path: PathBuf,
    table: Mutex<Table>,
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
        // One write (and fsync) for both at a first start.
        mgr.upsert_all(system)?;
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
        let mut t = self.table.lock().expect("topic table lock");
        let mut changed = false;
        for config in configs {
            if t.topics.get(&config.topic_name) == Some(&config) {
                continue;
            }
            info!(topic = %config.topic_name, queues = config.write_queue_nums, perm = config.perm, "topic created or updated");
            t.topics.insert(config.topic_name.clone(), config);
            changed = true;
        }
        if changed {
            t.version.counter += 1;
            t.version.timestamp = now_ms();
            persist::store(&self.path, &t.topics)?;
        }
        Ok(changed)
    }

    pub fn delete(&self, topic: &str) -> std::io::Result<bool> {
        let mut t = self.table.lock().expect("topic table lock");
        if t.topics.remove(topic).is_none() {
            return Ok(false);
        }
        t.version.counter += 1;
        t.version.timestamp = now_ms();
        persist::store(&self.path, &t.topics)?;
        Ok(true)
    }

    /// Creates `topic` from a template named by a send request, as Apache's
    /// `createTopicInSendMessageMethod`: only if the template exists and has INHERIT.
    pub fn create_from_template(
        &self,
        topic: &str,
        template: &str,
        requested_queues: i32,
    ) -> std::io::Result<Option<TopicConfig>> {
        let Some(tpl) = self.get(template) else {
            return Ok(None);
        };
        if tpl.perm & perm::INHERIT == 0 {
            return Ok(None);
        }
        let queues = requested_queues.clamp(1, tpl.write_queue_nums.max(1));
        let mut config = TopicConfig::new(topic, queues, tpl.perm & !perm::INHERIT);
        config.topic_filter_type = tpl.topic_filter_type.clone();
        if let Some(existing) = self.get(topic) {
            return Ok(Some(existing));
        }
        self.upsert(config.clone()).map_err(|e| {
            warn!(topic, error = %e, "persisting an auto-created topic failed");
            e
        })?;
        Ok(Some(config))
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
        let created = mgr
            .create_from_template("orders", AUTO_CREATE_TOPIC_TEMPLATE, 16)
            .unwrap()
            .unwrap();
        assert_eq!(created.write_queue_nums, 4);
        assert_eq!(created.perm, perm::READ | perm::WRITE);
        let reopened = TopicConfigManager::open(dir.path(), true, 4).unwrap();
        assert_eq!(reopened.get("orders"), Some(created));
    }

    #[test]
    fn auto_create_disabled_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), false, 4).unwrap();
        assert_eq!(
            mgr.create_from_template("orders", AUTO_CREATE_TOPIC_TEMPLATE, 4)
                .unwrap(),
            None
        );
    }
}
