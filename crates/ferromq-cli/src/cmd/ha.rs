//! Replication and controller commands: haStatus and getBrokerEpoch (asked of brokers),
//! getControllerMetaData, getSyncStateSet and electMaster (asked of the controllers).

use anyhow::{bail, Result};
use clap::Args;
use ferromq_protocol::RemotingCommand;
use serde_json::{json, Value};

use crate::ctx::{label, s, Ctx, Members, Target};
use crate::table::Table;

const GET_BROKER_EPOCH_CACHE: i32 = 1007;
const CONTROLLER_ELECT_MASTER: i32 = 1002;
const CONTROLLER_GET_METADATA_INFO: i32 = 1005;
const CONTROLLER_GET_SYNC_STATE_DATA: i32 = 1006;

fn body_json(resp: &RemotingCommand) -> Result<Value> {
    Ok(serde_json::from_slice(&resp.body)?)
}

#[derive(Args)]
pub struct HaStatus {
    #[command(flatten)]
    target: Target,
}

impl HaStatus {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new([
            "Broker",
            "Role",
            "Log end",
            "Peer",
            "Peer offset",
            "Behind",
            "In sync",
        ]);
        let mut rows = Vec::new();
        for b in ctx.targets(&self.target, Members::WithSlaves).await? {
            let resp = ctx
                .remote
                .ok(
                    &b.addr,
                    RemotingCommand::request(ferromq_protocol::code::request::GET_BROKER_HA_STATUS),
                    "haStatus",
                )
                .await?;
            let info = body_json(&resp)?;
            let end = info["masterCommitLogMaxOffset"].as_u64().unwrap_or(0);
            if info["master"] == true {
                let slaves = info["haConnectionInfo"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if slaves.is_empty() {
                    t.row([
                        label(&b),
                        "master".into(),
                        end.to_string(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                }
                for c in &slaves {
                    t.row([
                        label(&b),
                        "master".into(),
                        end.to_string(),
                        s(&c["addr"]),
                        s(&c["slaveAckOffset"]),
                        s(&c["diff"]),
                        s(&c["inSync"]),
                    ]);
                }
            } else {
                let client = &info["haClientRuntimeInfo"];
                let copied = client["maxOffset"].as_u64().unwrap_or(0);
                t.row([
                    label(&b),
                    "slave".into(),
                    copied.to_string(),
                    s(&client["masterAddr"]),
                    end.to_string(),
                    end.saturating_sub(copied).to_string(),
                    s(&client["activated"]),
                ]);
            }
            rows.push(json!({"broker": label(&b), "addr": b.addr, "status": info}));
        }
        ctx.print(t, json!(rows));
        Ok(())
    }
}

#[derive(Args)]
pub struct GetBrokerEpoch {
    #[command(flatten)]
    target: Target,
}

impl GetBrokerEpoch {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new(["Broker", "Epoch", "Start", "End"]);
        let mut rows = Vec::new();
        for b in ctx.targets(&self.target, Members::WithSlaves).await? {
            let resp = ctx
                .remote
                .ok(
                    &b.addr,
                    RemotingCommand::request(GET_BROKER_EPOCH_CACHE),
                    "getBrokerEpoch",
                )
                .await?;
            let cache = body_json(&resp)?;
            for e in cache["epochList"].as_array().cloned().unwrap_or_default() {
                t.row([
                    label(&b),
                    s(&e["epoch"]),
                    s(&e["startOffset"]),
                    s(&e["endOffset"]),
                ]);
            }
            rows.push(cache);
        }
        ctx.print(t, json!(rows));
        Ok(())
    }
}

#[derive(Args)]
pub struct ControllerAddr {
    /// Controller address(es), `host:port;host:port`.
    #[arg(short = 'a', long = "controllerAddress")]
    controllers: String,
}

impl ControllerAddr {
    fn list(&self) -> Vec<String> {
        self.controllers
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The leader among the controllers, as they report it.
    async fn leader(&self, ctx: &Ctx) -> Result<String> {
        for addr in self.list() {
            let Ok(meta) = ctx
                .remote
                .call(
                    &addr,
                    RemotingCommand::request(CONTROLLER_GET_METADATA_INFO),
                )
                .await
            else {
                continue;
            };
            if meta.field("isLeader") == Some("true") {
                return Ok(addr);
            }
            if let Some(l) = meta
                .field("controllerLeaderAddress")
                .filter(|l| !l.is_empty())
            {
                return Ok(l.to_string());
            }
        }
        bail!("no controller among {} knows a leader", self.controllers)
    }
}

#[derive(Args)]
pub struct GetControllerMetaData {
    #[command(flatten)]
    controllers: ControllerAddr,
}

impl GetControllerMetaData {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new(["Controller", "Group", "Leader", "Is leader", "Peers"]);
        let mut rows = Vec::new();
        for addr in self.controllers.list() {
            let meta = ctx
                .remote
                .ok(
                    &addr,
                    RemotingCommand::request(CONTROLLER_GET_METADATA_INFO),
                    "getControllerMetaData",
                )
                .await?;
            let f = |k: &str| meta.field(k).unwrap_or_default().to_string();
            t.row([
                addr.clone(),
                f("group"),
                f("controllerLeaderAddress"),
                f("isLeader"),
                f("peers"),
            ]);
            rows.push(json!({"controller": addr, "group": f("group"), "leaderAddress": f("controllerLeaderAddress"), "isLeader": f("isLeader") == "true", "peers": f("peers")}));
        }
        ctx.print(t, json!(rows));
        Ok(())
    }
}

#[derive(Args)]
pub struct GetSyncStateSet {
    #[command(flatten)]
    controllers: ControllerAddr,
    /// Broker name(s), `name,name`; without it, every broker name of the cluster (-c).
    #[arg(short = 'b', long = "brokerName", value_delimiter = ',')]
    broker_names: Vec<String>,
    /// Cluster whose broker names to show.
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

impl GetSyncStateSet {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut names = self.broker_names.clone();
        if names.is_empty() {
            names = ctx
                .cluster_broker_names(self.cluster.as_deref())
                .await?
                .unwrap_or_default();
        }
        if names.is_empty() {
            bail!("give broker names (-b) or a cluster the name server knows (-c)");
        }
        let leader = self.controllers.leader(ctx).await?;
        let req = RemotingCommand::request(CONTROLLER_GET_SYNC_STATE_DATA)
            .with_body(serde_json::to_vec(&names)?);
        let resp = ctx.remote.ok(&leader, req, "getSyncStateSet").await?;
        let data = body_json(&resp)?;
        let mut t = Table::new([
            "Broker name",
            "Master",
            "Master epoch",
            "Set epoch",
            "Replica",
            "In sync",
            "Alive",
        ]);
        if let Some(table) = data["replicasInfoTable"].as_object() {
            for (name, info) in table {
                for (list, in_sync) in [("inSyncReplicas", true), ("notInSyncReplicas", false)] {
                    for r in info[list].as_array().cloned().unwrap_or_default() {
                        t.row([
                            name.clone(),
                            format!(
                                "{} {}",
                                s(&info["masterBrokerId"]),
                                s(&info["masterAddress"])
                            ),
                            s(&info["masterEpoch"]),
                            s(&info["syncStateSetEpoch"]),
                            format!("{} {}", s(&r["brokerId"]), s(&r["brokerAddress"])),
                            in_sync.to_string(),
                            s(&r["alive"]),
                        ]);
                    }
                }
            }
        }
        ctx.print(t, data);
        Ok(())
    }
}

#[derive(Args)]
pub struct ElectMaster {
    #[command(flatten)]
    controllers: ControllerAddr,
    #[arg(short = 'c', long = "clusterName")]
    cluster: String,
    #[arg(long = "bn", visible_alias = "brokerName")]
    broker_name: String,
    /// The broker (its controller id) to make master; it must be in sync and alive.
    #[arg(short = 'b', long = "brokerId")]
    broker_id: i64,
}

impl ElectMaster {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let leader = self.controllers.leader(ctx).await?;
        let req = RemotingCommand::request(CONTROLLER_ELECT_MASTER)
            .with_field("clusterName", &self.cluster)
            .with_field("brokerName", &self.broker_name)
            .with_field("brokerId", self.broker_id)
            .with_field("designateElect", true);
        let resp = ctx.remote.ok(&leader, req, "electMaster").await?;
        let f = |k: &str| resp.field(k).unwrap_or_default().to_string();
        let mut t = Table::new([
            "Broker name",
            "Master",
            "Address",
            "Master epoch",
            "Set epoch",
        ]);
        t.row([
            self.broker_name.clone(),
            f("masterBrokerId"),
            f("masterAddress"),
            f("masterEpoch"),
            f("syncStateSetEpoch"),
        ]);
        ctx.print(
            t,
            json!({"brokerName": self.broker_name, "masterBrokerId": f("masterBrokerId"), "masterAddress": f("masterAddress"), "masterEpoch": f("masterEpoch"), "syncStateSetEpoch": f("syncStateSetEpoch")}),
        );
        Ok(())
    }
}
