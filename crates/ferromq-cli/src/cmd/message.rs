//! Message commands: queryMsgById, queryMsgByUniqueKey, queryMsgByKey, queryMsgByOffset, sendMessage,
//! consumeMessage, recallMessage, and FerroMQ's resendDlq.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{ArgAction, Args};
use ferromq_client::{Message, MessageExt, MessageExtExt, MessageQueue, Producer, Selector};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use serde_json::{json, Value};

use super::value::{java_bool, now_ms, timestamp};
use crate::ctx::{route_readers, s, Ctx};
use crate::remote::{refused, QueuePoint};
use crate::table::Table;

const MESSAGE_HEADER: [&str; 7] = ["MsgId", "Topic", "Queue", "Offset", "Tags", "Keys", "Body"];

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

fn message_json(m: &MessageExt) -> Value {
    json!({
        "msgId": m.msg_id(), "offsetMsgId": m.offset_msg_id(), "topic": m.topic, "queueId": m.queue_id,
        "queueOffset": m.queue_offset, "tags": m.tag(), "keys": m.keys(), "body": String::from_utf8_lossy(&m.body),
        "storeTimestamp": m.store_timestamp, "storeHost": m.store_host.to_string(), "reconsumeTimes": m.reconsume_times,
        "properties": ferromq_protocol::message::properties_iter(&m.properties).collect::<BTreeMap<_, _>>(),
    })
}

fn print_messages(ctx: &Ctx, msgs: &[MessageExt]) {
    let mut t = Table::new(MESSAGE_HEADER);
    for m in msgs {
        t.row(message_row(m));
    }
    ctx.print(t, json!(msgs.iter().map(message_json).collect::<Vec<_>>()));
}

#[derive(Args)]
pub struct QueryMsgById {
    /// Message id(s), comma-separated: offset ids, or unique ids with -t.
    #[arg(short = 'i', long = "msgId")]
    ids: String,
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
    #[command(flatten)]
    push: PushTo,
    /// Send the messages again, to their topic (true|false).
    #[arg(short = 's', long = "sendMessage", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    send: bool,
    /// Accepted for Apache's runbooks (unit names are not used).
    #[arg(short = 'u', long = "unitName")]
    #[allow(dead_code)] // FerroMQ has no units
    unit_name: Option<String>,
    /// Accepted for Apache's runbooks; bodies print as UTF-8.
    #[arg(short = 'f', long = "bodyFormat")]
    #[allow(dead_code)] // bodies are always read as UTF-8
    body_format: Option<String>,
    /// Accepted for Apache's runbooks (routes are the topic's own).
    #[arg(short = 'c', long = "cluster")]
    #[allow(dead_code)] // only Apache's light message queues route by cluster
    cluster: Option<String>,
}

/// `-g group -d clientId`: instead of printing the messages, have that consumer consume
/// each of them now (CONSUME_MESSAGE_DIRECTLY, 309), as Apache's mqadmin does.
#[derive(Args)]
struct PushTo {
    /// With -d: the consumer group whose client consumes the messages.
    #[arg(short = 'g', long = "consumerGroup", requires = "client_id")]
    group: Option<String>,
    /// With -g: the consumer's client id (consumerConnection lists them).
    #[arg(short = 'd', long = "clientId", requires = "group")]
    client_id: Option<String>,
}

impl PushTo {
    fn target(&self) -> Option<(&str, &str)> {
        Some((self.group.as_deref()?, self.client_id.as_deref()?))
    }
}

