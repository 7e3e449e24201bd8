//! Consumer-group administration: CHECK_CLIENT_CONFIG, INVOKE_BROKER_TO_RESET_OFFSET
//! (which tells live clients with RESET_CONSUMER_CLIENT_OFFSET), GET_CONSUME_STATS,
//! GET_TOPIC_STATS_INFO, GET_CONSUMER_CONNECTION_LIST, GET_PRODUCER_CONNECTION_LIST and
//! GET_CONSUMER_RUNNING_INFO (forwarded to the client).

use std::time::Duration;

use ferromq_protocol::body::{fastjson_queue_map, CheckClientConfigBody, MessageQueue};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, ConsumeMessageDirectlyRequestHeader, ConsumerGroupRequestHeader,
    GetConsumeStatsRequestHeader, GetConsumerRunningInfoRequestHeader, ProducerGroupRequestHeader,
    ResetOffsetRequestHeader, TopicRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use serde_json::json;
use tracing::info;

use super::header;
use super::pull::SQL_DISABLED;
use crate::filter::MessageFilter;
use crate::Broker;

/// How long a forwarded request waits for the client.
const CLIENT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One queue's row in a group's consume stats (Apache's `OffsetWrapper`).
pub(crate) struct QueueProgress {
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub last_timestamp: i64,
}

impl QueueProgress {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({"brokerOffset": self.broker_offset, "consumerOffset": self.consumer_offset,
               "pullOffset": self.consumer_offset, "lastTimestamp": self.last_timestamp})
    }
}

impl Broker {
    /// The group's progress on every queue of `topics`.
    pub(crate) fn group_offset_table(
        &self,
        group: &str,
        topics: &[String],
    ) -> Vec<(MessageQueue, QueueProgress)> {
        let store = self.store.store();
        let mut table = Vec::new();
        for topic in topics {
            for mq in self.queues_of(topic) {
                let broker_offset = store.max_offset(topic, mq.queue_id) as i64;
                let consumer_offset = self.offsets.query(group, topic, mq.queue_id).unwrap_or(0);
                let last_timestamp = if consumer_offset > 0 {
                    store
                        .queue_entries(topic, mq.queue_id, (consumer_offset - 1) as u64, 1)
                        .ok()
                        .and_then(|e| e.first().map(|e| e.store_ms))
                        .unwrap_or(0)
                } else {
                    0
                };
                table.push((
                    mq,
                    QueueProgress {
                        broker_offset,
                        consumer_offset,
                        last_timestamp,
                    },
                ));
            }
        }
        table
    }

    fn queues_of(&self, topic: &str) -> Vec<MessageQueue> {
        let n = self
            .topics
            .get(topic)
            .map_or(0, |t| t.read_queue_nums.max(t.write_queue_nums));
        (0..n)
            .map(|queue_id| MessageQueue {
                topic: topic.to_string(),
                broker_name: self.config().broker_name.clone(),
                queue_id,
            })
            .collect()
    }

