//! Consumer and producer group commands: updateSubGroup, deleteSubGroup,
//! consumerProgress, consumerConnection, producerConnection and producer.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};
use clap::{ArgAction, Args};
use ferromq_protocol::body::fastjson_to_json;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use futures::StreamExt;
use serde_json::{json, Value};

use super::value::{attributes, java_bool};
use crate::ctx::{label, s, Ctx, Members, Target};
use crate::remote::refused;
use crate::table::Table;

/// `consumerProgress` without -g: groups looked up at once.
const GROUPS_IN_FLIGHT: usize = 32;

/// Defaults are Apache's `updateSubGroup`'s (which turns broadcast and from-min off).
#[derive(Args)]
pub struct UpdateSubGroup {
    #[command(flatten)]
    target: Target,
    #[arg(short = 'g', long = "groupName")]
    group: String,
    #[arg(short = 's', long = "consumeEnable", action = ArgAction::Set, value_parser = java_bool, default_value = "true")]
    consume_enable: bool,
    #[arg(short = 'm', long = "consumeFromMinEnable", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    consume_from_min_enable: bool,
    #[arg(short = 'd', long = "consumeBroadcastEnable", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    consume_broadcast_enable: bool,
    #[arg(short = 'o', long = "consumeMessageOrderly", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    consume_message_orderly: bool,
    #[arg(short = 'q', long = "retryQueueNums", default_value_t = 1)]
    retry_queue_nums: i32,
    #[arg(short = 'r', long = "retryMaxTimes", default_value_t = 16)]
    retry_max_times: i32,
    /// Retry policy as JSON, e.g. `{"type":"CUSTOMIZED","customizedRetryPolicy":{"next":[1000,5000]}}`.
    #[arg(short = 'p', long = "groupRetryPolicy")]
    group_retry_policy: Option<String>,
    /// Broker id to consume from.
    #[arg(short = 'i', long = "brokerId", default_value_t = 0)]
    broker_id: i64,
    #[arg(
        short = 'w',
        long = "whichBrokerWhenConsumeSlowly",
        default_value_t = 1
    )]
    which_broker_when_consume_slowly: i64,
    #[arg(short = 'a', long = "notifyConsumerIdsChanged", action = ArgAction::Set, value_parser = java_bool, default_value = "true")]
    notify_consumer_ids_changed: bool,
    /// Attributes to set or remove: `+key=value,-key`.
    #[arg(long = "attributes", value_parser = attributes)]
    attributes: Option<BTreeMap<String, String>>,
}

impl UpdateSubGroup {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut config = json!({
            "groupName": self.group,
            "consumeEnable": self.consume_enable,
            "consumeFromMinEnable": self.consume_from_min_enable,
            "consumeBroadcastEnable": self.consume_broadcast_enable,
            "consumeMessageOrderly": self.consume_message_orderly,
            "retryQueueNums": self.retry_queue_nums,
            "retryMaxTimes": self.retry_max_times,
            "brokerId": self.broker_id,
            "whichBrokerWhenConsumeSlowly": self.which_broker_when_consume_slowly,
            "notifyConsumerIdsChangedEnable": self.notify_consumer_ids_changed,
            "groupSysFlag": 0,
            "consumeTimeoutMinute": 15,
            "attributes": self.attributes.unwrap_or_default(),
        });
        if let Some(policy) = &self.group_retry_policy {
            config["groupRetryPolicy"] =
                serde_json::from_str(policy).with_context(|| format!("-p {policy} is not JSON"))?;
        }
        let brokers = ctx.targets(&self.target, Members::Masters).await?;
        let mut t = Table::new([
            "Broker",
            "Address",
            "Group",
            "RetryQueueNums",
            "RetryMaxTimes",
        ]);
        for b in &brokers {
            let req = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(config.to_string());
            ctx.remote
                .ok(&b.addr, req, "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP")
                .await?;
            t.row([
                label(b),
                b.addr.clone(),
                self.group.clone(),
                self.retry_queue_nums.to_string(),
                self.retry_max_times.to_string(),
            ]);
        }
        ctx.print(
            t,
            json!({
                "group": self.group,
                "retryMaxTimes": self.retry_max_times,
                "brokers": brokers.iter().map(|b| &b.addr).collect::<Vec<_>>(),
                "config": config,
            }),
        );
        Ok(())
    }
}