/// Has `client_id` of `group` consume `m` through the broker that stores it, and prints
/// the client's ConsumeMessageDirectlyResult (one row per message).
async fn consume_directly(
    ctx: &Ctx,
    msgs: &[MessageExt],
    group: &str,
    client_id: &str,
) -> Result<()> {
    let mut t = Table::new([
        "MsgId",
        "Group",
        "ClientId",
        "ConsumeResult",
        "Order",
        "AutoCommit",
        "SpentMs",
        "Remark",
    ]);
    let mut rows = Vec::new();
    for m in msgs {
        let broker = m.store_host.to_string();
        let req = RemotingCommand::request(request::CONSUME_MESSAGE_DIRECTLY)
            .with_field("consumerGroup", group)
            .with_field("clientId", client_id)
            .with_field("msgId", m.offset_msg_id())
            .with_field("topic", &m.topic);
        let resp = ctx
            .remote
            .ok(&broker, req, "consumeMessageDirectly")
            .await?;
        let result: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            anyhow!(
                "the consumer's answer through {broker} is not a ConsumeMessageDirectlyResult: {e}"
            )
        })?;
        t.row([
            m.msg_id(),
            group.to_string(),
            client_id.to_string(),
            s(&result["consumeResult"]),
            s(&result["order"]),
            s(&result["autoCommit"]),
            s(&result["spentTimeMills"]),
            s(&result["remark"]),
        ]);
        rows.push(json!({ "msgId": m.msg_id(), "consumerGroup": group, "clientId": client_id, "result": result }));
    }
    ctx.print(t, json!(rows));
    Ok(())
}

impl QueryMsgById {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        if self.send && self.push.target().is_some() {
            bail!("queryMsgById: -s resends and -g/-d has a consumer consume; give one of them");
        }
        let mut found = Vec::new();
        for id in self.ids.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let m = ctx
                .client
                .query_by_id(self.topic.as_deref(), id)
                .await?
                .ok_or_else(|| anyhow!("no message with id {id}"))?;
            if self.send {
                ctx.client.resend(&m, &m.topic).await?;
            }
            found.push(m);
        }
        if let Some((group, client_id)) = self.push.target() {
            return consume_directly(ctx, &found, group, client_id).await;
        }
        let mut t = Table::new(MESSAGE_HEADER);
        for m in &found {
            t.row(message_row(m));
        }
        let mut rows: Vec<Value> = found.iter().map(message_json).collect();
        if self.send {
            for r in &mut rows {
                r["resent"] = json!(true);
            }
        }
        // One id gives one object, as before several ids were accepted.
        let json = match <[Value; 1]>::try_from(rows) {
            Ok([one]) => one,
            Err(rows) => json!(rows),
        };
        ctx.print(t, json);
        Ok(())
    }
}

#[derive(Args)]
pub struct QueryMsgByUniqueKey {
    /// The message's unique id (the client's msgId, UNIQ_KEY).
    #[arg(short = 'i', long = "msgId")]
    id: String,
    #[arg(short = 't', long = "topic")]
    topic: String,
    #[command(flatten)]
    push: PushTo,
    /// Every stored message with this id (a message sent again keeps its id), not just one.
    #[arg(short = 'a', long = "showAll")]
    all: bool,
    /// Accepted for Apache's runbooks (routes are the topic's own).
    #[arg(short = 'c', long = "cluster")]
    #[allow(dead_code)] // only Apache's light message queues route by cluster
    cluster: Option<String>,
}

/// How many copies of one unique id `-a` looks for (retries and resends keep the id).
const COPIES_OF_ONE_ID: i32 = 64;

impl QueryMsgByUniqueKey {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut found: Vec<MessageExt> = ctx
            .client
            .query_by_key(&self.topic, &self.id, COPIES_OF_ONE_ID)
            .await?
            .into_iter()
            .filter(|m| m.msg_id() == self.id)
            .collect();
        if found.is_empty() {
            bail!(
                "no message with unique id {} in topic {}",
                self.id,
                self.topic
            );
        }
        if !self.all {
            found.truncate(1);
        }
        match self.push.target() {
            Some((group, client_id)) => consume_directly(ctx, &found, group, client_id).await,
            None => {
                print_messages(ctx, &found);
                Ok(())
            }
        }
    }
}

#[derive(Args)]
pub struct QueryMsgByKey {
    #[arg(short = 't', long = "topic")]
    topic: String,
    #[arg(short = 'k', long = "msgKey")]
    key: String,
    /// Stored at or after (ms).
    #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
    begin: i64,
    /// Stored at or before (ms).
    #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
    end: i64,
    /// At most this many per broker.
    #[arg(short = 'm', long = "maxNum", default_value_t = 64)]
    max: i32,
    /// Accepted for Apache's runbooks (routes are the topic's own).
    #[arg(short = 'c', long = "cluster")]
    #[allow(dead_code)] // only Apache's light message queues route by cluster
    cluster: Option<String>,
}

