//! Subscription-group configurations (`SubscriptionGroupManager`): created when a group
//! first heartbeats or commits, or by an administrator; persisted in
//! `config/subscriptionGroup.json`.

use std::collections::BTreeMap;
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
    inner: Mutex<Groups>,
}

/// The table and its file with journal (`subscriptionGroup.json`, see
/// [`persist::Journaled`]): a change is one appended line, written under the table's lock.
struct Groups {
    groups: BTreeMap<String, SubscriptionGroupConfig>,
    journal: persist::Journaled,
}

impl Groups {
    fn write(&mut self, change: persist::Change<SubscriptionGroupConfig>) -> std::io::Result<()> {
        self.write_all(vec![change])
    }

    fn write_all(
        &mut self,
        changes: Vec<persist::Change<SubscriptionGroupConfig>>,
    ) -> std::io::Result<()> {
        if self.journal.wants_fold() {
            self.journal.fold(&self.groups)
        } else {
            self.journal.append(&changes)
        }
    }
}

impl SubscriptionGroupManager {
    pub fn open(root: &std::path::Path) -> std::io::Result<Self> {
        let path = root.join("config").join("subscriptionGroup.json");
        let (journal, mut groups) = persist::Journaled::open::<SubscriptionGroupConfig>(&path)?;
        // Not written at start: they are put back like this at every start.
        for name in SYSTEM_GROUPS {
            groups
                .entry(name.to_string())
                .or_insert_with(|| SubscriptionGroupConfig::new(name));
        }
        Ok(SubscriptionGroupManager {
            inner: Mutex::new(Groups { groups, journal }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.inner.lock().expect("group table lock")
    }

    /// Creates the group's config if it has none.
    pub fn ensure(&self, group: &str) -> std::io::Result<()> {
        let mut g = self.lock();
        if g.groups.contains_key(group) {
            return Ok(());
        }
        let config = SubscriptionGroupConfig::new(group);
        g.groups.insert(group.to_string(), config.clone());
        g.write(persist::Change::Put {
            key: group.to_string(),
            value: config,
        })
    }

    pub fn upsert(&self, config: SubscriptionGroupConfig) -> std::io::Result<()> {
        let mut g = self.lock();
        g.groups.insert(config.group_name.clone(), config.clone());
        g.write(persist::Change::Put {
            key: config.group_name.clone(),
            value: config,
        })
    }

    /// Creates or replaces many groups in one journal write.
    pub fn upsert_all(&self, configs: Vec<SubscriptionGroupConfig>) -> std::io::Result<()> {
        let mut g = self.lock();
        let mut changes = Vec::with_capacity(configs.len());
        for config in configs {
            g.groups.insert(config.group_name.clone(), config.clone());
            changes.push(persist::Change::Put {
                key: config.group_name.clone(),
                value: config,
            });
        }
        g.write_all(changes)
    }

    pub fn delete(&self, group: &str) -> std::io::Result<bool> {
        let mut g = self.lock();
        if g.groups.remove(group).is_none() {
            return Ok(false);
        }
        g.write(persist::Change::Delete {
            key: group.to_string(),
        })?;
        Ok(true)
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.lock().groups.get(group).cloned()
    }

    /// Takes a master's groups in place of these, and writes them whole.
    pub fn replace(
        &self,
        groups: BTreeMap<String, SubscriptionGroupConfig>,
    ) -> std::io::Result<()> {
        let mut g = self.lock();
        if g.groups == groups {
            return Ok(());
        }
        g.groups = groups;
        let Groups { groups, journal } = &mut *g;
        journal.fold(groups)
    }

    pub fn all(&self) -> BTreeMap<String, SubscriptionGroupConfig> {
        self.lock().groups.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creations, updates and deletions are journal lines and come back after reopening;
    /// a replacement (a slave taking its master's groups) is written whole.
    #[test]
    fn group_changes_are_journaled_and_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("config").join("subscriptionGroup.json");
        let groups = SubscriptionGroupManager::open(dir.path()).unwrap();
        for i in 0..20 {
            groups.ensure(&format!("g{i}")).unwrap();
        }
        let mut slow = SubscriptionGroupConfig::new("g5");
        slow.retry_max_times = 3;
        groups.upsert(slow).unwrap();
        assert!(groups.delete("g7").unwrap());
        assert!(!groups.delete("never-made").unwrap());
        assert!(!json.exists(), "no whole-table write for small changes");
        let reopened = SubscriptionGroupManager::open(dir.path()).unwrap();
        assert_eq!(reopened.get("g5").unwrap().retry_max_times, 3);
        assert!(reopened.get("g7").is_none());
        assert!(reopened.get("g19").is_some());
        assert!(reopened.get("TOOLS_CONSUMER").is_some());

        let mut master = reopened.all();
        master.remove("g1");
        reopened.replace(master).unwrap();
        assert!(json.exists());
        let again = SubscriptionGroupManager::open(dir.path()).unwrap();
        assert!(again.get("g1").is_none());
        assert!(again.get("g2").is_some());
    }
}
