//! Administration over the remoting protocol: what `mqadmin` and the dashboard need.
//! Brokers are found through the name server, so this works against FerroMQ and Apache
//! RocketMQ alike; FerroMQ-only calls say so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::body::{
    fastjson_to_json, json_value_end, ClusterInfo, MessageQueue, TopicConfigSerializeWrapper,
    TopicList, TopicRouteData,
};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::message::MessageExt;
use ferromq_protocol::RemotingCommand;
use serde::Serialize;

use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A broker known to the name server.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerInfo {
    pub cluster: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub addr: String,
}

/// Offsets of one queue of a topic.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueOffsets {
    pub broker_name: String,
    pub queue_id: i32,
    pub min_offset: i64,
    pub max_offset: i64,
    pub last_update_timestamp: i64,
}

/// A group's progress on one queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueProgress {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub lag: i64,
    pub last_timestamp: i64,
}

/// Administration client.
#[derive(Clone)]
pub struct AdminClient {
    instance: Arc<ClientInstance>,
    namesrv: Vec<String>,
}

fn refused(operation: &'static str, addr: &str, resp: RemotingCommand) -> ClientError {
    ClientError::Broker {
        operation,
        addr: addr.into(),
        code: resp.code,
        remark: resp.remark.unwrap_or_default(),
    }
}

fn malformed(operation: &'static str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Malformed {
        operation,
        reason: e.to_string(),
    }
}

/// Parses a reply's JSON body, accepting fastjson's bare integer map keys.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    resp: &RemotingCommand,
    operation: &'static str,
) -> Result<T> {
    serde_json::from_slice(&fastjson_to_json(&resp.body)).map_err(|e| malformed(operation, e))
}

/// Parses fastjson's `{<MessageQueue>:<value>,...}` map (object keys, not valid JSON).
pub fn parse_queue_map(text: &str, field: &str) -> Result<Vec<(MessageQueue, serde_json::Value)>> {
    let start = text
        .find(&format!("\"{field}\":"))
        .ok_or_else(|| malformed("queue map", format!("no {field}")))?;
    let rest = &text[start + field.len() + 3..];
    let bytes = rest.as_bytes();
    if bytes.first() != Some(&b'{') {
        return Err(malformed("queue map", "the map does not start with '{'"));
    }
    let mut out = Vec::new();
    let mut i = 1;
    let object_end = |from: usize| -> Result<usize> {
        json_value_end(bytes, from).ok_or_else(|| malformed("queue map", "unbalanced braces"))
    };
    while i < bytes.len() {
        match bytes[i] {
            b'}' => break,
            b',' | b' ' | b'\n' => i += 1,
            b'{' => {
                let key_end = object_end(i)?;
                let mq: MessageQueue = serde_json::from_str(&rest[i..key_end])
                    .map_err(|e| malformed("queue map key", e))?;
                i = key_end;
                if bytes.get(i) != Some(&b':') {
                    return Err(malformed("queue map", "expected ':' after a key"));
                }
                i += 1;
                let value_end = if bytes.get(i) == Some(&b'{') {
                    object_end(i)?
                } else {
                    i + rest[i..]
                        .find([',', '}'])
                        .ok_or_else(|| malformed("queue map", "unterminated value"))?
                };
                let value: serde_json::Value = serde_json::from_str(&rest[i..value_end])
                    .map_err(|e| malformed("queue map value", e))?;
                out.push((mq, value));
                i = value_end;
            }
            _ => return Err(malformed("queue map", format!("unexpected byte at {i}"))),
        }
    }
    Ok(out)
}

