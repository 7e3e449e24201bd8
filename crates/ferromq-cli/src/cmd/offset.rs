//! Offset commands: resetOffsetByTime and skipAccumulatedMessage, which is a reset to the
//! queues' ends.

use anyhow::{bail, Result};
use clap::{ArgAction, Args};
use ferromq_client::admin::parse_queue_map;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{CloneGroupOffsetRequestHeader, CommandHeader};
use ferromq_protocol::RemotingCommand;
use serde_json::json;

use super::value::{java_bool, timestamp};
use crate::ctx::{route_masters, Ctx};
use crate::remote::{refused, QueuePoint};
use crate::table::Table;

/// Apache's timestamp for "the end of each queue".
const QUEUE_END: i64 = -1;

#[derive(Args)]
pub struct ResetOffsetByTime {
    #[arg(short = 'g', long = "group")]
    group: String,
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// `now`, milliseconds since the epoch, or local time `yyyy-MM-dd#HH:mm:ss:SSS`.
    #[arg(short = 's', long = "timestamp")]
    timestamp: String,
    /// false: only move offsets back, never forward (true|false).
    #[arg(short = 'f', long = "force", action = ArgAction::Set, value_parser = java_bool, default_value = "true")]
    force: bool,
    /// Only this cluster's brokers.
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
    /// With -q: reset one queue on this broker address.
    #[arg(short = 'b', long = "broker", requires = "queue")]
    broker: Option<String>,
    /// With -b: the queue id.
    #[arg(short = 'q', long = "queue", requires = "broker")]
    queue: Option<i32>,
    /// With -b and -q: this offset instead of the one found for -s.
    #[arg(short = 'o', long = "offset", requires = "queue")]
    offset: Option<i64>,
}

impl ResetOffsetByTime {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let ts = timestamp(&self.timestamp)?;
        let offsets = match (&self.broker, self.queue) {
            (Some(addr), Some(queue)) => {
                let offset = match self.offset {
                    Some(o) => o,
                    None => {
                        ctx.remote
                            .queue_offset(addr, &self.topic, queue, QueuePoint::Time(ts))
                            .await?
                    }
                };
                ctx.remote
                    .commit_offset(addr, &self.group, &self.topic, queue, offset)
                    .await?;
                vec![(addr.clone(), queue, offset)]
            }
            _ => {
                let target = Reset {
                    group: &self.group,
                    topic: &self.topic,
                    timestamp: ts,
                    force: self.force,
                    cluster: self.cluster.as_deref(),
                };
                target.run(ctx).await?
            }
        };
        print_offsets(ctx, &self.group, &self.topic, ts, &offsets);
        Ok(())
    }
}

#[derive(Args)]
pub struct SkipAccumulatedMessage {
    #[arg(short = 'g', long = "group")]
    group: String,
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// false: only move offsets back, never forward (true|false).
    #[arg(short = 'f', long = "force", action = ArgAction::Set, value_parser = java_bool, default_value = "true")]
    force: bool,
    /// Only this cluster's brokers.
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

impl SkipAccumulatedMessage {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let reset = Reset {
            group: &self.group,
            topic: &self.topic,
            timestamp: QUEUE_END,
            force: self.force,
            cluster: self.cluster.as_deref(),
        };
        let offsets = reset.run(ctx).await?;
        print_offsets(ctx, &self.group, &self.topic, QUEUE_END, &offsets);
        Ok(())
    }
}

fn print_offsets(ctx: &Ctx, group: &str, topic: &str, ts: i64, offsets: &[(String, i32, i64)]) {
    let mut t = Table::new(["Broker", "Queue", "Offset"]);
    for (broker, queue, offset) in offsets {
        t.row([broker.clone(), queue.to_string(), offset.to_string()]);
    }
    let rows: Vec<_> = offsets
        .iter()
        .map(|(b, q, o)| json!({"brokerName": b, "queueId": q, "offset": o}))
        .collect();
    ctx.print(
        t,
        json!({"group": group, "topic": topic, "timestamp": ts, "offsets": rows}),
    );
}

/// One group's offsets on one topic moved to a time (or [`QUEUE_END`]).
struct Reset<'a> {
    group: &'a str,
    topic: &'a str,
    timestamp: i64,
    force: bool,
    cluster: Option<&'a str>,
}

