//! Topic commands: updateTopic, updateTopicPerm, deleteTopic, topicList, topicRoute,
//! topicStatus and topicClusterList.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Args};
use ferromq_client::admin::BrokerInfo;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use futures::StreamExt;
use serde_json::json;

use super::value::{attributes, attributes_text, java_bool};
use crate::ctx::{label, route_masters, unknown_topic, Ctx, Members, Target};
use crate::table::Table;

/// Apache's name-server namespace for ordered topics' `brokerName:queues;…` settings.
const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";
/// `topicList -c`: topics whose consuming groups are asked for at once.
const LOOKUPS_IN_FLIGHT: usize = 64;
/// Topic system flags, as Apache's `TopicSysFlag`.
const FLAG_UNIT: i32 = 1;
const FLAG_UNIT_SUB: i32 = 1 << 1;

/// A topic's settings as UPDATE_AND_CREATE_TOPIC carries them.
struct TopicSettings {
    read: i32,
    write: i32,
    perm: i32,
    sys_flag: i32,
    order: bool,
    attributes: Option<String>,
}

async fn put_topic(ctx: &Ctx, addr: &str, topic: &str, s: &TopicSettings) -> Result<()> {
    let mut req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_field("topic", topic)
        .with_field("defaultTopic", "TBW102")
        .with_field("readQueueNums", s.read)
        .with_field("writeQueueNums", s.write)
        .with_field("perm", s.perm)
        .with_field("topicFilterType", "SINGLE_TAG")
        .with_field("topicSysFlag", s.sys_flag)
        .with_field("order", s.order);
    if let Some(a) = &s.attributes {
        req = req.with_field("attributes", a);
    }
    ctx.remote
        .ok(addr, req, "UPDATE_AND_CREATE_TOPIC")
        .await
        .map(drop)
}

#[derive(Args)]
pub struct UpdateTopic {
    #[command(flatten)]
    target: Target,
    #[arg(short = 't', long = "topic")]
    topic: String,
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
    read_queues: i32,
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
    write_queues: i32,
    /// 2 write, 4 read, 6 both.
    #[arg(short = 'p', long = "perm", default_value_t = 6)]
    perm: i32,
    /// Ordered topic (true|false); also writes its order configuration to the name servers.
    #[arg(short = 'o', long = "order", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    order: bool,
    /// Unit topic (true|false).
    #[arg(short = 'u', long = "unit", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    unit: bool,
    /// Has unit subscriptions (true|false).
    #[arg(short = 's', long = "hasUnitSub", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    has_unit_sub: bool,
    /// Attributes to set or remove: `+key=value,-key`.
    #[arg(short = 'a', long = "attributes", value_parser = attributes)]
    attributes: Option<BTreeMap<String, String>>,
}

impl UpdateTopic {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let brokers = ctx.targets(&self.target, Members::Masters).await?;
        let settings = TopicSettings {
            read: self.read_queues,
            write: self.write_queues,
            perm: self.perm,
            sys_flag: if self.unit { FLAG_UNIT } else { 0 }
                | if self.has_unit_sub { FLAG_UNIT_SUB } else { 0 },
            order: self.order,
            attributes: self.attributes.as_ref().map(attributes_text),
        };
        let mut t = Table::new([
            "Broker", "Address", "Topic", "Read", "Write", "Perm", "Order",
        ]);
        for b in &brokers {
            put_topic(ctx, &b.addr, &self.topic, &settings).await?;
            t.row([
                label(b),
                b.addr.clone(),
                self.topic.clone(),
                self.read_queues.to_string(),
                self.write_queues.to_string(),
                self.perm.to_string(),
                self.order.to_string(),
            ]);
        }
        let order_conf = if self.order {
            // Apache replaces the whole setting for a cluster and merges one broker's in.
            let merge = self.target.broker.is_some();
            Some(put_order_conf(ctx, &self.topic, &brokers, self.write_queues, merge).await?)
        } else {
            None
        };
        ctx.print(
            t,
            json!({
                "topic": self.topic,
                "readQueueNums": self.read_queues,
                "writeQueueNums": self.write_queues,
                "perm": self.perm,
                "order": self.order,
                "topicSysFlag": settings.sys_flag,
                "attributes": self.attributes,
                "brokers": brokers.iter().map(|b| json!({"brokerName": b.broker_name, "addr": b.addr})).collect::<Vec<_>>(),
                "orderConf": order_conf,
            }),
        );
        Ok(())
    }
}

