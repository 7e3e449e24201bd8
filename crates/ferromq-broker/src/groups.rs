//! Subscription-group configurations (`SubscriptionGroupManager`): created when a group
//! first heartbeats or commits, or by an administrator; persisted in
//! `config/subscriptionGroup.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::persist;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    #[serde(default = "yes")]
    pub consume_enable: bool,
    #[serde(default = "yes")]
    pub consume_broadcast_enable: bool,
    #[serde(default = "default_retry_queue_nums")]
    pub retry_queue_nums: i32,
    #[serde(default = "default_retry_max_times")]
    pub retry_max_times: i32,
    #[serde(default)]
    pub broker_id: i64,
    #[serde(default = "default_which_broker")]
    pub which_broker_when_consume_slowly: i64,
    #[serde(default = "yes")]
    pub notify_consumer_ids_changed_enable: bool,
    /// Fields without a typed home (`consumeFromMinEnable`, `consumeMessageOrderly`,
    /// `groupRetryPolicy`, `attributes`, …), kept as the tool sent them so that it reads
    /// back what it wrote.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}
fn default_retry_queue_nums() -> i32 {
    1
}
fn default_retry_max_times() -> i32 {
    16
}
fn default_which_broker() -> i64 {
    1
}

impl SubscriptionGroupConfig {
    /// `consumeMessageOrderly`: POP and gRPC consumers of the group get FIFO delivery.
    pub fn consume_message_orderly(&self) -> bool {
        self.other
            .get("consumeMessageOrderly")
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
    }

    pub fn new(group: &str) -> Self {
        SubscriptionGroupConfig {
            group_name: group.to_string(),
            consume_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            other: BTreeMap::new(),
        }
    }
}

/// The groups every Apache broker has (`SubscriptionGroupManager.init`); tools list them.
pub const SYSTEM_GROUPS: [&str; 8] = [
    "TOOLS_CONSUMER",
    "FILTERSRV_CONSUMER",
    "SELF_TEST_C_GROUP",
    "CID_ONS-HTTP-PROXY",
    "CID_ONSAPI_PULL",
    "CID_ONSAPI_PERMISSION",
    "CID_ONSAPI_OWNER",
    "CID_RMQ_SYS_TRANS",
];

pub struct SubscriptionGroupManager {
    path: PathBuf,
    groups: Mutex<BTreeMap<String, SubscriptionGroupConfig>>,
}

impl SubscriptionGroupManager {
    pub fn open(root: &std::path::Path) -> std::io::Result<Self> {
        let path = root.join("config").join("subscriptionGroup.json");
        let mut groups: BTreeMap<String, SubscriptionGroupConfig> =
            persist::load(&path)?.unwrap_or_default();
        // Not written at start: the next change to the table writes them along.
        for name in SYSTEM_GROUPS {
            groups
                .entry(name.to_string())
                .or_insert_with(|| SubscriptionGroupConfig::new(name));
        }
        Ok(SubscriptionGroupManager {
            path,
            groups: Mutex::new(groups),
        })
    }

    /// Creates the group's config if it has none.
    pub fn ensure(&self, group: &str) -> std::io::Result<()> {
        let mut g = self.groups.lock().expect("group table lock");
        if g.contains_key(group) {
            return Ok(());
        }
        g.insert(group.to_string(), SubscriptionGroupConfig::new(group));
        persist::store(&self.path, &*g)
    }

    pub fn upsert(&self, config: SubscriptionGroupConfig) -> std::io::Result<()> {
        let mut g = self.groups.lock().expect("group table lock");
        g.insert(config.group_name.clone(), config);
        persist::store(&self.path, &*g)
    }

    pub fn delete(&self, group: &str) -> std::io::Result<bool> {
        let mut g = self.groups.lock().expect("group table lock");
        let removed = g.remove(group).is_some();
        persist::store(&self.path, &*g)?;
        Ok(removed)
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.groups
            .lock()
            .expect("group table lock")
            .get(group)
            .cloned()
    }

    /// Takes a master's groups in place of these, and writes them.
    pub fn replace(
        &self,
        groups: BTreeMap<String, SubscriptionGroupConfig>,
    ) -> std::io::Result<()> {
        let mut g = self.groups.lock().expect("group table lock");
        if *g == groups {
            return Ok(());
        }
        *g = groups;
        persist::store(&self.path, &*g)
    }

    pub fn all(&self) -> BTreeMap<String, SubscriptionGroupConfig> {
        self.groups.lock().expect("group table lock").clone()
    }
}
