//! `ferromq admin …`: the mqadmin commands people use, with the same names. It is a plain
//! client built on [`ferromq_client::admin::AdminClient`]: brokers are found through the
//! name server, so it works against FerroMQ and Apache RocketMQ alike (FerroMQ-only
//! commands say so). Tables by default, `--json` for scripts; errors are one line and a
//! non-zero exit.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use ferromq_client::admin::AdminClient;
use ferromq_client::{
    ConsumeFrom, ConsumeResult, Message, MessageExt, MessageExtExt, MessageQueue, Producer,
    PushConsumer, Selector,
};
use serde_json::{json, Value};

mod table;

use table::Table;

#[derive(Args)]
pub struct AdminArgs {
    /// Name server address(es), `host:port;host:port`.
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
    /// Access key for brokers with ACL on (aclEnable=true); admin commands need an admin account.
    #[arg(long = "accessKey", global = true, requires = "secret_key")]
    access_key: Option<String>,
    /// Secret key of --accessKey.
    #[arg(long = "secretKey", global = true, requires = "access_key")]
    secret_key: Option<String>,
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
    /// Creates or updates a topic on every master.
    #[command(name = "updateTopic")]
    UpdateTopic {
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Read and write queues.
        #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
        queues: i32,
        #[arg(short = 'p', long = "perm", default_value_t = 6)]
        perm: i32,
    },
    /// Deletes a topic from brokers and name servers.
    #[command(name = "deleteTopic")]
    DeleteTopic {
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Every topic the name servers know.
    #[command(name = "topicList")]
    TopicList,
    /// A topic's route.
    #[command(name = "topicRoute")]
    TopicRoute {
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// A topic's per-queue offsets.
    #[command(name = "topicStatus")]
    TopicStatus {
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// A consumer group's per-queue progress and lag.
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        #[arg(short = 'g', long = "groupName")]
        group: String,
    },
    /// A consumer group's connected clients.
    #[command(name = "consumerConnection")]
    ConsumerConnection {
        #[arg(short = 'g', long = "consumerGroup")]
        group: String,
    },
    /// A producer group's connected clients.
    #[command(name = "producerConnection")]
    ProducerConnection {
        #[arg(short = 'g', long = "producerGroup")]
        group: String,
    },
    /// A message by offset id (or unique id with --topic).
    #[command(name = "queryMsgById")]
    QueryMsgById {
        #[arg(short = 'i', long = "msgId")]
        id: String,
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
    },
    /// Messages of a topic carrying a key.
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'k', long = "msgKey")]
        key: String,
    },
    /// A message by queue and offset.
    #[command(name = "queryMsgByOffset")]
    QueryMsgByOffset {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'b', long = "brokerName")]
        broker: String,
        #[arg(short = 'i', long = "queueId")]
        queue: i32,
        #[arg(short = 'o', long = "offset")]
        offset: i64,
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
    /// Creates or updates a consumer group's configuration.
    #[command(name = "updateSubGroup")]
    UpdateSubGroup {
        #[arg(short = 'g', long = "groupName")]
        group: String,
        #[arg(short = 'r', long = "retryMaxTimes", default_value_t = 16)]
        retry_max_times: i32,
    },
    /// Deletes a consumer group's configuration and offsets.
    #[command(name = "deleteSubGroup")]
    DeleteSubGroup {
        #[arg(short = 'g', long = "groupName")]
        group: String,
    },
    /// Sends one message.
    #[command(name = "sendMessage")]
    SendMessage {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'p', long = "body")]
        body: String,
        #[arg(short = 'c', long = "tags")]
        tags: Option<String>,
        #[arg(short = 'k', long = "keys")]
        keys: Option<String>,
    },
    /// Consumes messages of a topic from the beginning and prints them.
    #[command(name = "consumeMessage")]
    ConsumeMessage {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(
            short = 'g',
            long = "consumerGroup",
            default_value = "ferromq-admin-consume"
        )]
        group: String,
        /// Messages to print at most.
        #[arg(short = 'c', long = "count", default_value_t = 10)]
        count: usize,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A broker's configuration.
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig(BrokerArg),
    /// Changes a broker's configuration key (brokers that support it at run time).
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig {
        #[command(flatten)]
        broker: BrokerArg,
        #[arg(short = 'k', long = "key")]
        key: String,
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// Delayed and timer messages waiting, per level and due-time window (FerroMQ).
    #[command(name = "delayStatus")]
    DelayStatus(BrokerArg),
    /// Undecided transactions with their age and check count (FerroMQ).
    #[command(name = "transactionStatus")]
    TransactionStatus {
        #[command(flatten)]
        broker: BrokerArg,
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Sends a group's dead letters back to its retry topic, once each.
    #[command(name = "resendDlq")]
    ResendDlq {
        #[arg(short = 'g', long = "group")]
        group: String,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

#[derive(Args)]
pub struct BrokerArg {
    /// Broker address; default: every master known to the name server.
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> Result<()> {
    let namesrv: Vec<String> = args
        .namesrv
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut client = AdminClient::new(namesrv.clone())?;
    if let (Some(ak), Some(sk)) = (args.access_key, args.secret_key) {
        client = client.with_credentials(ferromq_client::Credentials::new(ak, sk));
    }
    let admin = Admin {
        client,
        namesrv,
        json: args.json,
    };
    let result = admin.run(args.command).await;
    admin.client.shutdown();
    result
}

struct Admin {
    client: AdminClient,
    namesrv: Vec<String>,
    json: bool,
}

fn message_row(m: &MessageExt) -> [String; 7] {
    [
        m.msg_id(),
        m.topic.clone(),
        m.queue_id.to_string(),
        m.queue_offset.to_string(),
        m.tag().unwrap_or_default().to_string(),
        m.keys().join(" "),
        String::from_utf8_lossy(&m.body).chars().take(60).collect(),
    ]
}

const MESSAGE_HEADER: [&str; 7] = ["MsgId", "Topic", "Queue", "Offset", "Tags", "Keys", "Body"];

fn message_json(m: &MessageExt) -> Value {
    json!({
        "msgId": m.msg_id(), "offsetMsgId": m.offset_msg_id(), "topic": m.topic, "queueId": m.queue_id,
        "queueOffset": m.queue_offset, "tags": m.tag(), "keys": m.keys(), "body": String::from_utf8_lossy(&m.body),
        "storeTimestamp": m.store_timestamp, "storeHost": m.store_host.to_string(), "reconsumeTimes": m.reconsume_times,
        "properties": ferromq_protocol::message::properties_iter(&m.properties).collect::<BTreeMap<_, _>>(),
    })
}

impl Admin {
    fn print(&self, table: Table, json: Value) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("JSON prints")
            );
        } else {
            print!("{table}");
        }
    }

    /// The given broker, or every master: (name, address).
    async fn brokers(&self, broker: Option<String>) -> Result<Vec<(String, String)>> {
        if let Some(b) = broker {
            return Ok(vec![(b.clone(), b)]);
        }
        let masters = self
            .client
            .masters()
            .await
            .with_context(|| format!("cannot reach {}", self.namesrv.join(";")))?;
        if masters.is_empty() {
            bail!(
                "the name server at {} knows no broker",
                self.namesrv.join(";")
            );
        }
        Ok(masters.into_iter().collect())
    }

    async fn run(&self, command: AdminCommand) -> Result<()> {
        match command {
            AdminCommand::ClusterList => {
                let brokers = self
                    .client
                    .brokers()
                    .await
                    .with_context(|| format!("cannot reach {}", self.namesrv.join(";")))?;
                let mut t = Table::new(["Cluster", "Broker", "BID", "Address"]);
                for b in &brokers {
                    t.row([
                        b.cluster.clone(),
                        b.broker_name.clone(),
                        b.broker_id.to_string(),
                        b.addr.clone(),
                    ]);
                }
                self.print(t, json!(brokers));
            }
            AdminCommand::BrokerStatus(b) => {
                let mut t = Table::new(["Broker", "Key", "Value"]);
                let mut all = serde_json::Map::new();
                for (name, addr) in self.brokers(b.broker).await? {
                    let info = self.client.broker_runtime_info(&addr).await?;
                    for (k, v) in &info {
                        t.row([name.clone(), k.clone(), v.clone()]);
                    }
                    all.insert(name, json!(info));
                }
                self.print(t, Value::Object(all));
            }
            AdminCommand::UpdateTopic {
                topic,
                queues,
                perm,
            } => {
                self.client.create_topic(&topic, queues, perm, None).await?;
                let mut t = Table::new(["Topic", "Queues", "Perm"]);
                t.row([topic.clone(), queues.to_string(), perm.to_string()]);
                self.print(t, json!({"topic": topic, "queues": queues, "perm": perm}));
            }
            AdminCommand::DeleteTopic { topic } => {
                if self.client.topic_route(&topic).await?.is_none() {
                    bail!("unknown topic {topic}");
                }
                self.client.delete_topic(&topic).await?;
                let mut t = Table::new(["Deleted"]);
                t.row([topic.clone()]);
                self.print(t, json!({"deleted": topic}));
            }
            AdminCommand::TopicList => {
                let topics = self
                    .client
                    .topic_list()
                    .await
                    .with_context(|| format!("cannot reach {}", self.namesrv.join(";")))?;
                let mut t = Table::new(["Topic"]);
                for topic in &topics {
                    t.row([topic.clone()]);
                }
                self.print(t, json!(topics));
            }
            AdminCommand::TopicRoute { topic } => {
                let route = self
                    .client
                    .topic_route(&topic)
                    .await?
                    .ok_or_else(|| anyhow!("unknown topic {topic}"))?;
                let mut t = Table::new(["Broker", "Read", "Write", "Perm", "Addresses"]);
                for q in &route.queue_datas {
                    let addrs = route
                        .broker_datas
                        .iter()
                        .find(|b| b.broker_name == q.broker_name)
                        .map(|b| json!(b.broker_addrs).to_string())
                        .unwrap_or_default();
                    t.row([
                        q.broker_name.clone(),
                        q.read_queue_nums.to_string(),
                        q.write_queue_nums.to_string(),
                        q.perm.to_string(),
                        addrs,
                    ]);
                }
                self.print(t, json!(route));
            }
            AdminCommand::TopicStatus { topic } => {
                let status = self
                    .client
                    .topic_status(&topic)
                    .await
                    .map_err(unknown_topic(&topic))?;
                let mut t = Table::new(["Broker", "Queue", "MinOffset", "MaxOffset", "LastUpdate"]);
                for q in &status {
                    t.row([
                        q.broker_name.clone(),
                        q.queue_id.to_string(),
                        q.min_offset.to_string(),
                        q.max_offset.to_string(),
                        q.last_update_timestamp.to_string(),
                    ]);
                }
                self.print(t, json!(status));
            }
            AdminCommand::ConsumerProgress { group } => {
                let progress = self.client.consumer_progress(&group, None).await?;
                let mut t = Table::new([
                    "Topic",
                    "Broker",
                    "Queue",
                    "BrokerOffset",
                    "ConsumerOffset",
                    "Diff",
                ]);
                for p in &progress {
                    t.row([
                        p.topic.clone(),
                        p.broker_name.clone(),
                        p.queue_id.to_string(),
                        p.broker_offset.to_string(),
                        p.consumer_offset.to_string(),
                        p.lag.to_string(),
                    ]);
                }
                let total: i64 = progress.iter().map(|p| p.lag).sum();
                t.row([
                    "Total diff".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    total.to_string(),
                ]);
                self.print(
                    t,
                    json!({"group": group, "queues": progress, "totalDiff": total}),
                );
            }
            AdminCommand::ConsumerConnection { group } => {
                let c = self
                    .client
                    .consumer_connections(&group)
                    .await
                    .map_err(|e| anyhow!("consumer group {group} is not online: {e}"))?;
                let mut t = Table::new(["ClientId", "Address", "Language", "Version"]);
                for conn in c["connectionSet"].as_array().into_iter().flatten() {
                    t.row([
                        s(&conn["clientId"]),
                        s(&conn["clientAddr"]),
                        s(&conn["language"]),
                        s(&conn["version"]),
                    ]);
                }
                self.print(t, c);
            }
            AdminCommand::ProducerConnection { group } => {
                let conns = self.client.producer_connections(&group).await?;
                let mut t = Table::new(["ClientId", "Address", "Language", "Version"]);
                for conn in &conns {
                    t.row([
                        s(&conn["clientId"]),
                        s(&conn["clientAddr"]),
                        s(&conn["language"]),
                        s(&conn["version"]),
                    ]);
                }
                self.print(t, json!(conns));
            }
            AdminCommand::QueryMsgById { id, topic } => {
                let m = self
                    .client
                    .query_by_id(topic.as_deref(), &id)
                    .await?
                    .ok_or_else(|| anyhow!("no message with id {id}"))?;
                let mut t = Table::new(MESSAGE_HEADER);
                t.row(message_row(&m));
                self.print(t, message_json(&m));
            }
            AdminCommand::QueryMsgByKey { topic, key } => {
                let found = self.client.query_by_key(&topic, &key, 32).await?;
                let mut t = Table::new(MESSAGE_HEADER);
                for m in &found {
                    t.row(message_row(m));
                }
                self.print(t, json!(found.iter().map(message_json).collect::<Vec<_>>()));
            }
            AdminCommand::QueryMsgByOffset {
                topic,
                broker,
                queue,
                offset,
            } => {
                let mq = MessageQueue {
                    topic: topic.clone(),
                    broker_name: broker,
                    queue_id: queue,
                };
                let m = self
                    .client
                    .query_by_offset(&mq, offset)
                    .await?
                    .ok_or_else(|| {
                        anyhow!("no message at {topic} queue {queue} offset {offset}")
                    })?;
                let mut t = Table::new(MESSAGE_HEADER);
                t.row(message_row(&m));
                self.print(t, message_json(&m));
            }
            AdminCommand::ResetOffsetByTime {
                group,
                topic,
                timestamp,
            } => {
                let ts: i64 = if timestamp == "now" {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_millis() as i64
                } else {
                    timestamp.parse().with_context(|| {
                        format!("timestamp '{timestamp}' is neither milliseconds nor 'now'")
                    })?
                };
                self.client
                    .reset_offset_by_time(&group, &topic, ts)
                    .await
                    .map_err(unknown_topic(&topic))?;
                let mut t = Table::new(["Group", "Topic", "Timestamp"]);
                t.row([group.clone(), topic.clone(), ts.to_string()]);
                self.print(t, json!({"group": group, "topic": topic, "timestamp": ts}));
            }
            AdminCommand::UpdateSubGroup {
                group,
                retry_max_times,
            } => {
                self.client.update_group(&group, retry_max_times).await?;
                let mut t = Table::new(["Group", "RetryMaxTimes"]);
                t.row([group.clone(), retry_max_times.to_string()]);
                self.print(t, json!({"group": group, "retryMaxTimes": retry_max_times}));
            }
            AdminCommand::DeleteSubGroup { group } => {
                self.client.delete_group(&group).await?;
                let mut t = Table::new(["Deleted"]);
                t.row([group.clone()]);
                self.print(t, json!({"deleted": group}));
            }
            AdminCommand::SendMessage {
                topic,
                body,
                tags,
                keys,
            } => {
                let p = Producer::builder()
                    .name_servers(self.namesrv.clone())
                    .group("ferromq-admin")
                    .build()?;
                let mut m = Message::new(topic, body);
                if let Some(t) = tags {
                    m = m.with_tag(t);
                }
                if let Some(k) = keys {
                    m = m.with_keys(k.split_whitespace().map(str::to_string).collect::<Vec<_>>());
                }
                let r = p.send(m).await;
                p.shutdown();
                let r = r?;
                let mut t = Table::new(["MsgId", "OffsetMsgId", "Queue", "QueueOffset", "Status"]);
                t.row([
                    r.msg_id.clone(),
                    r.offset_msg_id.clone(),
                    r.queue.queue_id.to_string(),
                    r.queue_offset.to_string(),
                    format!("{:?}", r.status),
                ]);
                self.print(t, json!({"msgId": r.msg_id, "offsetMsgId": r.offset_msg_id, "queueId": r.queue.queue_id, "queueOffset": r.queue_offset}));
            }
            AdminCommand::ConsumeMessage {
                topic,
                group,
                count,
                seconds,
            } => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let consumer = PushConsumer::builder()
                    .name_servers(self.namesrv.clone())
                    .group(group)
                    .consume_from(ConsumeFrom::FirstOffset)
                    .subscribe(&topic, Selector::All)
                    .start(move |msgs| {
                        let tx = tx.clone();
                        async move {
                            for m in msgs {
                                let _ = tx.send(m);
                            }
                            ConsumeResult::Success
                        }
                    })
                    .await
                    .map_err(unknown_topic(&topic))?;
                let mut got = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
                while got.len() < count {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(m)) => got.push(m),
                        _ => break,
                    }
                }
                consumer.shutdown().await;
                let mut t = Table::new(MESSAGE_HEADER);
                for m in &got {
                    t.row(message_row(m));
                }
                self.print(t, json!(got.iter().map(message_json).collect::<Vec<_>>()));
            }
            AdminCommand::GetBrokerConfig(b) => {
                let mut t = Table::new(["Broker", "Key", "Value"]);
                let mut all = serde_json::Map::new();
                for (name, addr) in self.brokers(b.broker).await? {
                    let text = self.client.broker_config(&addr).await?;
                    let mut map = BTreeMap::new();
                    for line in text
                        .lines()
                        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    {
                        if let Some((k, v)) = line.split_once('=') {
                            t.row([name.clone(), k.to_string(), v.to_string()]);
                            map.insert(k.to_string(), v.to_string());
                        }
                    }
                    all.insert(name, json!(map));
                }
                self.print(t, Value::Object(all));
            }
            AdminCommand::UpdateBrokerConfig { broker, key, value } => {
                for (_, addr) in self.brokers(broker.broker).await? {
                    self.client
                        .update_broker_config(&addr, &key, &value)
                        .await?;
                }
                let mut t = Table::new(["Key", "Value"]);
                t.row([key.clone(), value.clone()]);
                self.print(t, json!({key: value}));
            }
            AdminCommand::DelayStatus(b) => self.delay_status(b.broker).await?,
            AdminCommand::TransactionStatus { broker, max } => {
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
                for (name, addr) in self.brokers(broker.broker).await? {
                    for tx in self.client.undecided_transactions(&addr, max).await? {
                        let age = tx["ageMs"].as_i64().unwrap_or(0) / 1000;
                        t.row([
                            name.clone(),
                            s(&tx["queueOffset"]),
                            s(&tx["producerGroup"]),
                            s(&tx["topic"]),
                            s(&tx["transactionId"]),
                            age.to_string(),
                            s(&tx["checkTimes"]),
                        ]);
                        rows.push(tx);
                    }
                }
                self.print(t, json!(rows));
            }
            AdminCommand::ResendDlq { group, max } => {
                let dlq = format!("%DLQ%{group}");
                let retry = format!("%RETRY%{group}");
                let route = self
                    .client
                    .topic_route(&dlq)
                    .await?
                    .ok_or_else(|| anyhow!("group {group} has no dead-letter queue"))?;
                let tool =
                    ferromq_client::PullConsumer::new(self.namesrv.clone(), "ferromq-admin-dlq")?;
                let mut resent = 0usize;
                for b in &route.broker_datas {
                    let mq = MessageQueue {
                        topic: dlq.clone(),
                        broker_name: b.broker_name.clone(),
                        queue_id: 0,
                    };
                    let mut offset = tool.committed_offset(&mq).await?.unwrap_or(0);
                    while resent < max {
                        let r = tool
                            .pull(
                                &mq,
                                &Selector::All,
                                offset,
                                32.min((max - resent) as i32),
                                Duration::ZERO,
                            )
                            .await?;
                        if r.messages.is_empty() {
                            break;
                        }
                        for m in &r.messages {
                            self.client.resend(m, &retry).await?;
                            resent += 1;
                        }
                        offset = r.next_offset;
                        tool.commit_offset(&mq, offset).await?;
                    }
                }
                tool.shutdown();
                let mut t = Table::new(["Group", "Resent"]);
                t.row([group.clone(), resent.to_string()]);
                self.print(t, json!({"group": group, "resent": resent}));
            }
        }
        Ok(())
    }

    async fn delay_status(&self, broker: Option<String>) -> Result<()> {
        let mut t = Table::new(["Broker", "Kind", "Pending"]);
        let mut rows = Vec::new();
        for (name, addr) in self.brokers(broker).await? {
            let info = self.client.broker_runtime_info(&addr).await?;
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
                rows.push(
                    json!({"broker": name, "kind": format!("level{level}"), "pending": pending}),
                );
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
                    t.row([name.clone(), label, v.clone()]);
                    rows.push(json!({"broker": name, "kind": key, "pending": v}));
                }
            }
        }
        self.print(t, json!(rows));
        Ok(())
    }
}

/// A JSON value as display text.
fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    })
}

/// Turns "no route" into the one-line "unknown topic" error; other errors pass through.
fn unknown_topic(topic: &str) -> impl FnOnce(ferromq_client::ClientError) -> anyhow::Error + '_ {
    move |e| match e {
        ferromq_client::ClientError::NoRoute { .. } => anyhow!("unknown topic {topic}"),
        e => e.into(),
    }
}
