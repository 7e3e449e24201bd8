//! GET_BROKER_HA_STATUS (907): how replication stands, as Apache's `HARuntimeInfo`, which
//! `mqadmin haStatus` prints: a master lists its slaves and how far each has acknowledged,
//! a slave names its master and how far its copy goes.

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use serde_json::json;

use crate::Broker;

impl Broker {
    pub(super) fn ha_status(&self, req: &RemotingCommand) -> RemotingCommand {
        let store = self.store.store();
        let end = store.replica_offset();
        let config = self.config();
        let body = match &self.ha_master {
            Some(master) => {
                let gap = config.ha_max_gap_not_in_sync;
                let slaves: Vec<serde_json::Value> = master
                    .slaves()
                    .into_iter()
                    .map(|s| {
                        let ack = s.ack_offset.unwrap_or(0);
                        json!({
                            "addr": s.addr.to_string(),
                            "slaveAckOffset": ack,
                            "diff": end.saturating_sub(ack),
                            "inSync": s.ack_offset.is_some() && end.saturating_sub(ack) < gap,
                            "transferredByteInSecond": 0,
                            "transferFromWhere": ack,
                        })
                    })
                    .collect();
                let in_sync = slaves.iter().filter(|s| s["inSync"] == true).count();
                json!({
                    "master": true,
                    "masterCommitLogMaxOffset": end,
                    "inSyncSlaveNums": in_sync,
                    "haConnectionInfo": slaves,
                    "haClientRuntimeInfo": null,
                })
            }
            None => {
                let status = self
                    .ha_slave_status
                    .lock()
                    .expect("slave status lock")
                    .clone();
                json!({
                    "master": false,
                    "masterCommitLogMaxOffset": status.master_offset,
                    "inSyncSlaveNums": 0,
                    "haConnectionInfo": [],
                    "haClientRuntimeInfo": {
                        "masterAddr": status.master.unwrap_or_default(),
                        "transferredByteInSecond": 0,
                        "maxOffset": end,
                        "lastReadTimestamp": status.last_frame_ms,
                        "lastWriteTimestamp": status.last_frame_ms,
                        "masterFlushOffset": status.master_offset,
                        "activated": status.connected,
                    },
                })
            }
        };
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&body).expect("HA status serializes"))
    }
}
