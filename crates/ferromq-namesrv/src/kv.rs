//! The name server's KV configuration (Apache's `KVConfigManager`): values by namespace
//! and key, such as `ORDER_TOPIC_CONFIG`, which mqadmin writes and clears. Kept in
//! `kvConfig.json` in Apache's format (`{"configTable":{ns:{key:value}}}`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::warn;

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KvFile {
    #[serde(default)]
    config_table: BTreeMap<String, BTreeMap<String, String>>,
}

pub struct KvConfig {
    /// Where changes are written; `None` keeps them in memory only.
    path: Option<PathBuf>,
    table: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl KvConfig {
    /// Loads the file if it exists. An unreadable file is reported and left alone (the
    /// next change would replace it), so the name server still starts.
    pub fn open(path: Option<PathBuf>) -> Self {
        let table = path
            .as_ref()
            .and_then(|p| match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<KvFile>(&bytes) {
                    Ok(f) => Some(f.config_table),
                    Err(e) => {
                        warn!(path = %p.display(), error = %e, "ignoring an unreadable KV config file");
                        None
                    }
                },
                Err(_) => None,
            })
            .unwrap_or_default();
        KvConfig {
            path,
            table: Mutex::new(table),
        }
    }

    pub fn put(&self, namespace: &str, key: &str, value: &str) {
        let mut t = self.table.lock().expect("kv lock");
        t.entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
        self.persist(&t);
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<String> {
        let t = self.table.lock().expect("kv lock");
        t.get(namespace)?.get(key).cloned()
    }

    pub fn delete(&self, namespace: &str, key: &str) {
        let mut t = self.table.lock().expect("kv lock");
        let Some(ns) = t.get_mut(namespace) else {
            return;
        };
        if ns.remove(key).is_some() {
            if ns.is_empty() {
                t.remove(namespace);
            }
            self.persist(&t);
        }
    }

    pub fn namespace(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.table.lock().expect("kv lock").get(namespace).cloned()
    }

    fn persist(&self, table: &BTreeMap<String, BTreeMap<String, String>>) {
        let Some(path) = &self.path else {
            return;
        };
        let file = KvFile {
            config_table: table.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("kv config serializes");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            warn!(path = %path.display(), error = %e, "writing the KV config failed; the change is kept in memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_a_restart_and_deleting_the_last_key_drops_the_namespace() {
        let dir = std::env::temp_dir().join(format!("ferromq-kv-{}", std::process::id()));
        let path = dir.join("kvConfig.json");
        let kv = KvConfig::open(Some(path.clone()));
        kv.put("ORDER_TOPIC_CONFIG", "T", "broker-a:4");
        kv.put("ns2", "k", "v");
        drop(kv);
        let kv = KvConfig::open(Some(path.clone()));
        assert_eq!(
            kv.get("ORDER_TOPIC_CONFIG", "T").as_deref(),
            Some("broker-a:4")
        );
        kv.delete("ORDER_TOPIC_CONFIG", "T");
        assert!(kv.namespace("ORDER_TOPIC_CONFIG").is_none());
        assert_eq!(kv.namespace("ns2").unwrap()["k"], "v");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unreadable_file_starts_empty() {
        let dir = std::env::temp_dir().join(format!("ferromq-kv-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kvConfig.json");
        std::fs::write(&path, b"{not json").unwrap();
        let kv = KvConfig::open(Some(path));
        assert!(kv.get("a", "b").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
