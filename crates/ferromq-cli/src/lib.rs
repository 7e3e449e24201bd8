//! `ferromq admin …`: mqadmin-style commands over the remoting protocol. It is a plain
//! client: brokers are found through the name server, so it works against FerroMQ and
//! Apache RocketMQ alike (FerroMQ-only commands say so).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use ferromq_protocol::body::{ClusterInfo, TopicRouteData};
use ferromq_protocol::code::request;
use ferromq_protocol::message::{MessageExt, MAX_PROPERTIES_BYTES};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, NoInbound};

mod table;

use table::Table;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct AdminArgs {
    /// Name server address.
    #[arg(
        short = 'n',
        long = "namesrvAddr",
        global = true,
        default_value = "127.0.0.1:9876"
    )]
    namesrv: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Brokers of every cluster.
    #[command(name = "clusterList")]
    ClusterList,
    /// A broker's runtime figures.
    #[command(name = "brokerStatus")]
    BrokerStatus(BrokerArg),
    /// Delayed and timer messages waiting, per delay level and due-time window (FerroMQ).
    #[command(name = "delayStatus")]
    DelayStatus(BrokerArg),
    /// Undecided transactions with their age and check count (FerroMQ).
    #[command(name = "transactionStatus")]
    TransactionStatus {
        #[command(flatten)]
        broker: BrokerArg,
        /// Transactions listed at most.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Moves a consumer group's offsets on a topic to a point in time.
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime {
        #[arg(short = 'g', long = "group")]
        group: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Milliseconds since the epoch, or `now`.
        #[arg(short = 's', long = "timestamp")]
        timestamp: String,
    },
    /// Sends the messages of a group's dead-letter queue back to the group's retry topic,
    /// so its consumers get them again.
    #[command(name = "resendDlq")]
    ResendDlq {
        #[arg(short = 'g', long = "group")]
        group: String,
        /// Messages re-sent at most.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

#[derive(Args)]
pub struct BrokerArg {
    /// Broker address; default: every master broker known to the name server.
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
}

/// Runs one admin command; errors are one-line reasons for the operator.
pub async fn run(args: AdminArgs) -> Result<()> {
    let admin = Admin {
        namesrv: args.namesrv,
        json: args.json,
    };
    match args.command {
        AdminCommand::ClusterList => admin.cluster_list().await,
        AdminCommand::BrokerStatus(b) => admin.broker_status(b.broker).await,
        AdminCommand::DelayStatus(b) => admin.delay_status(b.broker).await,
        AdminCommand::TransactionStatus { broker, max } => {
            admin.transaction_status(broker.broker, max).await
        }
        AdminCommand::ResetOffsetByTime {
            group,
            topic,
            timestamp,
        } => admin.reset_offset(&group, &topic, &timestamp).await,
        AdminCommand::ResendDlq { group, max } => admin.resend_dlq(&group, max).await,
    }
}

struct Admin {
    namesrv: String,
    json: bool,
}

async fn connect(addr: &str) -> Result<Connection> {
    ferromq_remoting::connect(addr, Arc::new(NoInbound), TIMEOUT)
        .await
        .with_context(|| format!("cannot reach {addr}"))
}

async fn call(conn: &Connection, cmd: RemotingCommand) -> Result<RemotingCommand> {
    Ok(conn.invoke(cmd, TIMEOUT).await?)
}

fn ok(resp: RemotingCommand, what: &str) -> Result<RemotingCommand> {
    if resp.code != 0 {
        bail!(
            "{what} failed: code {} {}",
            resp.code,
            resp.remark.unwrap_or_default()
        );
    }
    Ok(resp)
}

impl Admin {
    fn print(&self, table: Table, json: serde_json::Value) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("JSON prints")
            );
        } else {
            print!("{table}");
        }
    }

    async fn cluster(&self) -> Result<ClusterInfo> {
        let ns = connect(&self.namesrv).await?;
        let resp = ok(
            call(
                &ns,
                RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO),
            )
            .await?,
            "GET_BROKER_CLUSTER_INFO",
        )?;
        serde_json::from_slice(&resp.body).context("cluster info is not valid JSON")
    }

    /// The given broker, or every master.
    async fn brokers(&self, broker: Option<String>) -> Result<Vec<(String, String)>> {
        if let Some(b) = broker {
            return Ok(vec![(b.clone(), b)]);
        }
        let info = self.cluster().await?;
        let masters: Vec<(String, String)> = info
            .broker_addr_table
            .values()
            .filter_map(|b| {
                b.broker_addrs
                    .get(&0)
                    .map(|a| (b.broker_name.clone(), a.clone()))
            })
            .collect();
        if masters.is_empty() {
            bail!("the name server at {} knows no broker", self.namesrv);
        }
        Ok(masters)
    }

    async fn cluster_list(&self) -> Result<()> {
        let info = self.cluster().await?;
        let mut t = Table::new(["Cluster", "Broker", "BID", "Address"]);
        let mut rows = Vec::new();
        for (cluster, names) in &info.cluster_addr_table {
            for name in names {
                if let Some(b) = info.broker_addr_table.get(name) {
                    for (id, addr) in &b.broker_addrs {
                        t.row([cluster.clone(), name.clone(), id.to_string(), addr.clone()]);
                        rows.push(serde_json::json!({"cluster": cluster, "broker": name, "brokerId": id, "address": addr}));
                    }
                }
            }
        }
        self.print(t, serde_json::Value::Array(rows));
        Ok(())
    }

    async fn runtime_info(&self, addr: &str) -> Result<BTreeMap<String, String>> {
        let conn = connect(addr).await?;
        let resp = ok(
            call(
                &conn,
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
            )
            .await?,
            "GET_BROKER_RUNTIME_INFO",
        )?;
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body).context("runtime info is not valid JSON")?;
        let table = v
            .get("table")
            .and_then(|t| t.as_object())
            .ok_or_else(|| anyhow!("runtime info has no table"))?;
        Ok(table
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect())
    }

    async fn broker_status(&self, broker: Option<String>) -> Result<()> {
        let mut t = Table::new(["Broker", "Key", "Value"]);
        let mut all = serde_json::Map::new();
        for (name, addr) in self.brokers(broker).await? {
            let info = self.runtime_info(&addr).await?;
            for (k, v) in &info {
                t.row([name.clone(), k.clone(), v.clone()]);
            }
            all.insert(name, serde_json::to_value(&info).expect("map serializes"));
        }
        self.print(t, serde_json::Value::Object(all));
        Ok(())
    }

    async fn delay_status(&self, broker: Option<String>) -> Result<()> {
        let mut t = Table::new(["Broker", "Kind", "Pending"]);
        let mut rows = Vec::new();
        for (name, addr) in self.brokers(broker).await? {
            let info = self.runtime_info(&addr).await?;
            let mut levels: Vec<(u32, &String)> = info
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("scheduleMessagePending.level")
                        .and_then(|l| l.parse().ok())
                        .map(|l| (l, v))
                })
                .collect();
            levels.sort();
            if levels.is_empty() && !info.contains_key("timerPending") {
                bail!("broker {addr} does not report delayed messages (not a FerroMQ broker?)");
            }
            for (level, pending) in levels {
                t.row([
                    name.clone(),
                    format!("delay level {level}"),
                    pending.clone(),
                ]);
                rows.push(serde_json::json!({"broker": name, "kind": format!("level{level}"), "pending": pending}));
            }
            for key in [
                "timerPending",
                "timerPendingWithin1m",
                "timerPendingWithin10m",
                "timerPendingWithin1h",
                "timerPendingWithin1d",
            ] {
                if let Some(v) = info.get(key) {
                    let label = match key {
                        "timerPending" => "timers (all)".to_string(),
                        k => format!("timers due within {}", &k["timerPendingWithin".len()..]),
                    };
                    t.row([name.clone(), label.clone(), v.clone()]);
                    rows.push(serde_json::json!({"broker": name, "kind": key, "pending": v}));
                }
            }
        }
        self.print(t, serde_json::Value::Array(rows));
        Ok(())
    }

    async fn transaction_status(&self, broker: Option<String>, max: usize) -> Result<()> {
        let mut t = Table::new([
            "Broker",
            "QueueOffset",
            "ProducerGroup",
            "Topic",
            "TransactionId",
            "Age(s)",
            "Checks",
        ]);
        let mut rows = Vec::new();
        for (name, addr) in self.brokers(broker).await? {
            let conn = connect(&addr).await?;
            let req = RemotingCommand::request(request::FERROMQ_LIST_UNDECIDED_TRANSACTIONS)
                .with_field("max", max);
            let resp = call(&conn, req).await?;
            if resp.code == 3 {
                bail!("broker {addr} cannot list transactions (not a FerroMQ broker)");
            }
            let list: Vec<serde_json::Value> =
                serde_json::from_slice(&ok(resp, "listing transactions")?.body)?;
            for tx in list {
                let get = |k: &str| {
                    tx.get(k)
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_default()
                };
                let age = tx.get("ageMs").and_then(|a| a.as_i64()).unwrap_or(0) / 1000;
                t.row([
                    name.clone(),
                    get("queueOffset"),
                    get("producerGroup"),
                    get("topic"),
                    get("transactionId"),
                    age.to_string(),
                    get("checkTimes"),
                ]);
                rows.push(tx);
            }
        }
        self.print(t, serde_json::Value::Array(rows));
        Ok(())
    }

    async fn reset_offset(&self, group: &str, topic: &str, timestamp: &str) -> Result<()> {
        let ts: i64 = if timestamp == "now" {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64
        } else {
            timestamp.parse().with_context(|| {
                format!("timestamp '{timestamp}' is neither milliseconds nor 'now'")
            })?
        };
        let route = self.route(topic).await?;
        let mut t = Table::new(["Broker", "Result"]);
        for b in &route.broker_datas {
            let Some(addr) = b.broker_addrs.get(&0) else {
                continue;
            };
            let conn = connect(addr).await?;
            let req = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_field("topic", topic)
                .with_field("group", group)
                .with_field("timestamp", ts)
                .with_field("isForce", true);
            ok(call(&conn, req).await?, "resetting offsets")?;
            t.row([b.broker_name.clone(), "offsets reset".into()]);
        }
        self.print(
            t,
            serde_json::json!({"group": group, "topic": topic, "timestamp": ts}),
        );
        Ok(())
    }

    async fn route(&self, topic: &str) -> Result<TopicRouteData> {
        let ns = connect(&self.namesrv).await?;
        let resp = call(
            &ns,
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_field("topic", topic),
        )
        .await?;
        if resp.code == 17 {
            bail!("unknown topic {topic}");
        }
        serde_json::from_slice(&ok(resp, "GET_ROUTEINFO_BY_TOPIC")?.body)
            .context("route is not valid JSON")
    }

    async fn resend_dlq(&self, group: &str, max: usize) -> Result<()> {
        let dlq = format!("%DLQ%{group}");
        let retry = format!("%RETRY%{group}");
        let tool_group = "ferromq-admin-dlq";
        let route = self.route(&dlq).await?;
        let mut resent = 0usize;
        for b in &route.broker_datas {
            let Some(addr) = b.broker_addrs.get(&0) else {
                continue;
            };
            let conn = connect(addr).await?;
            let query = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
                .with_field("consumerGroup", tool_group)
                .with_field("topic", &dlq)
                .with_field("queueId", 0)
                .with_field("setZeroIfNotFound", true);
            let mut offset: i64 = call(&conn, query)
                .await?
                .field("offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0);
            while resent < max {
                let pull = RemotingCommand::request(request::PULL_MESSAGE)
                    .with_field("consumerGroup", tool_group)
                    .with_field("topic", &dlq)
                    .with_field("queueId", 0)
                    .with_field("queueOffset", offset)
                    .with_field("maxMsgNums", 32.min(max - resent))
                    .with_field("sysFlag", 0)
                    .with_field("commitOffset", 0)
                    .with_field("suspendTimeoutMillis", 0)
                    .with_field("subVersion", 0);
                let resp = call(&conn, pull).await?;
                if resp.code != 0 {
                    break;
                }
                for m in MessageExt::decode_all(&resp.body)? {
                    send_to_retry(&conn, &retry, &m).await?;
                    resent += 1;
                }
                offset = resp
                    .field("nextBeginOffset")
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(offset);
                let commit = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
                    .with_field("consumerGroup", tool_group)
                    .with_field("topic", &dlq)
                    .with_field("queueId", 0)
                    .with_field("commitOffset", offset);
                ok(call(&conn, commit).await?, "committing the DLQ offset")?;
            }
        }
        let mut t = Table::new(["Group", "Resent"]);
        t.row([group.to_string(), resent.to_string()]);
        self.print(t, serde_json::json!({"group": group, "resent": resent}));
        Ok(())
    }
}

async fn send_to_retry(conn: &Connection, retry_topic: &str, m: &MessageExt) -> Result<()> {
    if m.properties.len() > MAX_PROPERTIES_BYTES {
        bail!("message {} has oversized properties", m.offset_msg_id());
    }
    let req = RemotingCommand::request(request::SEND_MESSAGE)
        .with_field("producerGroup", "ferromq-admin")
        .with_field("topic", retry_topic)
        .with_field("queueId", 0)
        .with_field("sysFlag", m.sys_flag & 0x1)
        .with_field("bornTimestamp", m.born_timestamp)
        .with_field("flag", m.flag)
        .with_field("properties", &m.properties)
        .with_field("reconsumeTimes", 0)
        .with_body(m.body.clone());
    ok(call(conn, req).await?, "re-sending a dead letter").map(|_| ())
}