#[derive(Args)]
pub struct DeleteSubGroup {
    #[command(flatten)]
    target: Target,
    #[arg(short = 'g', long = "groupName")]
    group: String,
    /// Also remove the group's committed offsets (true|false).
    #[arg(short = 'r', long = "removeOffset", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    remove_offset: bool,
}

impl DeleteSubGroup {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let brokers = ctx.targets(&self.target, Members::Masters).await?;
        let mut t = Table::new(["Broker", "Address", "Deleted"]);
        for b in &brokers {
            let req = RemotingCommand::request(request::DELETE_SUBSCRIPTIONGROUP)
                .with_field("groupName", &self.group)
                .with_field("cleanOffset", self.remove_offset);
            ctx.remote
                .ok(&b.addr, req, "DELETE_SUBSCRIPTIONGROUP")
                .await?;
            t.row([label(b), b.addr.clone(), self.group.clone()]);
        }
        if let Some(cluster) = &self.target.cluster {
            // Apache's tool then drops the group's retry and dead-letter topics in the
            // cluster, and carries on if they were never made.
            for topic in [
                format!("%RETRY%{}", self.group),
                format!("%DLQ%{}", self.group),
            ] {
                if ctx
                    .client
                    .topic_route(&topic)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    let _ = super::topic::delete_topic_in_cluster(ctx, &topic, cluster).await;
                }
            }
        }
        ctx.print(
            t,
            json!({
                "deleted": self.group,
                "removeOffset": self.remove_offset,
                "brokers": brokers.iter().map(|b| &b.addr).collect::<Vec<_>>(),
            }),
        );
        Ok(())
    }
}

#[derive(Args)]
pub struct ConsumerProgress {
    /// The group; without it, every group with a retry topic and its total lag.
    #[arg(short = 'g', long = "groupName")]
    group: Option<String>,
    /// Only this topic.
    #[arg(short = 't', long = "topicName")]
    topic: Option<String>,
    /// Accepted for Apache's runbooks; queue assignments are not shown.
    #[arg(short = 's', long = "showClientIP", value_parser = java_bool)]
    #[allow(dead_code)] // the admin client cannot see which client holds a queue
    show_client_ip: Option<bool>,
    /// Only this cluster's brokers.
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

impl ConsumerProgress {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let Some(group) = &self.group else {
            return self.all_groups(ctx).await;
        };
        let mut progress = ctx
            .client
            .consumer_progress(group, self.topic.as_deref())
            .await?;
        if let Some(names) = ctx.cluster_broker_names(self.cluster.as_deref()).await? {
            progress.retain(|p| names.contains(&p.broker_name));
        }
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
        ctx.print(
            t,
            json!({"group": group, "queues": progress, "totalDiff": total}),
        );
        Ok(())
    }