/// Writes `brokerName:writeQueues;…` for the topic on every name server, as Apache's
/// `createOrUpdateOrderConf`; returns what was written.
async fn put_order_conf(
    ctx: &Ctx,
    topic: &str,
    brokers: &[BrokerInfo],
    write_queues: i32,
    merge: bool,
) -> Result<String> {
    let mut entries = BTreeMap::new();
    if merge {
        for addr in &ctx.namesrv {
            let req = RemotingCommand::request(request::GET_KV_CONFIG)
                .with_field("namespace", ORDER_TOPIC_CONFIG)
                .with_field("key", topic);
            if let Ok(resp) = ctx.remote.call(addr, req).await {
                if let (response::SUCCESS, Some(old)) = (resp.code, resp.field("value")) {
                    for entry in old.split(';').filter(|e| !e.is_empty()) {
                        let name = entry.split(':').next().unwrap_or(entry);
                        entries.insert(name.to_string(), entry.to_string());
                    }
                    break;
                }
            }
        }
    }
    for b in brokers {
        entries.insert(
            b.broker_name.clone(),
            format!("{}:{write_queues}", b.broker_name),
        );
    }
    let conf = entries.into_values().collect::<Vec<_>>().join(";");
    for addr in &ctx.namesrv {
        let req = RemotingCommand::request(request::PUT_KV_CONFIG)
            .with_field("namespace", ORDER_TOPIC_CONFIG)
            .with_field("key", topic)
            .with_field("value", &conf);
        ctx.remote.ok(addr, req, "PUT_KV_CONFIG").await?;
    }
    Ok(conf)
}

#[derive(Args)]
pub struct UpdateTopicPerm {
    /// Broker address (a master hosting the topic).
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
    /// Cluster name: its masters hosting the topic. Neither -b nor -c: every one hosting it.
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// 2 write, 4 read, 6 both.
    #[arg(short = 'p', long = "perm")]
    perm: i32,
}

impl UpdateTopicPerm {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let route = ctx.route(&self.topic).await?;
        let mut hosts: Vec<(String, String)> = route_masters(&route);
        if let Some(addr) = &self.broker {
            hosts.retain(|(_, a)| a == addr);
            if hosts.is_empty() {
                bail!("{addr} is not a master hosting topic {}", self.topic);
            }
        }
        if let Some(names) = ctx.cluster_broker_names(self.cluster.as_deref()).await? {
            hosts.retain(|(name, _)| names.contains(name));
            if hosts.is_empty() {
                bail!(
                    "topic {} is not on cluster {}",
                    self.topic,
                    self.cluster.as_deref().unwrap_or_default()
                );
            }
        }
        let mut t = Table::new(["Broker", "Address", "Topic", "OldPerm", "Perm"]);
        let mut rows = Vec::new();
        for (name, addr) in hosts {
            let Some(q) = route.queue_datas.iter().find(|q| q.broker_name == name) else {
                continue;
            };
            // Only the permission changes: the order flag is read from the broker, as the
            // route does not carry it.
            let order = ctx
                .client
                .topic_configs(&addr)
                .await
                .ok()
                .and_then(|c| c.topic_config_table.get(&self.topic).map(|c| c.order))
                .unwrap_or(false);
            let settings = TopicSettings {
                read: q.read_queue_nums,
                write: q.write_queue_nums,
                perm: self.perm,
                sys_flag: q.topic_sys_flag,
                order,
                attributes: None,
            };
            put_topic(ctx, &addr, &self.topic, &settings).await?;
            t.row([
                name.clone(),
                addr.clone(),
                self.topic.clone(),
                q.perm.to_string(),
                self.perm.to_string(),
            ]);
            rows.push(
                json!({"brokerName": name, "addr": addr, "oldPerm": q.perm, "perm": self.perm}),
            );
        }
        ctx.print(t, json!({"topic": self.topic, "brokers": rows}));
        Ok(())
    }
}