    pub(crate) fn check_client_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: CheckClientConfigBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("invalid body: {e}"),
                )
            }
        };
        let sub = &body.subscription_data;
        match MessageFilter::compile(&sub.expression_type, &sub.sub_string) {
            Ok(MessageFilter::Sql(_)) if !self.config().enable_property_filter => {
                RemotingCommand::error_response(req, response::SYSTEM_ERROR, SQL_DISABLED)
            }
            Ok(_) => RemotingCommand::response_to(req, response::SUCCESS),
            Err(e) => RemotingCommand::error_response(
                req,
                response::SUBSCRIPTION_PARSE_FAILED,
                e.to_string(),
            ),
        }
    }

    /// Moves a group's offsets on a topic to the first message stored at or after a time
    /// (or only backwards unless forced), then tells the group's live clients.
    pub(crate) async fn reset_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ResetOffsetRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if self.topics.get(&h.topic).is_none() {
            return RemotingCommand::error_response(
                req,
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist", h.topic),
            );
        }
        let store = self.store.store();
        let force = h.is_force.unwrap_or(true);
        let mut table = Vec::new();
        for mq in self.queues_of(&h.topic) {
            // -1 is `skipAccumulatedMessage`: Apache reads it as the queue's end, not a time.
            let found = if h.timestamp == -1 {
                Ok(store.max_offset(&h.topic, mq.queue_id))
            } else {
                store.search_offset_by_time(&h.topic, mq.queue_id, h.timestamp)
            };
            let target = match found {
                Ok(o) => o as i64,
                Err(e) => {
                    return RemotingCommand::error_response(
                        req,
                        response::SYSTEM_ERROR,
                        e.to_string(),
                    )
                }
            };
            let current = self.offsets.query(&h.group, &h.topic, mq.queue_id);
            let offset = match current {
                Some(c) if !force && c < target => c,
                _ => target,
            };
            self.offsets.commit(&h.group, &h.topic, mq.queue_id, offset);
            table.push((mq, offset));
        }
        let body = fastjson_queue_map("offsetTable", &table, "");
        let conns = self.clients.consumer_connections(&h.group);
        info!(group = %h.group, topic = %h.topic, timestamp = h.timestamp, clients = conns.len(), "consumer offsets reset");
        for conn in conns {
            let mut notify = RemotingCommand::request(request::RESET_CONSUMER_CLIENT_OFFSET)
                .with_body(body.clone());
            h.encode(&mut notify.ext_fields);
            notify.language = ferromq_protocol::LanguageCode::Java;
            let _ = conn.invoke_oneway(notify).await;
        }
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body)
    }

    pub(crate) fn consume_stats(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<GetConsumeStatsRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        // As Apache: the topics the group has offsets on (and, before its first commit, the
        // ones it subscribes to), leaving out those an online group no longer subscribes to.
        let subscribed: Vec<String> = self
            .clients
            .subscriptions(&h.consumer_group)
            .into_iter()
            .map(|s| s.topic)
            .collect();
        let mut topics: Vec<String> = match h.topic.filter(|t| !t.is_empty()) {
            Some(t) => vec![t],
            None => {
                let mut all = self.offsets.topics_of_group(&h.consumer_group);
                all.extend(subscribed.iter().cloned());
                all.retain(|t| subscribed.is_empty() || subscribed.contains(t));
                all
            }
        };
        topics.retain(|t| self.topics.get(t).is_some());
        topics.sort();
        topics.dedup();
        let table: Vec<_> = self
            .group_offset_table(&h.consumer_group, &topics)
            .into_iter()
            .map(|(mq, o)| (mq, o.to_json()))
            .collect();
        let body = fastjson_queue_map("offsetTable", &table, r#","consumeTps":0.0"#);
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body)
    }

    pub(crate) fn topic_stats(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<TopicRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if self.topics.get(&h.topic).is_none() {
            return RemotingCommand::error_response(
                req,
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist", h.topic),
            );
        }
        let store = self.store.store();
        let table: Vec<_> = self
            .queues_of(&h.topic)
            .into_iter()
            .map(|mq| {
                let max = store.max_offset(&h.topic, mq.queue_id);
                let last = if max > 0 {
                    store.queue_entries(&h.topic, mq.queue_id, max - 1, 1).ok().and_then(|e| e.first().map(|e| e.store_ms))
                } else {
                    None
                };
                let stats = json!({"minOffset": store.min_offset(&h.topic, mq.queue_id), "maxOffset": max,
                                   "lastUpdateTimestamp": last.unwrap_or(0)});
                (mq, stats)
            })
            .collect();
        RemotingCommand::response_to(req, response::SUCCESS).with_body(fastjson_queue_map(
            "offsetTable",
            &table,
            "",
        ))
    }

    pub(crate) fn consumer_connections(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ConsumerGroupRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let channels = self.clients.consumer_channels(&h.consumer_group);
        let front = self.clients.front_consumers(&h.consumer_group);
        let settings = match self.clients.settings(&h.consumer_group) {
            Some(s) if !channels.is_empty() => s,
            // Only 5.x (POP) consumers: Apache's proxy registers them this way.
            _ if !front.is_empty() => crate::client::ConsumerGroupSettings {
                consume_type: match &front[0].role {
                    crate::client::FrontClientRole::Consumer { consume_type, .. } => {
                        consume_type.to_string()
                    }
                    crate::client::FrontClientRole::Producer { .. } => String::new(),
                },
                message_model: "CLUSTERING".into(),
                consume_from_where: "CONSUME_FROM_LAST_OFFSET".into(),
            },
            _ => {
                return RemotingCommand::error_response(
                    req,
                    response::CONSUMER_NOT_ONLINE,
                    format!("the consumer group[{}] not online", h.consumer_group),
                )
            }
        };
        let connections: Vec<_> = channels
            .iter()
            .map(connection_json)
            .chain(front.iter().map(front_connection_json))
            .collect();
        let mut subscriptions: serde_json::Map<String, serde_json::Value> = self
            .clients
            .subscriptions(&h.consumer_group)
            .into_iter()
            .map(|s| {
                (
                    s.topic.clone(),
                    serde_json::to_value(&s).expect("subscription serializes"),
                )
            })
            .collect();
        for c in &front {
            if let crate::client::FrontClientRole::Consumer {
                subscriptions: subs,
                ..
            } = &c.role
            {
                for s in subs {
                    subscriptions.entry(s.topic.clone()).or_insert_with(|| {
                        serde_json::to_value(s).expect("subscription serializes")
                    });
                }
            }
        }
        let body = json!({
            "connectionSet": connections,
            "subscriptionTable": subscriptions,
            "consumeType": settings.consume_type,
            "messageModel": settings.message_model,
            "consumeFromWhere": settings.consume_from_where,
        });
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body.to_string())
    }

    pub(crate) fn producer_connections(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ProducerGroupRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let connections: Vec<_> = self
            .clients
            .producer_channels(&h.producer_group)
            .iter()
            .map(connection_json)
            .chain(
                self.clients
                    .front_producers(&h.producer_group)
                    .iter()
                    .map(front_connection_json),
            )
            .collect();
        if connections.is_empty() {
            // Apache's wording; its tools print it as the reason.
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("the producer group[{}] not exist", h.producer_group),
            );
        }
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(json!({ "connectionSet": connections }).to_string())
    }

    /// CONSUME_MESSAGE_DIRECTLY: reads the message by its offset id and has the named
    /// consumer consume it, relaying its ConsumeMessageDirectlyResult (Apache's
    /// `AdminBrokerProcessor.consumeMessageDirectly`).
    pub(crate) async fn consume_message_directly(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ConsumeMessageDirectlyRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let client_id = h.client_id.clone().unwrap_or_default();
        let record = h
            .msg_id
            .as_deref()
            .and_then(ferromq_protocol::message::decode_offset_msg_id)
            .and_then(|(_, phys)| self.store.store().read_message(phys as u64).ok().flatten());
        let Some(record) = record else {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!(
                    "no message with id {:?} on this broker",
                    h.msg_id.unwrap_or_default()
                ),
            );
        };
        if let Some(channel) = self.consumer_channel(&h.consumer_group, &client_id) {
            let mut forward =
                RemotingCommand::request(request::CONSUME_MESSAGE_DIRECTLY).with_body(record);
            forward.ext_fields = req.ext_fields.clone();
            forward
                .ext_fields
                .insert("brokerName".into(), self.config().broker_name.clone());
            return relay(req, &channel, forward).await;
        }
        let Ok((message, _)) = ferromq_protocol::message::MessageExt::decode(&record) else {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "the stored message does not decode",
            );
        };
        let fronts = self.client_fronts();
        let Some(asked) = fronts
            .iter()
            .find_map(|f| f.verify_message(&client_id, message.clone()))
        else {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!(
                    "The Consumer <{}> <{client_id}> not online",
                    h.consumer_group
                ),
            );
        };
        front_answer(req, asked, "the client did not answer in time", |result| {
            json!({
                "order": false,
                "autoCommit": true,
                "consumeResult": result,
                "remark": "from gRPC client",
                "spentTimeMills": 0,
            })
        })
        .await
    }

    /// Forwards GET_CONSUMER_RUNNING_INFO to the named client and relays its answer.
    pub(crate) async fn consumer_running_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<GetConsumerRunningInfoRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if let Some(channel) = self.consumer_channel(&h.consumer_group, &h.client_id) {
            let mut forward = RemotingCommand::request(request::GET_CONSUMER_RUNNING_INFO);
            h.encode(&mut forward.ext_fields);
            return relay(req, &channel, forward).await;
        }
        // Another front's client answers with its thread stacks, as Apache's proxy relays
        // them (PrintThreadStackTraceCommand) in `jstack`.
        let fronts = self.client_fronts();
        let Some(asked) = fronts.iter().find_map(|f| f.thread_stack(&h.client_id)) else {
            return RemotingCommand::error_response(
                req,
                response::CONSUMER_NOT_ONLINE,
                format!(
                    "the consumer <{}> <{}> not online",
                    h.consumer_group, h.client_id
                ),
            );
        };
        let late = "the client did not answer with its thread stacks in time";
        front_answer(req, asked, late, |jstack| {
            json!({
                "properties": {},
                "subscriptionSet": [],
                "mqTable": {},
                "statusTable": {},
                "userConsumerInfo": {},
                "jstack": jstack,
            })
        })
        .await
    }

    /// The remoting connection of one consumer of a group.
    fn consumer_channel(
        &self,
        group: &str,
        client_id: &str,
    ) -> Option<crate::client::ClientChannel> {
        self.clients
            .consumer_channels(group)
            .into_iter()
            .find(|c| c.client_id == client_id)
    }

    fn client_fronts(&self) -> Vec<std::sync::Arc<dyn crate::client::ClientFront>> {
        self.client_fronts
            .read()
            .expect("client fronts lock")
            .clone()
    }
}