impl Reset<'_> {
    /// Asks each master hosting the topic to reset (and tell the group's consumers);
    /// returns (broker, queue, offset) rows.
    async fn run(&self, ctx: &Ctx) -> Result<Vec<(String, i32, i64)>> {
        let route = ctx.route(self.topic).await?;
        let names = ctx.cluster_broker_names(self.cluster).await?;
        let mut out = Vec::new();
        for (name, addr) in route_masters(&route) {
            if names.as_ref().is_some_and(|n| !n.contains(&name)) {
                continue;
            }
            let req = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_field("topic", self.topic)
                .with_field("group", self.group)
                .with_field("timestamp", self.timestamp)
                .with_field("isForce", self.force);
            let resp = ctx.remote.call(&addr, req).await?;
            match resp.code {
                response::SUCCESS => {
                    let body = String::from_utf8_lossy(&resp.body);
                    // An answer without a table (older brokers) still means done.
                    for (mq, offset) in parse_queue_map(&body, "offsetTable").unwrap_or_default() {
                        out.push((mq.broker_name, mq.queue_id, offset.as_i64().unwrap_or(-1)));
                    }
                }
                response::CONSUMER_NOT_ONLINE => {
                    let queues = route
                        .queue_datas
                        .iter()
                        .find(|q| q.broker_name == name)
                        .map_or(0, |q| q.read_queue_nums);
                    for queue in 0..queues {
                        let offset = self.commit_directly(ctx, &addr, queue).await?;
                        out.push((name.clone(), queue, offset));
                    }
                }
                response::TOPIC_NOT_EXIST => bail!("unknown topic {}", self.topic),
                _ => bail!("{}", refused("INVOKE_BROKER_TO_RESET_OFFSET", &addr, &resp)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// An Apache broker resets only for a group that is online; for one that is not, its
    /// tool commits each queue's offset itself, and so does this.
    async fn commit_directly(&self, ctx: &Ctx, addr: &str, queue: i32) -> Result<i64> {
        let point = match self.timestamp {
            QUEUE_END => QueuePoint::Max,
            ts => QueuePoint::Time(ts),
        };
        let target = ctx
            .remote
            .queue_offset(addr, self.topic, queue, point)
            .await?;
        let current = ctx
            .remote
            .committed_offset(addr, self.group, self.topic, queue)
            .await?;
        match current {
            Some(c) if !self.force && c < target => Ok(c),
            _ => {
                ctx.remote
                    .commit_offset(addr, self.group, self.topic, queue, target)
                    .await?;
                Ok(target)
            }
        }
    }
}

/// Apache's `cloneGroupOffset -s src -d dest -t topic [-o offline]`: the destination group
/// takes the source group's committed offsets on the topic, on every master of the topic
/// (CLONE_GROUP_OFFSET).
#[derive(Args)]
pub struct CloneGroupOffset {
    #[arg(short = 's', long = "srcGroup")]
    src: String,
    #[arg(short = 'd', long = "destGroup")]
    dest: String,
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Clone even when the source group is online and no longer subscribes the topic.
    #[arg(short = 'o', long = "offline", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    offline: bool,
}

impl CloneGroupOffset {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let route = ctx.route(&self.topic).await?;
        let mut t = Table::new(["Broker", "Topic", "From", "To"]);
        for (name, addr) in route_masters(&route) {
            let mut req = RemotingCommand::request(request::CLONE_GROUP_OFFSET);
            CloneGroupOffsetRequestHeader {
                src_group: self.src.clone(),
                dest_group: self.dest.clone(),
                topic: Some(self.topic.clone()),
                offline: Some(self.offline),
            }
            .encode(&mut req.ext_fields);
            ctx.remote.ok(&addr, req, "CLONE_GROUP_OFFSET").await?;
            t.row([
                name,
                self.topic.clone(),
                self.src.clone(),
                self.dest.clone(),
            ]);
        }
        ctx.print(
            t,
            json!({"topic": self.topic, "srcGroup": self.src, "destGroup": self.dest, "result": "success"}),
        );
        Ok(())
    }
}