    /// Apache's listing without -g: the groups are those with a `%RETRY%` topic.
    async fn all_groups(&self, ctx: &Ctx) -> Result<()> {
        let topics = ctx
            .client
            .topic_list()
            .await
            .with_context(|| format!("cannot reach {}", ctx.namesrv.join(";")))?;
        let names = ctx.cluster_broker_names(self.cluster.as_deref()).await?;
        let mut t = Table::new(["Group", "Count", "Type", "Model", "DiffTotal"]);
        let mut rows = Vec::new();
        let names = &names;
        // A few requests per group: many groups at once keep thousands under a second.
        let mut lookups =
            futures::stream::iter(topics.iter().filter_map(|t| t.strip_prefix("%RETRY%")))
                .map(|group| async move {
                    let mut progress = ctx
                        .client
                        .consumer_progress(group, self.topic.as_deref())
                        .await
                        .unwrap_or_default();
                    if let Some(names) = names {
                        progress.retain(|p| names.contains(&p.broker_name));
                    }
                    // An offline group has no connections to describe.
                    let conns = ctx
                        .client
                        .consumer_connections(group)
                        .await
                        .unwrap_or(Value::Null);
                    (group, progress, conns)
                })
                .buffered(GROUPS_IN_FLIGHT);
        while let Some((group, progress, conns)) = lookups.next().await {
            let diff: i64 = progress.iter().map(|p| p.lag).sum();
            let count = conns["connectionSet"].as_array().map_or(0, Vec::len);
            t.row([
                group.to_string(),
                count.to_string(),
                s(&conns["consumeType"]),
                s(&conns["messageModel"]),
                diff.to_string(),
            ]);
            rows.push(json!({
                "group": group, "count": count, "consumeType": conns["consumeType"],
                "messageModel": conns["messageModel"], "diffTotal": diff,
            }));
        }
        ctx.print(t, json!(rows));
        Ok(())
    }
}

#[derive(Args)]
pub struct ConsumerConnection {
    #[arg(short = 'g', long = "consumerGroup")]
    group: String,
    /// Ask this broker only.
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
}

impl ConsumerConnection {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let group = &self.group;
        let c = match &self.broker {
            None => ctx
                .client
                .consumer_connections(group)
                .await
                .map_err(|e| e.to_string()),
            Some(addr) => {
                let req = RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
                    .with_field("consumerGroup", group);
                let resp = ctx.remote.call(addr, req).await?;
                if resp.code == response::SUCCESS {
                    serde_json::from_slice(&fastjson_to_json(&resp.body)).map_err(|e| e.to_string())
                } else {
                    Err(refused("GET_CONSUMER_CONNECTION_LIST", addr, &resp))
                }
            }
        }
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
        ctx.print(t, c);
        Ok(())
    }
}

#[derive(Args)]
pub struct ProducerConnection {
    #[arg(short = 'g', long = "producerGroup")]
    group: String,
    /// The topic the group sends to (Apache requires it); it must exist.
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
}

impl ProducerConnection {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        if let Some(topic) = &self.topic {
            ctx.route(topic).await?;
        }
        let conns = ctx.client.producer_connections(&self.group).await?;
        let mut t = Table::new(["ClientId", "Address", "Language", "Version"]);
        for conn in &conns {
            t.row([
                s(&conn["clientId"]),
                s(&conn["clientAddr"]),
                s(&conn["language"]),
                s(&conn["version"]),
            ]);
        }
        ctx.print(t, json!(conns));
        Ok(())
    }
}

/// Apache's `producer -b`: every producer connected to the brokers, by group
/// (GET_ALL_PRODUCER_INFO); `-c` or neither reads a cluster's or every cluster's masters.
#[derive(Args)]
pub struct Producer {
    #[command(flatten)]
    target: Target,
}

impl Producer {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new([
            "Broker", "Group", "ClientId", "Address", "Language", "Version",
        ]);
        let mut all = serde_json::Map::new();
        for b in ctx.targets(&self.target, Members::Masters).await? {
            let resp = ctx
                .remote
                .ok(
                    &b.addr,
                    RemotingCommand::request(request::GET_ALL_PRODUCER_INFO),
                    "GET_ALL_PRODUCER_INFO",
                )
                .await?;
            let table: Value = serde_json::from_slice(&resp.body)
                .with_context(|| format!("{}: the producer table is not JSON", b.addr))?;
            for (group, producers) in table["data"].as_object().into_iter().flatten() {
                for p in producers.as_array().into_iter().flatten() {
                    t.row([
                        label(&b),
                        group.clone(),
                        s(&p["clientId"]),
                        s(&p["remoteIP"]),
                        s(&p["language"]),
                        s(&p["version"]),
                    ]);
                }
            }
            all.insert(label(&b), table["data"].clone());
        }
        ctx.print(t, Value::Object(all));
        Ok(())
    }
}
