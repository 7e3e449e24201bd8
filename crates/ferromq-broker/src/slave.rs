//! What a slave copies from its master over the remoting port, as Apache's
//! `SlaveSynchronize`: topic configs (GET_ALL_TOPIC_CONFIG 21), consumer offsets
//! (GET_ALL_CONSUMER_OFFSET 43), delay progress (GET_ALL_DELAY_OFFSET 45) and subscription
//! groups (GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201). This module answers 43 and 45 on a master
//! and runs the copying on a slave. Message data is not copied here (issue 18's HA stream).
//!
//! The slave learns its master's address from the name server's answer to its
//! registration (`masterAddr`), as Apache's does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::body::{DataVersion, TopicConfigSerializeWrapper};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, NoInbound};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::groups::SubscriptionGroupConfig;
use crate::Broker;

/// How often a slave copies its master's metadata. Apache's controller-mode slave does it
/// every 10 s (classic: 60 s); a copy is a few small requests.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(10);
/// How soon a slave first tries, and tries again after its master could not be reached.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Apache's `ConsumerOffsetSerializeWrapper`. An Apache slave dereferences `dataVersion`,
/// so a master always sends one.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConsumerOffsets {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
    #[serde(default)]
    data_version: Option<DataVersion>,
}

/// Apache's `DelayOffsetSerializeWrapper`: delay level → next offset of its queue.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DelayOffsets {
    offset_table: BTreeMap<i32, u64>,
    #[serde(default)]
    data_version: Option<DataVersion>,
}

/// A version stamp for tables FerroMQ does not version: a copy is taken whole each time.
pub(crate) fn fresh_data_version() -> DataVersion {
    DataVersion {
        timestamp: crate::now_ms(),
        counter: 0,
        state_version: 0,
    }
}

/// UPDATE_CONSUMER_OFFSET field (FerroMQ's; Apache's brokers ignore it): commit only if
/// ahead of the stored offset.
pub(crate) const ONLY_IF_AHEAD: &str = "onlyIfAhead";

/// Entries one paged metadata request asks for (Apache's `splitMetadataSize`).
const METADATA_PAGE: usize = 2000;
/// Pages read at most for one table (a table changing under the copy restarts it).
const MAX_METADATA_PAGES: usize = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupTable {
    subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}

/// Why a copy from the master failed.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("no master address known yet")]
    NoMaster,
    #[error("{what} from {master}: {source}")]
    Call {
        what: &'static str,
        master: String,
        source: ferromq_remoting::RemotingError,
    },
    #[error("{what} from {master} refused: code {code}, {remark}")]
    Refused {
        what: &'static str,
        master: String,
        code: i32,
        remark: String,
    },
    #[error("{what} from {master}: bad body: {source}")]
    Body {
        what: &'static str,
        master: String,
        source: serde_json::Error,
    },
    #[error("writing what was copied: {0}")]
    Persist(#[from] std::io::Error),
}

