//! GET_BROKER_HA_STATUS (907): how replication stands, as Apache's `HARuntimeInfo`, which
//! `mqadmin haStatus` prints: a master lists its slaves and how far each has acknowledged,
//! a slave names its master and how far its copy goes. Also what an Apache slave asks of
//! its master beside the commit log: GET_TIMER_CHECK_POINT (60), GET_TIMER_METRICS (61)
//! and GET_ALL_MESSAGE_REQUEST_MODE (402). In controller mode: EXCHANGE_BROKER_HA_INFO
//! (906, a master's HA address), GET_BROKER_EPOCH_CACHE (1007, `mqadmin getBrokerEpoch`) and
//! NOTIFY_BROKER_ROLE_CHANGED (1008, the controllers announcing an election).

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use serde_json::json;

use crate::Broker;

impl Broker {
    pub(super) fn ha_status(&self, req: &RemotingCommand) -> RemotingCommand {
        let store = self.store.store();
        let end = store.replica_offset();
        let config = self.config();
        let master = self
            .ha_master
            .as_ref()
            .filter(|_| self.role() == crate::Role::Master);
        let body = match master {
            Some(master) => {
                let gap = config.ha_max_gap_not_in_sync;
                let slaves: Vec<serde_json::Value> = master
                    .slaves()
                    .into_iter()
                    .map(|s| {
                        let ack = s.ack_offset.unwrap_or(0);
                        json!({
                            "addr": s.addr.to_string(),
                            "brokerId": s.broker_id,
                            "slaveAckOffset": ack,
                            "diff": end.saturating_sub(ack),
                            "inSync": s.ack_offset.is_some() && end.saturating_sub(ack) < gap,
                            "transferredByteInSecond": 0,
                            "transferFromWhere": ack,
                        })
                    })
                    .collect();
                let in_sync = slaves.iter().filter(|s| s["inSync"] == true).count();
                let mut status = json!({
                    "master": true,
                    "masterCommitLogMaxOffset": end,
                    "inSyncSlaveNums": in_sync,
                    "haConnectionInfo": slaves,
                    "haClientRuntimeInfo": null,
                });
                // FerroMQ's additions (Apache's readers skip them): the controllers' record.
                if config.enable_controller_mode {
                    let (epoch, set) = self.controller.agreed_sync_state();
                    status["masterEpoch"] = json!(epoch);
                    status["syncStateSet"] = json!(set);
                }
                status
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

impl Broker {
    /// Apache's `TimerCheckpoint` as 56 bytes: the time up to which timers were delivered,
    /// then fields of Apache's timer log FerroMQ does not have (0), then a data version.
    pub(super) fn timer_check_point(&self, req: &RemotingCommand) -> RemotingCommand {
        let mut body = Vec::with_capacity(56);
        let fired_until = self.timers.fired_until_ms();
        for field in [fired_until, 0, 0, 0, 0, crate::now_ms(), 0] {
            body.extend_from_slice(&field.to_be_bytes());
        }
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body)
    }

    /// Apache's `TimerMetricsSerializeWrapper`: FerroMQ counts timers per broker, not per
    /// topic, so the table is empty.
    pub(super) fn timer_metrics(&self, req: &RemotingCommand) -> RemotingCommand {
        let body = json!({
            "timingCount": {},
            "dataVersion": crate::slave::fresh_data_version(),
        });
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&body).expect("timer metrics serialize"))
    }
}

impl Broker {
    /// EXCHANGE_BROKER_HA_INFO asked of a master: where its slaves connect.
    pub(super) fn exchange_ha_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let config = self.config();
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("masterHaAddress", config.ha_server_addr())
            .with_field("masterFlushOffset", self.store.store().complete_offset())
            .with_field("masterAddress", config.advertised_addr())
    }

    /// GET_BROKER_EPOCH_CACHE: this broker's epochs, as Apache's `EpochEntryCache`.
    pub(super) fn epoch_cache(&self, req: &RemotingCommand) -> RemotingCommand {
        let config = self.config();
        let store = self.store.store();
        let max = store.replica_offset();
        let epochs = store.epochs();
        let list: Vec<serde_json::Value> = epochs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let end = epochs.get(i + 1).map_or(max, |n| n.start);
                json!({"epoch": e.epoch, "startOffset": e.start, "endOffset": end})
            })
            .collect();
        let body = json!({
            "clusterName": config.cluster_name,
            "brokerName": config.broker_name,
            "brokerId": self.registered_broker_id(),
            "epochList": list,
            "maxOffset": max,
        });
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&body).expect("epochs serialize"))
    }

    /// NOTIFY_BROKER_ROLE_CHANGED: the controllers elected a master; the broker looks at its
    /// group at once rather than at its next periodic check.
    pub(super) fn role_changed(&self, req: &RemotingCommand) -> RemotingCommand {
        if !self.config().enable_controller_mode {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "this broker is not in controller mode",
            );
        }
        self.controller.role_changed();
        RemotingCommand::response_to(req, response::SUCCESS)
    }
}