impl QueryMsgByKey {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let found = ctx
            .client
            .query_by_key_between(&self.topic, &self.key, self.max, self.begin, self.end)
            .await?;
        print_messages(ctx, &found);
        Ok(())
    }
}

#[derive(Args)]
pub struct QueryMsgByOffset {
    #[arg(short = 't', long = "topic")]
    topic: String,
    #[arg(short = 'b', long = "brokerName")]
    broker: String,
    #[arg(short = 'i', long = "queueId")]
    queue: i32,
    #[arg(short = 'o', long = "offset")]
    offset: i64,
    /// Accepted for Apache's runbooks; bodies print as UTF-8.
    #[arg(short = 'f', long = "bodyFormat")]
    #[allow(dead_code)] // bodies are always read as UTF-8
    body_format: Option<String>,
}

impl QueryMsgByOffset {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let (topic, queue, offset) = (&self.topic, self.queue, self.offset);
        let mq = MessageQueue {
            topic: topic.clone(),
            broker_name: self.broker,
            queue_id: queue,
        };
        let m = ctx
            .client
            .query_by_offset(&mq, offset)
            .await?
            .ok_or_else(|| anyhow!("no message at {topic} queue {queue} offset {offset}"))?;
        let mut t = Table::new(MESSAGE_HEADER);
        t.row(message_row(&m));
        ctx.print(t, message_json(&m));
        Ok(())
    }
}

#[derive(Args)]
pub struct SendMessage {
    #[arg(short = 't', long = "topic")]
    topic: String,
    #[arg(short = 'p', long = "body")]
    body: String,
    /// Keys, space-separated.
    #[arg(short = 'k', long = "key", visible_alias = "keys")]
    keys: Option<String>,
    #[arg(short = 'c', long = "tags")]
    tags: Option<String>,
    /// With -i: the broker name of the queue to send to.
    #[arg(short = 'b', long = "broker")]
    broker: Option<String>,
    /// The queue id to send to (needs -b).
    #[arg(short = 'i', long = "qid", requires = "broker")]
    queue: Option<i32>,
    /// Accepted for Apache's runbooks (the Rust client sends no trace data).
    #[arg(short = 'm', long = "msgTraceEnable", value_parser = java_bool)]
    #[allow(dead_code)] // the client has no message trace
    trace: Option<bool>,
}

impl SendMessage {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut builder = Producer::builder()
            .name_servers(ctx.namesrv.clone())
            .group("ferromq-admin");
        if let Some((ak, sk)) = &ctx.credentials {
            builder = builder.credentials(ak, sk);
        }
        let p = builder.build()?;
        let mut m = Message::new(self.topic.clone(), self.body);
        if let Some(t) = self.tags {
            m = m.with_tag(t);
        }
        if let Some(k) = self.keys {
            m = m.with_keys(k.split_whitespace().map(str::to_string).collect::<Vec<_>>());
        }
        // As Apache's tool, -b alone does not pick a queue.
        let r = match (self.broker, self.queue) {
            (Some(broker_name), Some(queue_id)) => {
                let mq = MessageQueue {
                    topic: self.topic,
                    broker_name,
                    queue_id,
                };
                p.send_to_queue(m, &mq).await
            }
            _ => p.send(m).await,
        };
        p.shutdown();
        let r = r?;
        let mut t = Table::new([
            "Broker",
            "Queue",
            "Status",
            "MsgId",
            "OffsetMsgId",
            "QueueOffset",
        ]);
        t.row([
            r.queue.broker_name.clone(),
            r.queue.queue_id.to_string(),
            format!("{:?}", r.status),
            r.msg_id.clone(),
            r.offset_msg_id.clone(),
            r.queue_offset.to_string(),
        ]);
        ctx.print(
            t,
            json!({
                "msgId": r.msg_id, "offsetMsgId": r.offset_msg_id, "brokerName": r.queue.broker_name,
                "queueId": r.queue.queue_id, "queueOffset": r.queue_offset, "status": format!("{:?}", r.status),
            }),
        );
        Ok(())
    }
}