impl Broker {
    /// GET_ALL_CONSUMER_OFFSET.
    pub(crate) fn all_consumer_offsets(&self, req: &RemotingCommand) -> RemotingCommand {
        let body = ConsumerOffsets {
            offset_table: self.offsets.snapshot(),
            data_version: Some(fresh_data_version()),
        };
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&body).expect("offsets serialize"))
    }

    /// GET_ALL_DELAY_OFFSET.
    pub(crate) fn all_delay_offsets(&self, req: &RemotingCommand) -> RemotingCommand {
        let body = DelayOffsets {
            offset_table: self.schedule.snapshot(),
            data_version: Some(fresh_data_version()),
        };
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&body).expect("delay offsets serialize"))
    }

    /// The master's HA address from the name server, unless `haMasterAddress` fixes it.
    pub(crate) fn learn_master_ha(&self, addr: Option<&str>) {
        // In controller mode the controllers name the master, not the name server (which
        // may still list a dead one).
        if self.config().ha_master_address.is_some() || self.config().enable_controller_mode {
            return;
        }
        let addr = addr.filter(|a| !a.is_empty()).map(str::to_string);
        if addr.is_some() {
            self.master_ha_addr.send_if_modified(|current| {
                let changed = *current != addr;
                *current = addr.clone();
                changed
            });
        }
    }

    /// Records the master's address a registration answered with (slaves only).
    pub(crate) fn learn_master(&self, addr: Option<&str>) {
        if self.config().enable_controller_mode {
            return;
        }
        let addr = addr.filter(|a| !a.is_empty()).map(str::to_string);
        let mut master = self.master_addr.lock().expect("master address lock");
        if addr.is_some() && *master != addr {
            info!(master = ?addr, "following master");
            *master = addr;
        }
    }

    /// Copies the master's metadata every [`SYNC_INTERVAL`] until `shutdown`.
    pub(crate) async fn slave_sync_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut conn: Option<Connection> = None;
        loop {
            let wait = match self.sync_from_master(&mut conn).await {
                Ok(()) => SYNC_INTERVAL,
                Err(SyncError::NoMaster) => RETRY_INTERVAL,
                Err(e) => {
                    warn!(error = %e, "copying the master's metadata failed; retrying");
                    conn = None;
                    RETRY_INTERVAL
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn sync_from_master(&self, conn: &mut Option<Connection>) -> Result<(), SyncError> {
        let master = self
            .master_addr
            .lock()
            .expect("master address lock")
            .clone()
            .ok_or(SyncError::NoMaster)?;
        let c = match conn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => {
                let c = ferromq_remoting::connect(&master, Arc::new(NoInbound), CALL_TIMEOUT)
                    .await
                    .map_err(|source| SyncError::Call {
                        what: "connecting",
                        master: master.clone(),
                        source,
                    })?;
                *conn = Some(c.clone());
                c
            }
        };
        let credentials = self.auth.inner_credentials();
        let link = Link {
            conn: &c,
            master: &master,
            credentials: credentials.as_ref(),
        };
        let topics: TopicConfigSerializeWrapper = fetch_paged(
            &link,
            request::GET_ALL_TOPIC_CONFIG,
            Paging {
                what: "topic configs",
                seq: "topicSeq",
                max: "maxTopicNum",
                total: "totalTopicNum",
                table: "topicConfigTable",
            },
        )
        .await?;
        let topics_changed = self.topics.replace_with(topics)?;
        let mut offsets: ConsumerOffsets =
            fetch(&link, request::GET_ALL_CONSUMER_OFFSET, "consumer offsets").await?;
        self.hand_over_offsets(&link, &mut offsets.offset_table)
            .await?;
        self.offsets.put_all(offsets.offset_table);
        self.offsets.persist()?;
        let delay: DelayOffsets =
            fetch(&link, request::GET_ALL_DELAY_OFFSET, "delay offsets").await?;
        self.schedule.replace(delay.offset_table);
        self.schedule.persist()?;
        let groups: GroupTable = fetch_paged(
            &link,
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
            Paging {
                what: "subscription groups",
                seq: "groupSeq",
                max: "maxGroupNum",
                total: "totalGroupNum",
                table: "subscriptionGroupTable",
            },
        )
        .await?;
        self.groups.replace(groups.subscription_group_table)?;
        if topics_changed {
            self.request_registration();
        }
        debug!(%master, "master's metadata copied");
        Ok(())
    }
}

impl Broker {
    /// Gives the master the offsets consumers committed here while it was away, where they
    /// are ahead of its own (a consumer back on the master may have committed since; a
    /// FerroMQ master checks again as it stores them), and writes what it now holds into
    /// `master_table`.
    async fn hand_over_offsets(
        &self,
        link: &Link<'_>,
        master_table: &mut BTreeMap<String, BTreeMap<i32, i64>>,
    ) -> Result<(), SyncError> {
        let mut handed = 0usize;
        for unsent in self.offsets.unsent() {
            let key = crate::offset::key(&unsent.topic, &unsent.group);
            let masters = master_table.get(&key).and_then(|q| q.get(&unsent.queue_id));
            if masters.is_some_and(|&m| m >= unsent.offset) {
                self.offsets.mark_sent(&unsent);
                continue;
            }
            let req = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
                .with_field("consumerGroup", &unsent.group)
                .with_field("topic", &unsent.topic)
                .with_field("queueId", unsent.queue_id)
                .with_field("commitOffset", unsent.offset)
                .with_field(ONLY_IF_AHEAD, "true");
            let resp = link.invoke(req).await.map_err(|source| SyncError::Call {
                what: "handing over consumer offsets",
                master: link.master.to_string(),
                source,
            })?;
            if resp.code == response::SUCCESS {
                master_table
                    .entry(key)
                    .or_default()
                    .insert(unsent.queue_id, unsent.offset);
                handed += 1;
            } else {
                // Retrying cannot help (the master knows no such group or topic).
                warn!(group = %unsent.group, topic = %unsent.topic, code = resp.code,
                    remark = resp.remark.as_deref().unwrap_or(""),
                    "the master refused a consumer offset taken while it was away; dropped");
            }
            self.offsets.mark_sent(&unsent);
        }
        if handed > 0 {
            info!(master = %link.master, offsets = handed, "handed the master the consumer offsets committed while it was away");
        }
        Ok(())
    }
}

/// The connection to the master, and the credentials its ACL 2.0 wants
/// (`innerClientAuthenticationCredentials`, when authentication is on).
struct Link<'a> {
    conn: &'a Connection,
    master: &'a str,
    credentials: Option<&'a crate::auth::InnerCredentials>,
}