/// Sends `forward` to a remoting client and relays its answer to `req`.
async fn relay(
    req: &RemotingCommand,
    channel: &crate::client::ClientChannel,
    mut forward: RemotingCommand,
) -> RemotingCommand {
    forward.language = ferromq_protocol::LanguageCode::Java;
    match channel.conn.invoke(forward, CLIENT_CALL_TIMEOUT).await {
        Ok(resp) => {
            let mut out = RemotingCommand::response_to(req, resp.code).with_body(resp.body);
            out.remark = resp.remark;
            out
        }
        Err(e) => RemotingCommand::error_response(
            req,
            response::SYSTEM_ERROR,
            format!("asking the client failed: {e}"),
        ),
    }
}

/// Waits (bounded) for another front's client to answer; `body` builds the reply's JSON.
async fn front_answer<T>(
    req: &RemotingCommand,
    asked: tokio::sync::oneshot::Receiver<Result<T, String>>,
    late: &str,
    body: impl FnOnce(T) -> serde_json::Value,
) -> RemotingCommand {
    match tokio::time::timeout(CLIENT_CALL_TIMEOUT, asked).await {
        Ok(Ok(Ok(answer))) => {
            RemotingCommand::response_to(req, response::SUCCESS).with_body(body(answer).to_string())
        }
        Ok(Ok(Err(why))) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, why),
        _ => RemotingCommand::error_response(req, response::SYSTEM_ERROR, late),
    }
}