/// Reads as Apache's tool does: from each queue's oldest message (or -s/-o) up to -e or
/// its end, committing nothing, so running it again prints the same messages.
#[derive(Args)]
pub struct ConsumeMessage {
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Only this broker's queues.
    #[arg(short = 'b', long = "brokerName")]
    broker: Option<String>,
    /// Only this queue (needs -b).
    #[arg(short = 'i', long = "queueId", requires = "broker")]
    queue: Option<i32>,
    /// Start at this offset (needs -i).
    #[arg(short = 'o', long = "offset", requires = "queue")]
    offset: Option<i64>,
    /// The group named in pull requests; no offset is committed for it.
    #[arg(short = 'g', long = "consumerGroup", default_value = "TOOLS_CONSUMER")]
    group: String,
    /// Messages stored from: milliseconds or local time `yyyy-MM-dd#HH:mm:ss:SSS`.
    #[arg(short = 's', long = "beginTimestamp")]
    begin: Option<String>,
    /// Messages stored until: milliseconds or local time `yyyy-MM-dd#HH:mm:ss:SSS`.
    #[arg(short = 'e', long = "endTimestamp")]
    end: Option<String>,
    /// Messages to print at most.
    #[arg(
        short = 'c',
        long = "MessageNumber",
        visible_alias = "count",
        default_value_t = 128
    )]
    count: usize,
    /// Seconds to read for at most.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

impl ConsumeMessage {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let now = now_ms();
        let begin = self.begin.as_deref().map(timestamp).transpose()?;
        let end = self.end.as_deref().map(timestamp).transpose()?;
        if begin.is_some_and(|b| b > now) || end.is_some_and(|e| e > now) {
            bail!("-s and -e must not be in the future");
        }
        if let (Some(b), Some(e)) = (begin, end) {
            if b > e {
                bail!("-s must not be after -e");
            }
        }
        let route = ctx.route(&self.topic).await?;
        let mut queues = Vec::new();
        for (name, addr) in route_readers(&route) {
            if self.broker.as_ref().is_some_and(|b| b != &name) {
                continue;
            }
            let count = route
                .queue_datas
                .iter()
                .find(|q| q.broker_name == name)
                .map_or(0, |q| q.read_queue_nums);
            for queue in (0..count).filter(|q| self.queue.is_none_or(|want| want == *q)) {
                queues.push((name.clone(), addr.clone(), queue));
            }
        }
        if queues.is_empty() {
            bail!("topic {} has no such queue", self.topic);
        }
        let from = begin.map_or(QueuePoint::Min, QueuePoint::Time);
        let to = end.map_or(QueuePoint::Max, QueuePoint::Time);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.seconds);
        let mut got = Vec::new();
        for (name, addr, queue) in queues {
            let first = ctx
                .remote
                .queue_offset(&addr, &self.topic, queue, from)
                .await?;
            let stop = ctx
                .remote
                .queue_offset(&addr, &self.topic, queue, to)
                .await?;
            let mut offset = first.max(self.offset.unwrap_or(0));
            while offset < stop && got.len() < self.count && tokio::time::Instant::now() < deadline
            {
                let want = (self.count - got.len()).min(32) as i32;
                let msgs = self.pull(ctx, &addr, &name, queue, offset, want).await?;
                let Some(last) = msgs.last() else { break };
                offset = last.queue_offset + 1;
                got.extend(
                    msgs.into_iter()
                        .filter(|m| end.is_none_or(|e| m.store_timestamp <= e)),
                );
            }
        }
        got.truncate(self.count);
        print_messages(ctx, &got);
        Ok(())
    }

    /// Up to `max` messages from `offset`; none when the queue has no more.
    async fn pull(
        &self,
        ctx: &Ctx,
        addr: &str,
        broker: &str,
        queue: i32,
        offset: i64,
        max: i32,
    ) -> Result<Vec<MessageExt>> {
        // The subscription flag and expression keep an Apache broker from looking up a
        // subscription the tool's group never made.
        let req = RemotingCommand::request(request::PULL_MESSAGE)
            .with_field("consumerGroup", &self.group)
            .with_field("topic", &self.topic)
            .with_field("queueId", queue)
            .with_field("queueOffset", offset)
            .with_field("maxMsgNums", max)
            .with_field("sysFlag", 0x4)
            .with_field("commitOffset", 0)
            .with_field("suspendTimeoutMillis", 0)
            .with_field("subscription", "*")
            .with_field("subVersion", 0)
            .with_field("expressionType", "TAG");
        let resp = ctx.remote.call(addr, req).await?;
        match resp.code {
            response::SUCCESS => Ok(MessageExt::decode_all(&resp.body)?),
            response::PULL_NOT_FOUND
            | response::PULL_RETRY_IMMEDIATELY
            | response::PULL_OFFSET_MOVED => Ok(Vec::new()),
            _ => bail!(
                "{}",
                refused("PULL_MESSAGE", &format!("{addr} ({broker})"), &resp)
            ),
        }
    }
}

