//! Message request modes (Apache's `MessageRequestModeManager`): per topic and group,
//! whether consumers asking the broker for their queues (QUERY_ASSIGNMENT) PULL or POP,
//! set by mqadmin's `setConsumeMode` (SET_MESSAGE_REQUEST_MODE). Kept in
//! `<root>/config/messageRequestMode.json` in Apache's shape.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::persist;

/// One topic and group's mode (`SetMessageRequestModeRequestBody`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMode {
    pub topic: String,
    pub consumer_group: String,
    /// `PULL` or `POP`.
    #[serde(default = "pull")]
    pub mode: String,
    /// POP: how many other consumers' queues each consumer also pops; 0 or less, all.
    #[serde(default)]
    pub pop_share_queue_num: i32,
}

fn pull() -> String {
    "PULL".into()
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Table {
    #[serde(default)]
    message_request_mode_map: BTreeMap<String, BTreeMap<String, RequestMode>>,
}

pub struct RequestModeManager {
    path: PathBuf,
    table: Mutex<Table>,
}

impl RequestModeManager {
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn open(root: &std::path::Path) -> std::io::Result<Self> {
        let path = root.join("config").join("messageRequestMode.json");
        let table = persist::load(&path)?.unwrap_or_default();
        Ok(RequestModeManager {
            path,
            table: Mutex::new(table),
        })
    }

    /// # Errors
    /// The mode is neither PULL nor POP, or the table cannot be written.
    pub fn set(&self, mode: RequestMode) -> Result<(), String> {
        if mode.mode != "PULL" && mode.mode != "POP" {
            return Err(format!("unknown message request mode {:?}", mode.mode));
        }
        let mut t = self.table.lock().expect("request mode lock");
        t.message_request_mode_map
            .entry(mode.topic.clone())
            .or_default()
            .insert(mode.consumer_group.clone(), mode);
        persist::store(&self.path, &*t).map_err(|e| e.to_string())
    }

    pub fn get(&self, topic: &str, group: &str) -> Option<RequestMode> {
        let t = self.table.lock().expect("request mode lock");
        t.message_request_mode_map
            .get(topic)
            .and_then(|g| g.get(group))
            .cloned()
    }

    /// The whole table as GET_ALL_MESSAGE_REQUEST_MODE answers it.
    pub fn to_json(&self) -> String {
        let t = self.table.lock().expect("request mode lock");
        serde_json::to_string(&*t).expect("request modes serialize")
    }
}