impl AdminClient {
    /// # Errors
    /// No name server given.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(name_servers: I) -> Result<Self> {
        let namesrv: Vec<String> = name_servers.into_iter().map(Into::into).collect();
        if namesrv.is_empty() {
            return Err(ClientError::InvalidArgument(
                "at least one name server is required".into(),
            ));
        }
        Ok(AdminClient {
            instance: ClientInstance::new(namesrv.clone(), "admin", TIMEOUT),
            namesrv,
        })
    }

    pub fn name_servers(&self) -> &[String] {
        &self.namesrv
    }

    /// Signs every request, for brokers with ACL on (admin codes need an admin account).
    pub fn with_credentials(self, credentials: crate::Credentials) -> Self {
        self.instance.set_credentials(credentials);
        self
    }

    async fn namesrv_call(
        &self,
        req: RemotingCommand,
        operation: &'static str,
    ) -> Result<RemotingCommand> {
        let mut last = None;
        for addr in &self.namesrv {
            match self.instance.invoke(addr, req.clone()).await {
                Ok(r) if r.code == response::SUCCESS => return Ok(r),
                Ok(r) => last = Some(refused(operation, addr, r)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one name server"))
    }

    pub(crate) async fn broker_call(
        &self,
        addr: &str,
        req: RemotingCommand,
        operation: &'static str,
    ) -> Result<RemotingCommand> {
        let resp = self.instance.invoke(addr, req).await?;
        if resp.code != response::SUCCESS {
            return Err(refused(operation, addr, resp));
        }
        Ok(resp)
    }

    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let resp = self
            .namesrv_call(
                RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO),
                "GET_BROKER_CLUSTER_INFO",
            )
            .await?;
        json_body(&resp, "GET_BROKER_CLUSTER_INFO")
    }

    /// Every broker of every cluster.
    pub async fn brokers(&self) -> Result<Vec<BrokerInfo>> {
        let info = self.cluster_info().await?;
        let mut out = Vec::new();
        for (cluster, names) in &info.cluster_addr_table {
            for name in names {
                if let Some(b) = info.broker_addr_table.get(name) {
                    for (id, addr) in &b.broker_addrs {
                        out.push(BrokerInfo {
                            cluster: cluster.clone(),
                            broker_name: name.clone(),
                            broker_id: *id,
                            addr: addr.clone(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Master addresses, by broker name.
    pub async fn masters(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .brokers()
            .await?
            .into_iter()
            .filter(|b| b.broker_id == 0)
            .map(|b| (b.broker_name, b.addr))
            .collect())
    }

    pub async fn topic_list(&self) -> Result<Vec<String>> {
        let resp = self
            .namesrv_call(
                RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
                "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
            )
            .await?;
        let list: TopicList = json_body(&resp, "GET_ALL_TOPIC_LIST_FROM_NAMESERVER")?;
        let mut topics = list.topic_list;
        topics.sort();
        Ok(topics)
    }

    /// The name server's system topics: every cluster's and broker's name (code 304).
    pub async fn system_topic_list(&self) -> Result<Vec<String>> {
        let resp = self
            .namesrv_call(
                RemotingCommand::request(request::GET_SYSTEM_TOPIC_LIST_FROM_NS),
                "GET_SYSTEM_TOPIC_LIST_FROM_NS",
            )
            .await?;
        let list: TopicList = json_body(&resp, "GET_SYSTEM_TOPIC_LIST_FROM_NS")?;
        Ok(list.topic_list)
    }

    /// A topic's route; `Ok(None)` when the topic is unknown.
    pub async fn topic_route(&self, topic: &str) -> Result<Option<TopicRouteData>> {
        self.instance.fetch_route(topic).await
    }

    /// Master addresses of the brokers hosting a topic, by broker name.
    async fn topic_masters(&self, topic: &str) -> Result<Vec<(String, String)>> {
        let route = self
            .topic_route(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.into(),
            })?;
        Ok(route_masters(&route))
    }

    /// Topic configurations of a broker.
    pub async fn topic_configs(&self, broker_addr: &str) -> Result<TopicConfigSerializeWrapper> {
        let resp = self
            .broker_call(
                broker_addr,
                RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG),
                "GET_ALL_TOPIC_CONFIG",
            )
            .await?;
        json_body(&resp, "GET_ALL_TOPIC_CONFIG")
    }

    /// Per-queue offsets of a topic on every broker hosting it.
    pub async fn topic_status(&self, topic: &str) -> Result<Vec<QueueOffsets>> {
        let mut out = Vec::new();
        for (_, addr) in &self.topic_masters(topic).await? {
            let req =
                RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_field("topic", topic);
            let resp = self.broker_call(addr, req, "GET_TOPIC_STATS_INFO").await?;
            for (mq, v) in parse_queue_map(&String::from_utf8_lossy(&resp.body), "offsetTable")? {
                out.push(QueueOffsets {
                    broker_name: mq.broker_name,
                    queue_id: mq.queue_id,
                    min_offset: v["minOffset"].as_i64().unwrap_or(0),
                    max_offset: v["maxOffset"].as_i64().unwrap_or(0),
                    last_update_timestamp: v["lastUpdateTimestamp"].as_i64().unwrap_or(0),
                });
            }
        }
        out.sort_by(|a, b| (&a.broker_name, a.queue_id).cmp(&(&b.broker_name, b.queue_id)));
        Ok(out)
    }

    /// Creates or updates a topic on every master (or the named brokers).
    pub async fn create_topic(
        &self,
        topic: &str,
        queues: i32,
        perm: i32,
        brokers: Option<&[String]>,
    ) -> Result<()> {
        let masters = self.masters().await?;
        let targets: Vec<String> = match brokers {
            Some(b) => b.to_vec(),
            None => masters.values().cloned().collect(),
        };
        if targets.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no broker to create the topic on".into(),
            ));
        }
        for addr in targets {
            let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
                .with_field("topic", topic)
                .with_field("defaultTopic", "TBW102")
                .with_field("readQueueNums", queues)
                .with_field("writeQueueNums", queues)
                .with_field("perm", perm)
                .with_field("topicFilterType", "SINGLE_TAG")
                .with_field("topicSysFlag", 0)
                .with_field("order", false);
            self.broker_call(&addr, req, "UPDATE_AND_CREATE_TOPIC")
                .await?;
        }
        Ok(())
    }

    /// Deletes a topic from every master and the name servers.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let req =
            RemotingCommand::request(request::DELETE_TOPIC_IN_BROKER).with_field("topic", topic);
        self.call_masters(req, "DELETE_TOPIC_IN_BROKER").await?;
        for addr in &self.namesrv {
            let req = RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV)
                .with_field("topic", topic);
            let resp = self.instance.invoke(addr, req).await?;
            if resp.code != response::SUCCESS {
                return Err(refused("DELETE_TOPIC_IN_NAMESRV", addr, resp));
            }
        }
        Ok(())
    }

    /// A broker's runtime figures.
    pub async fn broker_runtime_info(&self, addr: &str) -> Result<BTreeMap<String, String>> {
        let resp = self
            .broker_call(
                addr,
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
                "GET_BROKER_RUNTIME_INFO",
            )
            .await?;
        let v: serde_json::Value = json_body(&resp, "GET_BROKER_RUNTIME_INFO")?;
        let table = v
            .get("table")
            .and_then(|t| t.as_object())
            .ok_or_else(|| malformed("GET_BROKER_RUNTIME_INFO", "no table"))?;
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

    /// How a broker's replication stands (GET_BROKER_HA_STATUS, Apache's `HARuntimeInfo`):
    /// a master's slaves with their acknowledged offsets, or a slave's copy.
    pub async fn ha_status(&self, addr: &str) -> Result<serde_json::Value> {
        let resp = self
            .broker_call(
                addr,
                RemotingCommand::request(request::GET_BROKER_HA_STATUS),
                "GET_BROKER_HA_STATUS",
            )
            .await?;
        json_body(&resp, "GET_BROKER_HA_STATUS")
    }

    /// A group's progress on a topic (or all its topics), on every master.
    pub async fn consumer_progress(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<QueueProgress>> {
        let mut out = Vec::new();
        for addr in self.masters().await?.values() {
            let mut req = RemotingCommand::request(request::GET_CONSUME_STATS)
                .with_field("consumerGroup", group);
            if let Some(t) = topic {
                req = req.with_field("topic", t);
            }
            let resp = match self.instance.invoke(addr, req).await? {
                r if r.code == response::SUCCESS => r,
                r if r.code == response::TOPIC_NOT_EXIST
                    || r.code == response::CONSUMER_NOT_ONLINE =>
                {
                    continue
                }
                r => return Err(refused("GET_CONSUME_STATS", addr, r)),
            };
            for (mq, v) in parse_queue_map(&String::from_utf8_lossy(&resp.body), "offsetTable")? {
                let broker_offset = v["brokerOffset"].as_i64().unwrap_or(0);
                let consumer_offset = v["consumerOffset"].as_i64().unwrap_or(0);
                out.push(QueueProgress {
                    topic: mq.topic,
                    broker_name: mq.broker_name,
                    queue_id: mq.queue_id,
                    broker_offset,
                    consumer_offset,
                    lag: (broker_offset - consumer_offset).max(0),
                    last_timestamp: v["lastTimestamp"].as_i64().unwrap_or(0),
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.topic, &a.broker_name, a.queue_id).cmp(&(&b.topic, &b.broker_name, b.queue_id))
        });
        Ok(out)
    }

    /// Connected consumers of a group (JSON as the broker sends it).
    pub async fn consumer_connections(&self, group: &str) -> Result<serde_json::Value> {
        let mut last = None;
        for addr in self.masters().await?.values() {
            let req = RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
                .with_field("consumerGroup", group);
            match self.instance.invoke(addr, req).await? {
                r if r.code == response::SUCCESS => {
                    return json_body(&r, "GET_CONSUMER_CONNECTION_LIST")
                }
                r => last = Some(refused("GET_CONSUMER_CONNECTION_LIST", addr, r)),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::InvalidArgument("no broker".into())))
    }

    /// Connected producers of a group, over all masters.
    pub async fn producer_connections(&self, group: &str) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for addr in self.masters().await?.values() {
            let req = RemotingCommand::request(request::GET_PRODUCER_CONNECTION_LIST)
                .with_field("producerGroup", group);
            let resp = self.instance.invoke(addr, req).await?;
            // A broker with no producer of the group answers SYSTEM_ERROR "… not exist".
            if resp.code == response::SYSTEM_ERROR
                && resp
                    .remark
                    .as_deref()
                    .is_some_and(|r| r.ends_with("not exist"))
            {
                continue;
            }
            if resp.code != response::SUCCESS {
                return Err(refused("GET_PRODUCER_CONNECTION_LIST", addr, resp));
            }
            let v: serde_json::Value = json_body(&resp, "GET_PRODUCER_CONNECTION_LIST")?;
            if let Some(set) = v["connectionSet"].as_array() {
                out.extend(set.iter().cloned());
            }
        }
        Ok(out)
    }

    /// Moves a group's offsets on a topic to the first message at or after `timestamp_ms`.
    pub async fn reset_offset_by_time(
        &self,
        group: &str,
        topic: &str,
        timestamp_ms: i64,
    ) -> Result<()> {
        let route = self
            .topic_route(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.into(),
            })?;
        for b in &route.broker_datas {
            let Some(addr) = b.broker_addrs.get(&0) else {
                continue;
            };
            let req = RemotingCommand::request(request::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_field("topic", topic)
                .with_field("group", group)
                .with_field("timestamp", timestamp_ms)
                .with_field("isForce", true);
            self.broker_call(addr, req, "INVOKE_BROKER_TO_RESET_OFFSET")
                .await?;
        }
        Ok(())
    }

    /// Messages of a topic carrying a key, over every broker hosting it.
    pub async fn query_by_key(&self, topic: &str, key: &str, max: i32) -> Result<Vec<MessageExt>> {
        self.query_by_key_between(topic, key, max, 0, i64::MAX)
            .await
    }

    /// Messages of a topic carrying a key and stored between two times (ms), at most
    /// `max` per broker, oldest first.
    pub async fn query_by_key_between(
        &self,
        topic: &str,
        key: &str,
        max: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<MessageExt>> {
        let mut out = Vec::new();
        for (_, addr) in &self.topic_masters(topic).await? {
            let req = RemotingCommand::request(request::QUERY_MESSAGE)
                .with_field("topic", topic)
                .with_field("key", key)
                .with_field("maxNum", max)
                .with_field("beginTimestamp", begin_ms)
                .with_field("endTimestamp", end_ms);
            let resp = self.instance.invoke(addr, req).await?;
            match resp.code {
                response::SUCCESS => out.extend(
                    MessageExt::decode_all(&resp.body)
                        .map_err(|e| malformed("QUERY_MESSAGE", e))?,
                ),
                response::QUERY_NOT_FOUND => {}
                _ => return Err(refused("QUERY_MESSAGE", addr, resp)),
            }
        }
        out.sort_by_key(|m| m.store_timestamp);
        Ok(out)
    }

    /// A message's life from the brokers' own records (FerroMQ brokers only): where it is
    /// stored, what it waited for, and per consumer group the pulls, the commit that
    /// passed it, retries and dead letters. `id` is a unique id, or an offset id (which
    /// names its broker); `key` finds every message carrying it. One JSON object per
    /// message, with the broker that holds it (`broker`, `brokerAddr`).
    pub async fn message_life(
        &self,
        topic: &str,
        id: Option<&str>,
        key: Option<&str>,
    ) -> Result<Vec<serde_json::Value>> {
        let mut ids: Vec<String> = Vec::new();
        let mut add = |m: &MessageExt| {
            let uniq = m
                .property(ferromq_protocol::message::property::UNIQ_KEY)
                .map_or_else(|| m.offset_msg_id(), str::to_string);
            if !ids.contains(&uniq) {
                ids.push(uniq);
            }
        };
        match (id, key) {
            (Some(id), _) => match self.query_by_id(Some(topic), id).await? {
                Some(m) => add(&m),
                // Not stored on the topic (yet): it may wait for a delay or a commit.
                None => ids.push(id.to_string()),
            },
            (None, Some(key)) => {
                for m in self.query_by_key(topic, key, 32).await? {
                    add(&m);
                }
            }
            (None, None) => {
                return Err(ClientError::InvalidArgument(
                    "a message id or a key is needed".into(),
                ))
            }
        }
        let masters = self.topic_masters(topic).await?;
        let mut out = Vec::new();
        for id in &ids {
            for (name, addr) in &masters {
                let req = RemotingCommand::request(request::FERROMQ_MESSAGE_LIFE)
                    .with_field("topic", topic)
                    .with_field("msgId", id);
                let resp = self.broker_call(addr, req, "FERROMQ_MESSAGE_LIFE").await?;
                let mut life: serde_json::Value = json_body(&resp, "FERROMQ_MESSAGE_LIFE")?;
                let holds = |k: &str| life[k].as_array().is_some_and(|a| !a.is_empty());
                if holds("stored") || holds("waiting") {
                    life["broker"] = name.clone().into();
                    life["brokerAddr"] = addr.clone().into();
                    out.push(life);
                }
            }
        }
        Ok(out)
    }

    /// What clients with tracing on wrote about a message (by its unique id) to a trace
    /// topic, with the graph Apache's dashboard draws of it.
    pub async fn message_trace(
        &self,
        trace_topic: &str,
        msg_id: &str,
        max: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<crate::trace::Traced>> {
        let messages = self
            .query_by_key_between(trace_topic, msg_id, max, begin_ms, end_ms)
            .await?;
        Ok(crate::trace::records_of(msg_id, &messages))
    }

    /// A message by its offset id (which names the broker), or by unique id within a topic.
    pub async fn query_by_id(&self, topic: Option<&str>, id: &str) -> Result<Option<MessageExt>> {
        // A unique id can look like an offset id too: only ask a host that is one of the
        // cluster's brokers, never an address merely decoded from an id.
        if let Some((host, offset)) = ferromq_protocol::message::decode_offset_msg_id(id) {
            let addr = host.to_string();
            if self.brokers().await?.iter().any(|b| b.addr == addr) {
                let req = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID)
                    .with_field("offset", offset);
                if let Ok(resp) = self.instance.invoke(&addr, req).await {
                    if resp.code == response::SUCCESS {
                        return Ok(MessageExt::decode_all(&resp.body)
                            .map_err(|e| malformed("VIEW_MESSAGE_BY_ID", e))?
                            .pop());
                    }
                }
            }
        }
        match topic {
            Some(t) if !t.is_empty() => Ok(self.query_by_key(t, id, 1).await?.into_iter().next()),
            _ => Ok(None),
        }
    }

    /// A message by queue and offset.
    pub async fn query_by_offset(
        &self,
        mq: &MessageQueue,
        offset: i64,
    ) -> Result<Option<MessageExt>> {
        let route = self
            .topic_route(&mq.topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: mq.topic.clone(),
            })?;
        let addr = ClientInstance::master_addr(&route, &mq.broker_name).ok_or_else(|| {
            ClientError::NoRoute {
                topic: mq.topic.clone(),
            }
        })?;
        let req = RemotingCommand::request(request::PULL_MESSAGE)
            .with_field("consumerGroup", "TOOLS_CONSUMER")
            .with_field("topic", &mq.topic)
            .with_field("queueId", mq.queue_id)
            .with_field("queueOffset", offset)
            .with_field("maxMsgNums", 1)
            .with_field("sysFlag", 0)
            .with_field("commitOffset", 0)
            .with_field("suspendTimeoutMillis", 0)
            .with_field("subVersion", 0);
        let resp = self.instance.invoke(&addr, req).await?;
        if resp.code != response::SUCCESS {
            return Ok(None);
        }
        Ok(MessageExt::decode_all(&resp.body)
            .map_err(|e| malformed("PULL_MESSAGE", e))?
            .into_iter()
            .next())
    }

    /// Messages of a topic stored between two times, newest queue positions last, at
    /// most `max` (for browsing).
    pub async fn query_by_time(
        &self,
        topic: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<MessageExt>> {
        let route = self
            .topic_route(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.into(),
            })?;
        let mut out = Vec::new();
        for b in &route.broker_datas {
            let Some(addr) = b.broker_addrs.get(&0) else {
                continue;
            };
            let queues = route
                .queue_datas
                .iter()
                .find(|q| q.broker_name == b.broker_name)
                .map_or(0, |q| q.read_queue_nums);
            for queue_id in 0..queues {
                let search = RemotingCommand::request(request::SEARCH_OFFSET_BY_TIMESTAMP)
                    .with_field("topic", topic)
                    .with_field("queueId", queue_id)
                    .with_field("timestamp", begin_ms);
                let mut offset: i64 = self
                    .instance
                    .invoke(addr, search)
                    .await?
                    .field("offset")
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(0);
                let mq = MessageQueue {
                    topic: topic.into(),
                    broker_name: b.broker_name.clone(),
                    queue_id,
                };
                while out.len() < max {
                    let Some(m) = self.query_by_offset(&mq, offset).await? else {
                        break;
                    };
                    if m.store_timestamp > end_ms {
                        break;
                    }
                    offset = m.queue_offset + 1;
                    out.push(m);
                }
            }
        }
        out.sort_by_key(|m| m.store_timestamp);
        Ok(out)
    }

    /// Undecided transactions (FerroMQ only).
    pub async fn undecided_transactions(
        &self,
        addr: &str,
        max: usize,
    ) -> Result<Vec<serde_json::Value>> {
        let req = RemotingCommand::request(request::FERROMQ_LIST_UNDECIDED_TRANSACTIONS)
            .with_field("max", max);
        let resp = self.instance.invoke(addr, req).await?;
        if resp.code == response::REQUEST_CODE_NOT_SUPPORTED {
            return Err(ClientError::InvalidArgument(format!(
                "broker {addr} cannot list transactions (not a FerroMQ broker)"
            )));
        }
        if resp.code != response::SUCCESS {
            return Err(refused("LIST_UNDECIDED_TRANSACTIONS", addr, resp));
        }
        json_body(&resp, "LIST_UNDECIDED_TRANSACTIONS")
    }

    /// A broker's configuration as `key=value` lines.
    pub async fn broker_config(&self, addr: &str) -> Result<String> {
        let resp = self
            .broker_call(
                addr,
                RemotingCommand::request(request::GET_BROKER_CONFIG),
                "GET_BROKER_CONFIG",
            )
            .await?;
        Ok(String::from_utf8_lossy(&resp.body).into_owned())
    }

    /// Asks a broker to change a configuration key at run time.
    pub async fn update_broker_config(&self, addr: &str, key: &str, value: &str) -> Result<()> {
        let req = RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
            .with_body(format!("{key}={value}\n"));
        self.broker_call(addr, req, "UPDATE_BROKER_CONFIG")
            .await
            .map(|_| ())
    }

    /// The groups consuming `topic` as the broker at `broker_addr` knows them: those with
    /// offsets on it or subscribed to it (QUERY_TOPIC_CONSUME_BY_WHO).
    pub async fn topic_consumer_groups(
        &self,
        broker_addr: &str,
        topic: &str,
    ) -> Result<Vec<String>> {
        let req = RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO)
            .with_field("topic", topic);
        let resp = self
            .broker_call(broker_addr, req, "QUERY_TOPIC_CONSUME_BY_WHO")
            .await?;
        let body: serde_json::Value = json_body(&resp, "QUERY_TOPIC_CONSUME_BY_WHO")?;
        Ok(body["groupList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect())
    }

    /// Consumer groups known to any master.
    pub async fn consumer_groups(&self) -> Result<Vec<String>> {
        let mut groups = std::collections::BTreeSet::new();
        for addr in self.masters().await?.values() {
            let resp = self
                .broker_call(
                    addr,
                    RemotingCommand::request(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG),
                    "GET_ALL_SUBSCRIPTIONGROUP_CONFIG",
                )
                .await?;
            let v: serde_json::Value = json_body(&resp, "GET_ALL_SUBSCRIPTIONGROUP_CONFIG")?;
            if let Some(t) = v["subscriptionGroupTable"].as_object() {
                groups.extend(t.keys().cloned());
            }
        }
        Ok(groups.into_iter().collect())
    }

    /// Producer groups with live connections (FerroMQ only).
    pub async fn producer_groups(&self) -> Result<Vec<String>> {
        let mut groups = std::collections::BTreeSet::new();
        for addr in self.masters().await?.values() {
            let resp = self
                .instance
                .invoke(
                    addr,
                    RemotingCommand::request(request::FERROMQ_LIST_PRODUCER_GROUPS),
                )
                .await?;
            if resp.code != response::SUCCESS {
                return Err(refused("LIST_PRODUCER_GROUPS", addr, resp));
            }
            let v: serde_json::Value = json_body(&resp, "LIST_PRODUCER_GROUPS")?;
            groups.extend(
                v["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().map(str::to_string)),
            );
        }
        Ok(groups.into_iter().collect())
    }

    /// Creates or updates a consumer group's configuration on every master.
    pub async fn update_group(&self, group: &str, retry_max_times: i32) -> Result<()> {
        let body = serde_json::json!({"groupName": group, "consumeEnable": true, "retryMaxTimes": retry_max_times, "retryQueueNums": 1});
        let req = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(body.to_string());
        self.call_masters(req, "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP")
            .await
    }

    /// Deletes a consumer group (configuration and committed offsets) on every master.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let req = RemotingCommand::request(request::DELETE_SUBSCRIPTIONGROUP)
            .with_field("groupName", group);
        self.call_masters(req, "DELETE_SUBSCRIPTIONGROUP").await
    }

    /// Sends the same request to every master; the first refusal is the error.
    async fn call_masters(&self, req: RemotingCommand, operation: &'static str) -> Result<()> {
        for addr in self.masters().await?.values() {
            self.broker_call(addr, req.clone(), operation).await?;
        }
        Ok(())
    }

    /// Sends a copy of a message to `topic` (a group's retry topic re-delivers it to the
    /// group), reconsume count reset.
    pub async fn resend(&self, msg: &MessageExt, topic: &str) -> Result<()> {
        // A group's retry topic may not exist yet; the broker holding the message creates
        // it on the first send to a `%RETRY%` name.
        let route = match self.topic_route(topic).await? {
            Some(r) => r,
            None => self
                .topic_route(&msg.topic)
                .await?
                .ok_or_else(|| ClientError::NoRoute {
                    topic: topic.into(),
                })?,
        };
        let addr = route
            .broker_datas
            .iter()
            .find_map(|b| b.broker_addrs.get(&0).cloned())
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.into(),
            })?;
        let req = RemotingCommand::request(request::SEND_MESSAGE)
            .with_field("producerGroup", "ferromq-admin")
            .with_field("topic", topic)
            .with_field("queueId", 0)
            .with_field(
                "sysFlag",
                msg.sys_flag & ferromq_protocol::message::sys_flag::COMPRESSED,
            )
            .with_field("bornTimestamp", msg.born_timestamp)
            .with_field("flag", msg.flag)
            .with_field("properties", &msg.properties)
            .with_field("reconsumeTimes", 0)
            .with_body(msg.body.clone());
        self.broker_call(&addr, req, "SEND_MESSAGE")
            .await
            .map(|_| ())
    }

    pub fn shutdown(&self) {
        self.instance.close();
    }
}

/// The master address of each broker in a route, by broker name.
pub fn route_masters(route: &TopicRouteData) -> Vec<(String, String)> {
    route
        .broker_datas
        .iter()
        .filter_map(|b| {
            b.broker_addrs
                .get(&0)
                .map(|a| (b.broker_name.clone(), a.clone()))
        })
        .collect()
}

/// (brokerName, address) of the broker to read each broker name's messages from: its
/// master, or while the master is away its lowest-numbered slave (as Apache's pull
/// consumer falls back to a slave), so reads go on without it.
pub fn route_readers(route: &TopicRouteData) -> Vec<(String, String)> {
    route
        .broker_datas
        .iter()
        .filter_map(|b| {
            b.broker_addrs
                .iter()
                .min_by_key(|(id, _)| **id)
                .map(|(_, a)| (b.broker_name.clone(), a.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastjson_queue_maps_parse() {
        let text = r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"brokerOffset":3,"consumerOffset":1},{"brokerName":"b","queueId":1,"topic":"T"}:{"brokerOffset":0,"consumerOffset":0}},"consumeTps":0.0}"#;
        let m = parse_queue_map(text, "offsetTable").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0.queue_id, 0);
        assert_eq!(m[0].1["brokerOffset"], 3);
        let plain = r#"{"offsetTable":{{"brokerName":"b","queueId":2,"topic":"T"}:7}}"#;
        assert_eq!(parse_queue_map(plain, "offsetTable").unwrap()[0].1, 7);
        assert_eq!(
            parse_queue_map(r#"{"offsetTable":{}}"#, "offsetTable").unwrap(),
            vec![]
        );
        assert!(parse_queue_map(r#"{"offsetTable":{{"brokerName":"b""#, "offsetTable").is_err());
        assert!(parse_queue_map("{}", "offsetTable").is_err());
    }
}
