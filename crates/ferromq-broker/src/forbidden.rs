//! Groups forbidden to read topics (Apache's `SubscriptionGroupManager.forbiddenTable`, set
//! by UPDATE_AND_GET_GROUP_FORBIDDEN, 353): a pull of a forbidden group on that topic is
//! refused with NO_PERMISSION. Kept in `config/groupForbidden.json`, written whole on each
//! change (the table is small: operators set it by hand).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::persist;

/// Apache's `PermName.INDEX_PERM_READ`: the read bit of a forbidden mask.
const READ_BIT: u32 = 1 << 2;

pub struct GroupForbidden {
    path: PathBuf,
    /// group → topic → forbidden permission bits.
    table: Mutex<BTreeMap<String, BTreeMap<String, u32>>>,
}

impl GroupForbidden {
    pub fn open(root: &std::path::Path) -> std::io::Result<Self> {
        let path = root.join("config").join("groupForbidden.json");
        let table = persist::load(&path)?.unwrap_or_default();
        Ok(GroupForbidden {
            path,
            table: Mutex::new(table),
        })
    }

    /// Whether `group` may read `topic`.
    pub fn readable(&self, group: &str, topic: &str) -> bool {
        let table = self.table.lock().expect("forbidden table lock");
        table
            .get(group)
            .and_then(|topics| topics.get(topic))
            .is_none_or(|mask| mask & READ_BIT == 0)
    }

    /// Forbids or allows `group` to read `topic`, and saves the table. Unlike Apache, allowing
    /// one topic leaves the group's other forbidden topics as they are.
    pub fn set_readable(&self, group: &str, topic: &str, readable: bool) -> std::io::Result<()> {
        let mut table = self.table.lock().expect("forbidden table lock");
        let topics = table.entry(group.to_string()).or_default();
        let mask = topics.entry(topic.to_string()).or_default();
        if readable {
            *mask &= !READ_BIT;
        } else {
            *mask |= READ_BIT;
        }
        if *mask == 0 {
            topics.remove(topic);
        }
        if topics.is_empty() {
            table.remove(group);
        }
        persist::store(&self.path, &*table)
    }
}
