//! Topic configurations: the table registered with name servers, persisted in
//! `config/topics.json` and its journal (a change is one appended line, not a rewrite of
//! the table: see [`persist::Journaled`]), including auto-creation from the `TBW102`
//! template.

use std::collections::BTreeMap;
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

/// A stored name as a namespace and a name, as Apache's `NamespaceUtil` reads the `%`
/// namespace prefix clients add (`WithNamespace`): `tenant%orders` is `orders` in
/// `tenant`, `%RETRY%tenant%g` is `%RETRY%g` in `tenant`. System topics and groups, and
/// names without a prefix, have no namespace.
pub fn split_namespace(resource: &str) -> (&str, String) {
    if crate::metrics::is_system_topic(resource) || crate::metrics::is_system_group(resource) {
        return ("", resource.to_string());
    }
    let (kind, bare) = [RETRY_GROUP_TOPIC_PREFIX, DLQ_GROUP_TOPIC_PREFIX]
        .iter()
        .find_map(|p| resource.strip_prefix(p).map(|rest| (*p, rest)))
        .unwrap_or(("", resource));
    match bare.find('%') {
        Some(i) if i > 0 => (&bare[..i], format!("{kind}{}", &bare[i + 1..])),
        _ => ("", resource.to_string()),
    }
}
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
    /// Changes made and not yet written, in the order they were made.
    unwritten: Vec<persist::Change<TopicConfig>>,
    /// The next write writes the whole table (after a replacement, or a failed write).
    fold: bool,
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
            self.unwritten.push(persist::Change::Put {
                key: config.topic_name.clone(),
                value: config.clone(),
            });
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
    table: Arc<Mutex<Table>>,
    writer: Arc<Mutex<Writer>>,
}

/// Held while writing (before the table's lock, never after it), so that writes made off
/// the callers' threads reach the disk one at a time and in the order they were made.
struct Writer {
    journal: persist::Journaled,
    /// The table version the disk holds.
    written: i64,
}

/// A change to the topic table not yet written to disk. Callers that may overlap the
/// write with other work run it themselves.
#[must_use = "the change is not durable until the write has run"]
pub struct PendingWrite {
    version: i64,
    table: Arc<Mutex<Table>>,
    writer: Arc<Mutex<Writer>>,
}

impl PendingWrite {
    /// Writes every change made so far, unless an overlapping write already has (changes
    /// made meanwhile ride along: one sync for all of them).
    pub fn run(self) -> std::io::Result<()> {
        let mut w = self.writer.lock().expect("topic file lock");
        if w.written >= self.version {
            return Ok(());
        }
        let (changes, whole, version) = {
            let mut t = self.table.lock().expect("topic table lock");
            let fold = std::mem::take(&mut t.fold) || w.journal.wants_fold();
            let changes = std::mem::take(&mut t.unwritten);
            (changes, fold.then(|| t.topics.clone()), t.version.counter)
        };
        let written = match &whole {
            Some(topics) => w.journal.fold(topics),
            None => w.journal.append(&changes),
        };
        if written.is_err() {
            // The changes taken are lost to the journal: the next write writes the table.
            self.table.lock().expect("topic table lock").fold = true;
        }
        written?;
        w.written = version;
        Ok(())
    }
}

impl TopicConfigManager {
    /// Loads `topics.json` and puts in the topics every broker carries ([`SystemTopics`]).
    pub fn open(root: &std::path::Path, system: &SystemTopics<'_>) -> std::io::Result<Self> {
        let path = root.join("config").join("topics.json");
        let (journal, topics) = persist::Journaled::open::<TopicConfig>(&path)?;
        let mgr = TopicConfigManager {
            writer: Arc::new(Mutex::new(Writer {
                journal,
                written: 0,
            })),
            table: Arc::new(Mutex::new(Table {
                topics,
                version: DataVersion {
                    timestamp: now_ms(),
                    counter: 0,
                    state_version: 0,
                },
                unwritten: Vec::new(),
                fold: false,
            })),
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
            t.unwritten.clear();
            t.fold = true;
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

    /// The table's version (changes with every create, update and delete).
    pub fn data_version(&self) -> DataVersion {
        self.table.lock().expect("topic table lock").version.clone()
    }

    /// The named topics that exist, with the table's version: a registration increment.
    pub fn wrapper_of(&self, names: &[String]) -> TopicConfigSerializeWrapper {
        let t = self.table.lock().expect("topic table lock");
        TopicConfigSerializeWrapper {
            topic_config_table: names
                .iter()
                .filter_map(|n| t.topics.get(n).map(|c| (n.clone(), c.clone())))
                .collect(),
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
            version: t.version.counter,
            table: self.table.clone(),
            writer: self.writer.clone(),
        }
    }

    pub fn delete(&self, topic: &str) -> std::io::Result<bool> {
        let mut t = self.table.lock().expect("topic table lock");
        if t.topics.remove(topic).is_none() {
            return Ok(false);
        }
        t.unwritten.push(persist::Change::Delete {
            key: topic.to_string(),
        });
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
        t.unwritten.push(persist::Change::Put {
            key: topic.to_string(),
            value: config.clone(),
        });
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
    fn namespaced_names_split_as_apache_splits_them() {
        assert_eq!(
            split_namespace("tenant%orders"),
            ("tenant", "orders".to_string())
        );
        assert_eq!(
            split_namespace("%RETRY%tenant%g"),
            ("tenant", "%RETRY%g".to_string())
        );
        assert_eq!(
            split_namespace("%DLQ%tenant%g"),
            ("tenant", "%DLQ%g".to_string())
        );
        assert_eq!(split_namespace("orders"), ("", "orders".to_string()));
        assert_eq!(split_namespace("%RETRY%g"), ("", "%RETRY%g".to_string()));
        assert_eq!(
            split_namespace("rmq_sys_x%y"),
            ("", "rmq_sys_x%y".to_string())
        );
    }

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

    /// Each change is a journal line, not a rewrite of topics.json; creations, updates and
    /// deletions all come back after reopening, and a slave's replacement of the whole
    /// table is written whole.
    #[test]
    fn changes_are_journaled_and_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("config").join("topics.json");
        let log = dir.path().join("config").join("topics.json.log");
        let mgr = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        for i in 0..50 {
            mgr.upsert(TopicConfig::new(
                &format!("t{i}"),
                4,
                perm::READ | perm::WRITE,
            ))
            .unwrap();
        }
        mgr.upsert(TopicConfig::new("t7", 16, perm::READ | perm::WRITE))
            .unwrap();
        mgr.delete("t3").unwrap();
        assert!(!json.exists(), "no whole-table write for 52 small changes");
        assert!(std::fs::metadata(&log).unwrap().len() > 0);
        let reopened = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        assert!(reopened.get("t3").is_none());
        assert_eq!(reopened.get("t7").unwrap().write_queue_nums, 16);
        assert!(reopened.get("t49").is_some());

        let mut master = reopened.wrapper();
        master.topic_config_table.remove("t1");
        assert!(reopened.replace_with(master).unwrap());
        assert!(json.exists(), "a replaced table is written whole");
        assert!(!log.exists(), "and the journal starts over");
        let again = TopicConfigManager::open(dir.path(), &SystemTopics::for_test(true)).unwrap();
        assert!(again.get("t1").is_none());
        assert!(again.get("t2").is_some());
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
