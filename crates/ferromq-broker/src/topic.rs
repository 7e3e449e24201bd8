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

/// Apache's benchmark topic (`TopicValidator.RMQ_SYS_BENCHMARK_TOPIC`), 1,024 queues.
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
/// Where Apache's brokers publish offset-moved events.
pub const OFFSET_MOVED_EVENT_TOPIC: &str = "OFFSET_MOVED_EVENT";
/// Queues of the cluster-name topic: a bare `new TopicConfig(name)` in Java has 16.
const CLUSTER_TOPIC_QUEUES: i32 = 16;
/// `reviveQueueNum`: queues of Apache's POP revive topic.
const REVIVE_QUEUES: i32 = 8;

/// The topics every broker carries from its first start, as Apache's
/// `TopicConfigManager.init` creates them. Tools rely on two of them: the topic named after
/// the cluster and the one named after the broker give `createTopic(clusterName, …)` and
/// `createTopic(brokerName, …)` a route to look up (`clusterTopicEnable`/`brokerTopicEnable`
/// make them readable and writable; off, they keep only INHERIT, as in Apache).
pub struct SystemTopics<'a> {
    pub cluster_name: &'a str,
    pub broker_name: &'a str,
    pub auto_create_topic: bool,
    pub default_queues: i32,
    pub cluster_topic_enable: bool,
    pub broker_topic_enable: bool,
    /// `msgTraceTopicName` when `traceTopicEnable` is on.
    pub trace_topic: Option<&'a str>,
}

impl SystemTopics<'_> {
    /// Returns the topics whose settings follow the configuration at every start, and
    /// those created once and kept as stored afterwards.
    fn configs(&self) -> (Vec<TopicConfig>, Vec<TopicConfig>) {
        let rw = perm::READ | perm::WRITE;
        let with_rw = |enabled: bool| perm::INHERIT | if enabled { rw } else { 0 };
        // Apache creates TBW102 only with auto-creation on. FerroMQ always has it, without
        // INHERIT when auto-creation is off, so that `createTopic("TBW102", …)` still
        // finds a route to the brokers (the documented Java way to create a topic).
        let template_perm = if self.auto_create_topic {
            rw | perm::INHERIT
        } else {
            rw
        };
        let follow_config = vec![
            TopicConfig::new(
                AUTO_CREATE_TOPIC_TEMPLATE,
                self.default_queues,
                template_perm,
            ),
            TopicConfig::new(
                self.cluster_name,
                CLUSTER_TOPIC_QUEUES,
                with_rw(self.cluster_topic_enable),
            ),
            TopicConfig::new(self.broker_name, 1, with_rw(self.broker_topic_enable)),
        ];
        let mut keep_stored = vec![
            TopicConfig::new(SELF_TEST_TOPIC, 1, rw),
            TopicConfig::new(BENCHMARK_TOPIC, 1024, rw),
            TopicConfig::new(OFFSET_MOVED_EVENT_TOPIC, 1, rw),
            TopicConfig::new(
                crate::schedule::SCHEDULE_TOPIC,
                crate::schedule::SCHEDULE_QUEUES,
                rw,
            ),
            TopicConfig::new(&format!("{}_REPLY_TOPIC", self.cluster_name), 1, rw),
            TopicConfig::new(
                &format!("rmq_sys_REVIVE_LOG_{}", self.cluster_name),
                REVIVE_QUEUES,
                rw,
            ),
            TopicConfig::new(
                &format!("rmq_sys_SYNC_BROKER_MEMBER_{}", self.broker_name),
                1,
                perm::INHERIT,
            ),
            TopicConfig::new(crate::transaction::HALF_TOPIC, 1, rw),
            TopicConfig::new(crate::transaction::OP_TOPIC, 1, rw),
            TopicConfig::new(crate::timer::TIMER_TOPIC, 1, rw),
        ];
        if let Some(trace) = self.trace_topic {
            keep_stored.push(TopicConfig::new(trace, 1, rw));
        }
        (follow_config, keep_stored)
    }
}

impl SystemTopics<'_> {
    /// Every system topic's name.
    pub fn names(&self) -> Vec<String> {
        let (a, b) = self.configs();
        a.into_iter().chain(b).map(|c| c.topic_name).collect()
    }
}

#[cfg(test)]
impl SystemTopics<'static> {
    fn for_test(auto_create_topic: bool) -> Self {
        SystemTopics {
            cluster_name: "DefaultCluster",
            broker_name: "broker-a",
            auto_create_topic,
            default_queues: 4,
            cluster_topic_enable: true,
            broker_topic_enable: true,
            trace_topic: None,
        }
    }
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