#[derive(Args)]
pub struct DeleteTopic {
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Only from this cluster's masters (Apache requires it; without it, from every master).
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

impl DeleteTopic {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        ctx.route(&self.topic).await?;
        match &self.cluster {
            None => ctx.client.delete_topic(&self.topic).await?,
            Some(cluster) => delete_topic_in_cluster(ctx, &self.topic, cluster).await?,
        }
        let mut t = Table::new(["Deleted"]);
        t.row([self.topic.clone()]);
        ctx.print(t, json!({"deleted": self.topic, "cluster": self.cluster}));
        Ok(())
    }
}

/// Deletes a topic from a cluster's masters, then that cluster's share of its route from
/// every name server (Apache's `deleteTopic(topic, clusterName)`).
pub async fn delete_topic_in_cluster(ctx: &Ctx, topic: &str, cluster: &str) -> Result<()> {
    let masters = ctx
        .targets(
            &Target {
                broker: None,
                cluster: Some(cluster.to_string()),
            },
            Members::Masters,
        )
        .await?;
    for b in &masters {
        let req =
            RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER).with_field("topic", topic);
        ctx.remote
            .ok(&b.addr, req, "DELETE_TOPIC_IN_BROKER")
            .await?;
    }
    for addr in &ctx.namesrv {
        let req = RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV)
            .with_field("topic", topic)
            .with_field("clusterName", cluster);
        ctx.remote.ok(addr, req, "DELETE_TOPIC_IN_NAMESRV").await?;
    }
    Ok(())
}

#[derive(Args)]
pub struct TopicList {
    /// One row per cluster, topic and consuming group (retry and DLQ topics left out).
    #[arg(short = 'c', long = "clusterModel")]
    cluster_model: bool,
}

impl TopicList {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let topics = ctx
            .client
            .topic_list()
            .await
            .with_context(|| format!("cannot reach {}", ctx.namesrv.join(";")))?;
        if !self.cluster_model {
            let mut t = Table::new(["Topic"]);
            for topic in &topics {
                t.row([topic.clone()]);
            }
            ctx.print(t, json!(topics));
            return Ok(());
        }
        let mut t = Table::new(["Cluster", "Topic", "ConsumerGroup"]);
        let mut rows = Vec::new();
        let hosts = &topic_hosts(ctx).await;
        // Apache's tool asks for each topic's route, then its groups, one topic after the
        // other. Here the masters' topic tables stand for the routes, and the topics' groups
        // are asked for many at once: 10,000 topics take well under a second, not five.
        let mut lookups = futures::stream::iter(
            topics
                .iter()
                .filter(|t| !t.starts_with("%RETRY%") && !t.starts_with("%DLQ%")),
        )
        .map(|topic| async move {
            let found = match hosts.get(topic.as_str()) {
                Some((cluster, addr)) => ctx
                    .client
                    .topic_consumer_groups(addr, topic)
                    .await
                    .map(|groups| (cluster.clone(), groups))
                    .map_err(Into::into),
                // Not in a master's table (a name server's system topic): by its route.
                None => cluster_and_groups(ctx, topic).await,
            };
            (topic, found)
        })
        .buffered(LOOKUPS_IN_FLIGHT);
        while let Some((topic, found)) = lookups.next().await {
            // As Apache's tool: a topic whose cluster or groups cannot be read still shows.
            let (cluster, groups) = found.unwrap_or_default();
            if groups.is_empty() {
                t.row([cluster.clone(), topic.clone(), String::new()]);
            }
            for g in &groups {
                t.row([cluster.clone(), topic.clone(), g.clone()]);
            }
            rows.push(json!({"cluster": cluster, "topic": topic, "groups": groups}));
        }
        ctx.print(t, json!(rows));
        Ok(())
    }
}