#[derive(Args)]
pub struct ResendDlq {
    #[arg(short = 'g', long = "group")]
    group: String,
    #[arg(long, default_value_t = 1000)]
    max: usize,
}

impl ResendDlq {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let (group, max) = (&self.group, self.max);
        let dlq = format!("%DLQ%{group}");
        let retry = format!("%RETRY%{group}");
        let route = ctx
            .client
            .topic_route(&dlq)
            .await?
            .ok_or_else(|| anyhow!("group {group} has no dead-letter queue"))?;
        // Its own group's committed offsets are what makes each dead letter go back once.
        let tool = ferromq_client::PullConsumer::new(ctx.namesrv.clone(), "ferromq-admin-dlq")?;
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
                    ctx.client.resend(m, &retry).await?;
                    resent += 1;
                }
                offset = r.next_offset;
                tool.commit_offset(&mq, offset).await?;
            }
        }
        tool.shutdown();
        let mut t = Table::new(["Group", "Resent"]);
        t.row([group.clone(), resent.to_string()]);
        ctx.print(t, json!({"group": group, "resent": resent}));
        Ok(())
    }
}

#[derive(Args)]
pub struct RecallMessage {
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// The recall handle the message's send returned.
    #[arg(short = 'i', long = "recallHandle")]
    handle: String,
}

impl RecallMessage {
    pub(super) async fn run(&self, ctx: &Ctx) -> Result<()> {
        use ferromq_protocol::recall::RecallHandle;
        let handle = RecallHandle::parse(&self.handle).map_err(|e| anyhow!("{e}"))?;
        if handle.topic != self.topic {
            bail!(
                "the recall handle is for topic {}, not {}",
                handle.topic,
                self.topic
            );
        }
        // The handle names the broker that holds the message; its master withdraws it.
        let route = ctx.route(&self.topic).await?;
        let Some((_, addr)) = crate::ctx::route_masters(&route)
            .into_iter()
            .find(|(name, _)| *name == handle.broker_name)
        else {
            bail!(
                "broker {} (named by the handle) has no master serving topic {}",
                handle.broker_name,
                self.topic
            );
        };
        let req = RemotingCommand::request(request::RECALL_MESSAGE)
            .with_field("producerGroup", "TOOLS_CONSUMER")
            .with_field("topic", &self.topic)
            .with_field("recallHandle", self.handle.trim());
        let resp = ctx.remote.ok(&addr, req, "RECALL_MESSAGE").await?;
        let id = resp.field("msgId").unwrap_or_default().to_string();
        let mut t = Table::new(["Topic", "Broker", "MsgId", "WasDue"]);
        t.row([
            self.topic.clone(),
            handle.broker_name.clone(),
            id.clone(),
            super::value::local_time(handle.due_ms, true),
        ]);
        ctx.print(
            t,
            json!({"topic": self.topic, "brokerName": handle.broker_name, "msgId": id, "dueMs": handle.due_ms}),
        );
        Ok(())
    }
}
