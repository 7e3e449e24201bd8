//! FERROMQ_MESSAGE_LIFE (9003): a message's life from the broker's own records, for a
//! topic and the message's unique id (UNIQ_KEY). The copies the store holds (on the topic;
//! waiting in the delay, timer or transaction topics; sent back to a group's retry or
//! dead-letter topic), and per consumer group whether its commits passed each copy, with
//! the pulls and the commit that the life records ([`crate::life`]) remember.

use std::collections::HashMap;

use ferromq_protocol::code::response;
use ferromq_protocol::message::{self, MessageExt};
use ferromq_protocol::RemotingCommand;
use serde_json::{json, Value};

use crate::topic::{DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};
use crate::Broker;

/// Copies read per topic at most (a message sent back many times has one per retry).
const MAX_COPIES: usize = 64;

fn copy_json(m: &MessageExt) -> Value {
    json!({
        "topic": m.topic,
        "queueId": m.queue_id,
        "queueOffset": m.queue_offset,
        "commitLogOffset": m.commit_log_offset,
        "offsetMsgId": m.offset_msg_id(),
        "storeTimestamp": m.store_timestamp,
        "bornTimestamp": m.born_timestamp,
        "bornHost": m.born_host.to_string(),
        "reconsumeTimes": m.reconsume_times,
        "tags": m.property(message::property::TAGS),
        "keys": m.property(message::property::KEYS),
    })
}

impl Broker {
    /// The records of `topic` indexed under `key`, oldest first.
    fn copies(&self, topic: &str, key: &str) -> Vec<MessageExt> {
        let mut found: Vec<MessageExt> = self
            .store
            .store()
            .query_by_key(topic, key, MAX_COPIES, 0, i64::MAX)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| MessageExt::decode(r).ok().map(|(m, _)| m))
            // the index matches keys too: only the message whose unique id it is
            .filter(|m| m.property(message::property::UNIQ_KEY) == Some(key))
            .collect();
        found.sort_by_key(|m| (m.store_timestamp, m.commit_log_offset));
        found
    }

    /// Copies waiting in `system_topic` for `real_topic` (delays, timers, halves).
    fn waiting_copies(&self, system_topic: &str, real_topic: &str, key: &str) -> Vec<MessageExt> {
        let mut copies = self.copies(system_topic, key);
        copies.retain(|m| m.property(message::property::REAL_TOPIC) == Some(real_topic));
        copies
    }

    /// One group's view of one copy. `client_ids` names the group's connected clients by
    /// address, so reads and commits show who as well as where.
    fn group_copy(
        &self,
        group: &str,
        m: &MessageExt,
        kind: &str,
        client_ids: &HashMap<String, String>,
    ) -> Value {
        let offset = m.queue_offset.max(0) as u64;
        let committed = self.offsets.query(group, &m.topic, m.queue_id);
        let position = self.life.position(group, &m.topic, m.queue_id, offset);
        let inflight = self
            .pop
            .inflight_at(group, &m.topic, m.queue_id, offset)
            .map(|i| {
                json!({
                    "poppedAt": i.pop_time,
                    "visibleAt": i.visible_at,
                    "reconsumeTimes": i.reconsume,
                })
            });
        let mut v = copy_json(m);
        v["kind"] = json!(kind);
        v["committedOffset"] = json!(committed);
        v["consumed"] = json!(committed.is_some_and(|c| c > m.queue_offset));
        let named = |mut v: Value| {
            if let Some(id) = v["client"].as_str().and_then(|a| client_ids.get(a)) {
                v["clientId"] = json!(id);
            }
            v
        };
        v["reads"] = Value::Array(position.reads.iter().map(|r| named(json!(r))).collect());
        v["committedBy"] = position
            .committed_by
            .map_or(Value::Null, |c| named(json!(c)));
        v["rememberedSince"] = json!(position.remembered_since_ms);
        v["inflight"] = json!(inflight);
        v
    }

    pub(crate) fn message_life(&self, req: &RemotingCommand) -> RemotingCommand {
        let (Some(topic), Some(id)) = (req.field("topic"), req.field("msgId")) else {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "topic and msgId (the message's unique id) are required",
            );
        };
        if topic.is_empty() || id.is_empty() {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "topic and msgId must not be empty",
            );
        }
        let stored = self.copies(topic, id);
        let mut waiting = Vec::new();
        for (system_topic, kind) in [
            (crate::schedule::SCHEDULE_TOPIC, "delay"),
            (crate::timer::TIMER_TOPIC, "timer"),
            (crate::transaction::HALF_TOPIC, "transaction"),
        ] {
            for m in self.waiting_copies(system_topic, topic, id) {
                let mut v = copy_json(&m);
                v["kind"] = json!(kind);
                v["delayLevel"] = json!(m
                    .property(message::property::DELAY)
                    .and_then(|l| l.parse::<i32>().ok()));
                v["deliverAt"] = json!(m
                    .property(message::property::TIMER_DELIVER_MS)
                    .and_then(|t| t.parse::<i64>().ok()));
                // Its copy on the topic is what firing (or a commit) stored.
                v["fired"] = json!(!stored.is_empty());
                waiting.push(v);
            }
        }
        let mut groups: Vec<String> = self.offsets.groups_of_topic(topic);
        groups.extend(self.life.groups_of(topic));
        groups.sort();
        groups.dedup();
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| {
                let client_ids: HashMap<String, String> = self
                    .clients
                    .consumer_channels(g)
                    .into_iter()
                    .map(|c| (c.conn.peer().to_string(), c.client_id))
                    .collect();
                let mut copies: Vec<Value> = stored
                    .iter()
                    .map(|m| self.group_copy(g, m, "original", &client_ids))
                    .collect();
                let retry_topic = format!("{RETRY_GROUP_TOPIC_PREFIX}{g}");
                let dlq_topic = format!("{DLQ_GROUP_TOPIC_PREFIX}{g}");
                copies.extend(
                    self.copies(&retry_topic, id)
                        .iter()
                        .map(|m| self.group_copy(g, m, "retry", &client_ids)),
                );
                copies.extend(
                    self.copies(&dlq_topic, id)
                        .iter()
                        .map(|m| self.group_copy(g, m, "dlq", &client_ids)),
                );
                // Sent back and waiting for the retry's delay level.
                let retry_waiting: Vec<Value> = self
                    .waiting_copies(crate::schedule::SCHEDULE_TOPIC, &retry_topic, id)
                    .iter()
                    .map(|m| {
                        let mut v = copy_json(m);
                        v["delayLevel"] = json!(m
                            .property(message::property::DELAY)
                            .and_then(|l| l.parse::<i32>().ok()));
                        v
                    })
                    .collect();
                json!({ "group": g, "copies": copies, "retryWaiting": retry_waiting })
            })
            .collect();
        let body = json!({
            "topic": topic,
            "msgId": id,
            "recording": self.life.enabled(),
            "since": self.life.since_ms(),
            "stored": stored.iter().map(copy_json).collect::<Vec<_>>(),
            "waiting": waiting,
            "groups": groups,
        });
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body.to_string())
    }
}