/// Each topic's first master (by broker name) and its cluster, from every master's topic
/// table; empty when the brokers cannot be listed (each topic is then looked up alone).
async fn topic_hosts(ctx: &Ctx) -> BTreeMap<String, (String, String)> {
    let mut masters: Vec<BrokerInfo> = match ctx.client.brokers().await {
        Ok(brokers) => brokers.into_iter().filter(|b| b.broker_id == 0).collect(),
        Err(_) => return BTreeMap::new(),
    };
    masters.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let mut hosts = BTreeMap::new();
    for m in &masters {
        let Ok(table) = ctx.client.topic_configs(&m.addr).await else {
            continue;
        };
        for topic in table.topic_config_table.into_keys() {
            hosts
                .entry(topic)
                .or_insert_with(|| (m.cluster.clone(), m.addr.clone()));
        }
    }
    hosts
}

/// The cluster of a topic's first broker, and the groups consuming it as that broker's
/// master knows them (QUERY_TOPIC_CONSUME_BY_WHO).
async fn cluster_and_groups(ctx: &Ctx, topic: &str) -> Result<(String, Vec<String>)> {
    let route = ctx.route(topic).await?;
    let Some(first) = route.broker_datas.first() else {
        return Ok(Default::default());
    };
    let Some(addr) = first
        .broker_addrs
        .get(&0)
        .or_else(|| first.broker_addrs.values().next())
    else {
        return Ok((first.cluster.clone(), Vec::new()));
    };
    let groups = ctx.client.topic_consumer_groups(addr, topic).await?;
    Ok((first.cluster.clone(), groups))
}

#[derive(Args)]
pub struct TopicRoute {
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Apache's list format: adds the totals row (--json prints the route itself).
    #[arg(short = 'l', long = "list")]
    list: bool,
}

impl TopicRoute {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let route = ctx.route(&self.topic).await?;
        let mut brokers = route.broker_datas.clone();
        brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        let mut t = Table::new(["Cluster", "Broker", "Addresses", "Read", "Write", "Perm"]);
        let (mut read, mut write) = (0, 0);
        for b in &brokers {
            let Some(q) = route
                .queue_datas
                .iter()
                .find(|q| q.broker_name == b.broker_name)
            else {
                continue;
            };
            read += q.read_queue_nums;
            write += q.write_queue_nums;
            t.row([
                b.cluster.clone(),
                b.broker_name.clone(),
                json!(b.broker_addrs).to_string(),
                q.read_queue_nums.to_string(),
                q.write_queue_nums.to_string(),
                q.perm.to_string(),
            ]);
        }
        if self.list {
            t.row([
                "Total:".into(),
                brokers.len().to_string(),
                String::new(),
                read.to_string(),
                write.to_string(),
                String::new(),
            ]);
        }
        ctx.print(t, json!(route));
        Ok(())
    }
}

#[derive(Args)]
pub struct TopicStatus {
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Only this cluster's brokers.
    #[arg(short = 'c', long = "cluster")]
    cluster: Option<String>,
}

impl TopicStatus {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut status = ctx
            .client
            .topic_status(&self.topic)
            .await
            .map_err(unknown_topic(&self.topic))?;
        if let Some(names) = ctx.cluster_broker_names(self.cluster.as_deref()).await? {
            status.retain(|q| names.contains(&q.broker_name));
        }
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
        ctx.print(t, json!(status));
        Ok(())
    }
}

#[derive(Args)]
pub struct TopicClusterList {
    #[arg(short = 't', long = "topic")]
    topic: String,
}

impl TopicClusterList {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let route = ctx.route(&self.topic).await?;
        let clusters: BTreeSet<String> = route
            .broker_datas
            .iter()
            .map(|b| b.cluster.clone())
            .collect();
        let mut t = Table::new(["Cluster"]);
        for c in &clusters {
            t.row([c.clone()]);
        }
        ctx.print(t, json!(clusters));
        Ok(())
    }
}