impl Link<'_> {
    async fn invoke(
        &self,
        mut req: RemotingCommand,
    ) -> Result<RemotingCommand, ferromq_remoting::RemotingError> {
        if let Some(c) = self.credentials {
            ferromq_protocol::acl::sign(&mut req, &c.access_key, &c.secret_key);
        }
        self.conn.invoke(req, CALL_TIMEOUT).await
    }
}

/// The header fields and table of a metadata request Apache serves in pages.
struct Paging {
    what: &'static str,
    /// Index of the first entry wanted.
    seq: &'static str,
    /// Entries wanted at most.
    max: &'static str,
    /// Response field with the table's size; a master without paging leaves it out.
    total: &'static str,
    /// The JSON object holding the entries.
    table: &'static str,
}

/// Reads a table page by page as Apache's `SlaveSynchronize` does (an Apache master answers
/// 2000 entries at most per request), merging the pages; starts over when the master's
/// `dataVersion` moves between pages.
async fn fetch_paged<T: serde::de::DeserializeOwned>(
    link: &Link<'_>,
    code: i32,
    p: Paging,
) -> Result<T, SyncError> {
    let mut merged: Option<serde_json::Value> = None;
    let mut version: Option<serde_json::Value> = None;
    let mut seq = 0usize;
    for _ in 0..MAX_METADATA_PAGES {
        let version_text = version.as_ref().map(|v| v.to_string()).unwrap_or_default();
        let req = RemotingCommand::request(code)
            .with_field(p.seq, seq)
            .with_field(p.max, METADATA_PAGE)
            .with_field("dataVersion", version_text);
        let (page, total): (serde_json::Value, Option<usize>) = call(link, req, p.what, |resp| {
            resp.field(p.total).and_then(|t| t.parse().ok())
        })
        .await?;
        let page_version = page.get("dataVersion").cloned();
        if version.is_some() && page_version != version {
            // The table changed between pages: what was read may be stale.
            merged = None;
            version = None;
            seq = 0;
            continue;
        }
        version = page_version;
        let entries = page
            .get(p.table)
            .and_then(|t| t.as_object())
            .map_or(0, |t| t.len());
        match &mut merged {
            None => merged = Some(page),
            Some(all) => {
                if let (Some(into), Some(from)) = (
                    all.get_mut(p.table).and_then(|t| t.as_object_mut()),
                    page.get(p.table).and_then(|t| t.as_object()),
                ) {
                    into.extend(from.clone());
                }
            }
        }
        seq += entries;
        match total {
            Some(total) if seq < total && entries > 0 => continue,
            _ => break,
        }
    }
    serde_json::from_value(merged.unwrap_or_default()).map_err(|source| SyncError::Body {
        what: p.what,
        master: link.master.to_string(),
        source,
    })
}

/// One request to the master and its JSON body.
async fn fetch<T: serde::de::DeserializeOwned>(
    link: &Link<'_>,
    code: i32,
    what: &'static str,
) -> Result<T, SyncError> {
    call(link, RemotingCommand::request(code), what, |_| ())
        .await
        .map(|(body, ())| body)
}

/// Sends `req`, checks the answer, decodes its JSON body and reads `extra` off it.
async fn call<T: serde::de::DeserializeOwned, E>(
    link: &Link<'_>,
    req: RemotingCommand,
    what: &'static str,
    extra: impl FnOnce(&RemotingCommand) -> E,
) -> Result<(T, E), SyncError> {
    let master = link.master;
    let resp = link.invoke(req).await.map_err(|source| SyncError::Call {
        what,
        master: master.to_string(),
        source,
    })?;
    if resp.code != response::SUCCESS {
        return Err(SyncError::Refused {
            what,
            master: master.to_string(),
            code: resp.code,
            remark: resp.remark.unwrap_or_default(),
        });
    }
    // An Apache master writes integer map keys bare (`{0:12}`).
    let json = ferromq_protocol::body::fastjson_to_json(&resp.body);
    let body = serde_json::from_slice(&json).map_err(|source| SyncError::Body {
        what,
        master: master.to_string(),
        source,
    })?;
    Ok((body, extra(&resp)))
}