impl TopicConfigManager {
    /// Controller mode: the table's version carries the master epoch this broker last
    /// took a role in (Apache's `stateVersion`), so that a name server can tell a deposed
    /// master's late registration from the current master's.
    pub fn set_state_version(&self, epoch: i32) {
        let mut t = self.table.lock().expect("topic table lock");
        if t.version.state_version != i64::from(epoch) {
            t.version.state_version = i64::from(epoch);
            t.bump_version();
        }
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
    /// Loads `topics.json` and puts in the topics every broker carries ([`SystemTopics`]).
    pub fn open(root: &std::path::Path, system: &SystemTopics<'_>) -> std::io::Result<Self> {
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
        let (follow_config, keep_stored) = system.configs();
        let missing: Vec<TopicConfig> = keep_stored
            .into_iter()
            .filter(|c| mgr.get(&c.topic_name).is_none())
            .collect();
        // Not written to disk: they are put back like this at every start, and a first
        // start need not wait for an fsync. The next change to the table writes them along.
        mgr.table
            .lock()
            .expect("topic table lock")
            .insert_all(follow_config.into_iter().chain(missing));
        Ok(mgr)
    }

    /// Puts the system topics that follow the configuration back as it now says (a run-time
    /// change of `autoCreateTopicEnable`, `clusterTopicEnable` or `brokerTopicEnable`).
    pub fn refresh_system_topics(&self, system: &SystemTopics<'_>) {
        let (follow_config, _) = system.configs();
        let mut t = self.table.lock().expect("topic table lock");
        // The version moves even when no topic did: a change of `brokerPermission` alters
        // what is registered, and name servers only re-read a table whose version moved.
        if !t.insert_all(follow_config) {
            t.bump_version();
        }
    }

    /// Takes a master's table in place of this one when its version moved, and writes it
    /// (what a slave does). Returns whether anything changed.
    pub fn replace_with(&self, master: TopicConfigSerializeWrapper) -> std::io::Result<bool> {
        let write = {
            let mut t = self.table.lock().expect("topic table lock");
            if t.topics == master.topic_config_table {
                return Ok(false);
            }
            t.topics = master.topic_config_table;
            t.bump_version();
            self.pending_write(&t)
        };
        write.run().map(|()| true)
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

    /// Creates a config for every topic whose queues hold messages in this broker's log
    /// but which the table lacks: a topic created on a master moments before it died
    /// reached its slaves' logs (replication copies every message) before their next copy
    /// of the master's topic table. A slave promoted in its place adopts such topics, so
    /// their messages stay routable. Each gets `default_queues` queues, or as many as its
    /// highest queue id needs. Returns the adopted names.
    pub fn adopt_from_log(
        &self,
        queues: &[ferromq_store::QueueStats],
        default_queues: i32,
    ) -> std::io::Result<Vec<String>> {
        let mut needed: BTreeMap<&str, i32> = BTreeMap::new();
        for q in queues.iter().filter(|q| q.max_offset > 0) {
            let n = needed.entry(q.topic.as_str()).or_insert(default_queues);
            *n = (*n).max(q.queue_id + 1);
        }
        let adopted: Vec<TopicConfig> = {
            let t = self.table.lock().expect("topic table lock");
            needed
                .into_iter()
                .filter(|(topic, _)| !t.topics.contains_key(*topic))
                .map(|(topic, n)| TopicConfig::new(topic, n, perm::READ | perm::WRITE))
                .collect()
        };
        let names: Vec<String> = adopted.iter().map(|c| c.topic_name.clone()).collect();
        for c in &adopted {
            info!(topic = %c.topic_name, queues = c.write_queue_nums, "topic adopted from the log: its messages are here, its config had not arrived from the old master");
        }
        if !adopted.is_empty() {
            self.upsert_all(adopted)?;
        }
        Ok(names)
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
        let mgr = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
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
        let reopened = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        assert_eq!(reopened.get("orders"), Some(created));
    }

    #[test]
    fn system_topics_are_not_written_at_start_but_always_present() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        assert!(mgr.get(AUTO_CREATE_TOPIC_TEMPLATE).is_some());
        assert!(!dir.path().join("config").join("topics.json").exists());
        drop(mgr);
        // Auto-creation turned off: the template comes back without INHERIT.
        let mgr = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(false)).unwrap();
        let template = mgr.get(AUTO_CREATE_TOPIC_TEMPLATE).unwrap();
        assert_eq!(template.perm & perm::INHERIT, 0);
        assert!(mgr.get(SELF_TEST_TOPIC).is_some());
    }

    #[test]
    fn cluster_and_broker_topics_follow_their_switches() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        let cluster = mgr.get("DefaultCluster").unwrap();
        assert_eq!(cluster.perm, perm::READ | perm::WRITE | perm::INHERIT);
        assert_eq!(cluster.write_queue_nums, 16);
        assert_eq!(mgr.get("broker-a").unwrap().write_queue_nums, 1);
        assert!(mgr.get(crate::schedule::SCHEDULE_TOPIC).is_some());
        let off = SystemTopics {
            cluster_topic_enable: false,
            broker_topic_enable: false,
            ..SystemTopics::for_test(true)
        };
        let version = mgr.wrapper().data_version.counter;
        mgr.refresh_system_topics(&off);
        assert_eq!(mgr.get("DefaultCluster").unwrap().perm, perm::INHERIT);
        assert_eq!(mgr.get("broker-a").unwrap().perm, perm::INHERIT);
        assert!(mgr.wrapper().data_version.counter > version);
        // A refresh that changes nothing still moves the version (brokerPermission).
        let version = mgr.wrapper().data_version.counter;
        mgr.refresh_system_topics(&off);
        assert!(mgr.wrapper().data_version.counter > version);
        assert!(off
            .names()
            .contains(&"DefaultCluster_REPLY_TOPIC".to_string()));
    }

    #[test]
    fn an_older_pending_write_never_replaces_a_newer_table() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        let (_, first) = mgr
            .create_from_template("first", AUTO_CREATE_TOPIC_TEMPLATE, 4)
            .unwrap();
        let (_, second) = mgr
            .create_from_template("second", AUTO_CREATE_TOPIC_TEMPLATE, 4)
            .unwrap();
        // Written out of order, as overlapping requests may.
        second.unwrap().run().unwrap();
        first.unwrap().run().unwrap();
        let reopened = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        assert!(reopened.get("first").is_some());
        assert!(reopened.get("second").is_some());
    }

    #[test]
    fn auto_create_disabled_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(false)).unwrap();
        assert!(mgr
            .create_from_template("orders", AUTO_CREATE_TOPIC_TEMPLATE, 4)
            .is_none());
    }
}
