//! What Apache's tools read to show a topic, a queue or a group: GET_TOPIC_CONFIG (351),
//! QUERY_CONSUME_QUEUE (321), GET_BROKER_CONSUME_STATS (317), VIEW_BROKER_STATS_DATA
//! (315), QUERY_TOPIC_CONSUME_BY_WHO (300), QUERY_TOPICS_BY_CONSUMER (343),
//! GET_SYSTEM_TOPIC_LIST_FROM_BROKER (305) and GET_SUBSCRIPTIONGROUP_CONFIG (352).

use ferromq_protocol::body::fastjson_queue_map;
use ferromq_protocol::code::response;
use ferromq_protocol::header::{
    GetConsumeStatsInBrokerHeader, GetSubscriptionGroupConfigRequestHeader,
    QueryConsumeQueueRequestHeader, QueryTopicsByConsumerRequestHeader, TopicRequestHeader,
    ViewBrokerStatsDataRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use serde_json::json;

use super::header;
use crate::topic::RETRY_GROUP_TOPIC_PREFIX;
use crate::Broker;

/// Entries one QUERY_CONSUME_QUEUE returns at most.
const MAX_QUEUE_ENTRIES: usize = 1024;

impl Broker {
    pub(crate) fn topic_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<TopicRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        match self.topics.get(&h.topic) {
            // Apache answers a TopicConfigAndQueueMapping; without static queue mapping it is
            // the topic's config alone.
            Some(config) => RemotingCommand::response_to(req, response::SUCCESS)
                .with_body(serde_json::to_vec(&config).expect("topic config serializes")),
            None => RemotingCommand::error_response(
                req,
                response::TOPIC_NOT_EXIST,
                format!("No topic in this broker. topic: {}", h.topic),
            ),
        }
    }

    pub(crate) fn query_consume_queue(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<QueryConsumeQueueRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let in_range = self.topics.get(&h.topic).is_some_and(|t| {
            h.queue_id >= 0 && h.queue_id < t.read_queue_nums.max(t.write_queue_nums)
        });
        if !in_range {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("{}-{} not exist!", h.topic, h.queue_id),
            );
        }
        let store = self.store.store();
        let subscription = h
            .consumer_group
            .as_deref()
            .and_then(|g| self.clients.subscription(g, &h.topic));
        let count = usize::try_from(h.count).unwrap_or(0).min(MAX_QUEUE_ENTRIES);
        let entries = match store.queue_entries(&h.topic, h.queue_id, h.index.max(0) as u64, count)
        {
            Ok(e) => e,
            Err(e) => {
                return RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string())
            }
        };
        let queue_data: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "physicOffset": e.phys,
                    "physicSize": e.size,
                    "tagsCode": e.tag,
                    "eval": false,
                })
            })
            .collect();
        let mut body = json!({
            "queueData": queue_data,
            "maxQueueIndex": store.max_offset(&h.topic, h.queue_id),
            "minQueueIndex": store.min_offset(&h.topic, h.queue_id),
        });
        if let Some(sub) = subscription {
            body["subscriptionData"] = serde_json::to_value(sub).expect("subscription serializes");
        }
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&body).expect("consume queue body serializes"))
    }

    /// Every group with offsets here and its lag per topic, as Apache's
    /// `fetchAllConsumeStatsInBroker` (`mqadmin brokerConsumeStats`).
    pub(crate) fn broker_consume_stats(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<GetConsumeStatsInBrokerHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let only_orderly = h.is_order.unwrap_or(false);
        let mut total_diff: i64 = 0;
        let mut groups_json = Vec::new();
        for group in self.offsets.groups() {
            if only_orderly
                && !self.groups.get(&group).is_some_and(|g| {
                    g.other
                        .get("consumeMessageOrderly")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false)
                })
            {
                continue;
            }
            let mut topics = self.offsets.topics_of_group(&group);
            topics.sort();
            let mut stats = Vec::new();
            for topic in topics {
                if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) || self.topics.get(&topic).is_none()
                {
                    continue;
                }
                let table = self.group_offset_table(&group, std::slice::from_ref(&topic));
                total_diff += table
                    .iter()
                    .map(|(_, o)| (o.broker_offset - o.consumer_offset).max(0))
                    .sum::<i64>();
                let entries: Vec<_> = table.into_iter().map(|(mq, o)| (mq, o.to_json())).collect();
                stats.push(fastjson_queue_map(
                    "offsetTable",
                    &entries,
                    r#","consumeTps":0.0"#,
                ));
            }
            if !stats.is_empty() {
                groups_json.push(format!(
                    "{{{}:[{}]}}",
                    serde_json::to_string(&group).expect("group name serializes"),
                    stats.join(",")
                ));
            }
        }
        let body = format!(
            r#"{{"brokerAddr":{},"consumeStatsList":[{}],"totalDiff":{total_diff},"totalInflightDiff":0}}"#,
            serde_json::to_string(&self.config().advertised_addr()).expect("address serializes"),
            groups_json.join(",")
        );
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body)
    }

    pub(crate) fn view_broker_stats(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ViewBrokerStatsDataRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        match self
            .stats
            .view(&h.stats_name, &h.stats_key, crate::now_ms())
        {
            Some(data) => RemotingCommand::response_to(req, response::SUCCESS)
                .with_body(serde_json::to_vec(&data).expect("stats serialize")),
            None => RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("The stats <{}> <{}> not exist", h.stats_name, h.stats_key),
            ),
        }
    }

    /// Groups that consume a topic: those online with a subscription to it and those with
    /// offsets on it.
    pub(crate) fn topic_consumed_by(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<TopicRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let mut groups = self.clients.groups_subscribed_to(&h.topic);
        groups.extend(self.offsets.groups_of_topic(&h.topic));
        groups.sort();
        groups.dedup();
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(json!({ "groupList": groups }).to_string())
    }

    /// Topics a group consumes: its subscriptions and the topics it has offsets on.
    pub(crate) fn topics_consumed_by_group(&self, req: &RemotingCommand) -> RemotingCommand {
        // Apache's header names the group `group` (QueryTopicsByConsumerRequestHeader).
        let h = match header::<QueryTopicsByConsumerRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let mut topics: Vec<String> = self
            .clients
            .subscriptions(&h.group)
            .into_iter()
            .map(|s| s.topic)
            .chain(self.offsets.topics_of_group(&h.group))
            .collect();
        topics.sort();
        topics.dedup();
        RemotingCommand::response_to(req, response::SUCCESS).with_body(
            json!({ "topicList": topics, "brokerAddr": self.config().advertised_addr() })
                .to_string(),
        )
    }

    /// The topics this broker carries for itself ([`crate::topic::SystemTopics`]).
    pub(crate) fn system_topic_list(&self, req: &RemotingCommand) -> RemotingCommand {
        let config = self.config();
        let topics = crate::system_topics(&config).names();
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(json!({ "topicList": topics }).to_string())
    }

    /// A group's configuration; as Apache's `findSubscriptionGroupConfig`, looking up an
    /// unknown group creates it when `autoCreateSubscriptionGroup` is on.
    pub(crate) fn group_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<GetSubscriptionGroupConfigRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if self.config().auto_create_subscription_group {
            if let Err(e) = self.groups.ensure(&h.group) {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("persisting the group failed: {e}"),
                );
            }
        }
        match self.groups.get(&h.group) {
            Some(config) => RemotingCommand::response_to(req, response::SUCCESS)
                .with_body(serde_json::to_vec(&config).expect("group config serializes")),
            None => RemotingCommand::error_response(
                req,
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                "No group in this broker",
            ),
        }
    }
}