impl Broker {
    pub(crate) fn all_group_configs(&self, req: &RemotingCommand) -> RemotingCommand {
        // Groups that only ever committed offsets or heartbeated are listed too.
        let mut table = self.groups.all();
        for g in self
            .clients
            .consumer_groups()
            .into_iter()
            .chain(self.offsets.groups())
        {
            table
                .entry(g.clone())
                .or_insert_with(|| crate::groups::SubscriptionGroupConfig::new(&g));
        }
        let body = json!({
            "subscriptionGroupTable": table,
            "dataVersion": {"timestamp": crate::now_ms(), "counter": table.len()},
        });
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body.to_string())
    }

    pub(crate) fn update_group(&self, req: &RemotingCommand) -> RemotingCommand {
        let config: crate::groups::SubscriptionGroupConfig = match serde_json::from_slice(&req.body)
        {
            Ok(c) => c,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("invalid group config: {e}"),
                )
            }
        };
        if let Err(why) = check_group_name(&config.group_name) {
            return RemotingCommand::error_response(req, response::INVALID_PARAMETER, why);
        }
        match self.groups.upsert(config) {
            Ok(()) => RemotingCommand::response_to(req, response::SUCCESS),
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (225): many groups in one write; every
    /// name is checked before any group is stored.
    pub(crate) fn update_group_list(&self, req: &RemotingCommand) -> RemotingCommand {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct GroupList {
            group_config_list: Vec<crate::groups::SubscriptionGroupConfig>,
        }
        let list: GroupList = match serde_json::from_slice(&req.body) {
            Ok(l) => l,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::INVALID_PARAMETER,
                    format!("the group list body is malformed: {e}"),
                )
            }
        };
        for config in &list.group_config_list {
            if let Err(why) = check_group_name(&config.group_name) {
                return RemotingCommand::error_response(
                    req,
                    response::INVALID_PARAMETER,
                    format!("group {:?}: {why}", config.group_name),
                );
            }
        }
        match self.groups.upsert_all(list.group_config_list) {
            Ok(()) => RemotingCommand::response_to(req, response::SUCCESS),
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    pub(crate) fn delete_group(&self, req: &RemotingCommand) -> RemotingCommand {
        let Some(group) = req.field("groupName").map(str::to_string) else {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "the header field 'groupName' is required",
            );
        };
        self.offsets.remove_group(&group);
        match self.groups.delete(&group) {
            Ok(_) => RemotingCommand::response_to(req, response::SUCCESS),
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }
}

fn check_group_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 120 {
        return Err("the group name must have 1 to 120 characters");
    }
    Ok(())
}

/// Another front's client as Apache's `Connection` JSON. Apache's proxy cannot map a 5.x
/// client's version string ("5.2.0") to its numeric versions and reports its own; so does
/// FerroMQ, and adds the string as `clientVersion`.
fn front_connection_json(c: &crate::client::FrontClient) -> serde_json::Value {
    json!({
        "clientId": c.client_id,
        "clientAddr": c.addr,
        "language": c.language,
        "version": ferromq_protocol::CURRENT_VERSION,
        "clientVersion": c.version,
        "front": "gRPC",
    })
}

fn connection_json(c: &crate::client::ClientChannel) -> serde_json::Value {
    json!({
        "clientId": c.client_id,
        "clientAddr": c.conn.peer().to_string(),
        "language": c.language.name(),
        "version": c.version,
    })
}
