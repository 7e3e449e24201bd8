//! What a remoting request asks of which resources, as Apache's
//! `DefaultAuthorizationContextBuilder` reads it: explicit rules for the client's hot
//! codes, and for the rest each request header's `@RocketMQAction` (its actions) and
//! `@RocketMQResource` fields (its topics and groups). A code Apache gives no rule needs
//! only authentication — except the mutating admin codes listed in [`STRICTER`], where
//! FerroMQ asks for `Cluster:<cluster>` Update (Apache lets any signed user run them).

use ferromq_protocol::body::HeartbeatData;
use ferromq_protocol::code::request;
use ferromq_protocol::RemotingCommand;
use serde::Deserialize;

use super::model::{Action, ResourceType};
use crate::topic::RETRY_GROUP_TOPIC_PREFIX;

const DLQ_PREFIX: &str = "%DLQ%";

/// One resource a request touches and the actions it needs there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub kind: ResourceType,
    pub name: String,
    pub actions: &'static [Action],
}

use Action::{Create, Delete, Get, Pub, Sub, Update};
use ResourceType::{Cluster, Group, Topic};

/// Header-declared rules: code, actions, then `(field, type, splitter)` per resource field;
/// with no field, a `Cluster` rule names the broker's cluster.
type Rule = (
    i32,
    &'static [Action],
    &'static [(&'static str, ResourceType, Option<char>)],
);

#[rustfmt::skip]
const RULES: &[Rule] = &[
    (request::ACK_MESSAGE, &[Sub], &[("consumerGroup", Group, None), ("topic", Topic, None)]),
    (request::CHANGE_MESSAGE_INVISIBLETIME, &[Sub], &[("consumerGroup", Group, None), ("topic", Topic, None)]),
    (request::NOTIFICATION, &[Sub], &[("consumerGroup", Group, None), ("topic", Topic, None)]),
    (request::POP_MESSAGE, &[Sub], &[("consumerGroup", Group, None), ("topic", Topic, None)]),
    (request::PEEK_MESSAGE, &[Sub], &[("topic", Topic, None), ("consumerGroup", Group, None)]),
    (request::POLLING_INFO, &[Get], &[("consumerGroup", Group, None), ("topic", Topic, None)]),
    (request::CONSUME_MESSAGE_DIRECTLY, &[Sub], &[("consumerGroup", Group, None), ("topic", Topic, None)]),
    (request::CLONE_GROUP_OFFSET, &[Update], &[("destGroup", Group, None), ("topic", Topic, None)]),
    (request::UPDATE_AND_CREATE_TOPIC, &[Create], &[("topic", Topic, None)]),
    (request::DELETE_TOPIC_IN_BROKER, &[Delete], &[("topic", Topic, None)]),
    (request::DELETE_SUBSCRIPTIONGROUP, &[Delete], &[("groupName", Group, None)]),
    (request::GET_CONSUME_STATS, &[Get], &[("consumerGroup", Group, None), ("topic", Topic, None), ("topicList", Topic, Some(';'))]),
    (request::GET_CONSUMER_CONNECTION_LIST, &[Get], &[("consumerGroup", Group, None)]),
    (request::GET_CONSUMER_RUNNING_INFO, &[Get], &[("consumerGroup", Group, None)]),
    (request::INVOKE_BROKER_TO_GET_CONSUMER_STATUS, &[Get], &[("topic", Topic, None), ("group", Group, None)]),
    (request::INVOKE_BROKER_TO_RESET_OFFSET, &[Update], &[("group", Group, None), ("topic", Topic, None)]),
    (request::GET_EARLIEST_MSG_STORETIME, &[Get], &[("topic", Topic, None)]),
    (request::GET_MAX_OFFSET, &[Get], &[("topic", Topic, None)]),
    (request::GET_MIN_OFFSET, &[Get], &[("topic", Topic, None)]),
    (request::SEARCH_OFFSET_BY_TIMESTAMP, &[Get], &[("topic", Topic, None)]),
    (request::GET_TOPIC_CONFIG, &[Get], &[("topic", Topic, None)]),
    (request::GET_TOPIC_STATS_INFO, &[Get], &[("topic", Topic, None)]),
    (request::QUERY_TOPIC_CONSUME_BY_WHO, &[Get], &[("topic", Topic, None)]),
    (request::VIEW_MESSAGE_BY_ID, &[Get], &[("topic", Topic, None)]),
    (request::GET_SUBSCRIPTIONGROUP_CONFIG, &[Get], &[("group", Group, None)]),
    (request::QUERY_CONSUME_QUEUE, &[Get], &[("topic", Topic, None), ("consumerGroup", Group, None)]),
    (request::QUERY_CONSUME_TIME_SPAN, &[Get], &[("topic", Topic, None), ("group", Group, None)]),
    (request::QUERY_SUBSCRIPTION_BY_CONSUMER, &[Get], &[("group", Group, None), ("topic", Topic, None)]),
    (request::QUERY_TOPICS_BY_CONSUMER, &[Get], &[("group", Group, None)]),
    (request::RECALL_MESSAGE, &[Pub], &[("topic", Topic, None)]),
    (request::RESUME_CHECK_HALF_MESSAGE, &[Update], &[("topic", Topic, None)]),
    (request::UPDATE_AND_GET_GROUP_FORBIDDEN, &[Update], &[("group", Group, None), ("topic", Topic, None)]),
    (request::EXCHANGE_BROKER_HA_INFO, &[Update], &[]),
    (request::NOTIFY_BROKER_ROLE_CHANGED, &[Update], &[]),
    (request::GET_ALL_PRODUCER_INFO, &[Get], &[]),
    (request::GET_BROKER_CONSUME_STATS, &[Get], &[]),
    (request::GET_PRODUCER_CONNECTION_LIST, &[Get], &[]),
    (request::VIEW_BROKER_STATS_DATA, &[Get], &[]),
    (request::AUTH_CREATE_USER, &[Update], &[]),
    (request::AUTH_UPDATE_USER, &[Update], &[]),
    (request::AUTH_DELETE_USER, &[Update], &[]),
    (request::AUTH_GET_USER, &[Get], &[]),
    (request::AUTH_LIST_USER, &[Get], &[]),
    (request::AUTH_CREATE_ACL, &[Update], &[]),
    (request::AUTH_UPDATE_ACL, &[Update], &[]),
    (request::AUTH_DELETE_ACL, &[Update], &[]),
    (request::AUTH_GET_ACL, &[Get], &[]),
    (request::AUTH_LIST_ACL, &[Get], &[]),
];

/// Mutating admin codes with no header rule in Apache (so any signed user may call them
/// there; the 5.5.1 batch deletes included); FerroMQ asks for `Cluster:<cluster>` Update.
pub const STRICTER: &[i32] = &[
    request::UPDATE_AND_CREATE_TOPIC_LIST,
    request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST,
    request::UPDATE_BROKER_CONFIG,
    request::CLEAN_EXPIRED_CONSUMEQUEUE,
    request::DELETE_EXPIRED_COMMITLOG,
    request::CLEAN_UNUSED_TOPIC,
    request::DELETE_TOPIC_IN_BROKER_LIST,
    request::DELETE_SUBSCRIPTION_GROUP_LIST,
];

fn is_retry(topic: &str) -> bool {
    topic.starts_with(RETRY_GROUP_TOPIC_PREFIX)
}

/// A group resource by its name or its retry or dead-letter topic.
fn group(name: &str, actions: &'static [Action]) -> Need {
    let name = name
        .strip_prefix(RETRY_GROUP_TOPIC_PREFIX)
        .or_else(|| name.strip_prefix(DLQ_PREFIX))
        .unwrap_or(name);
    Need {
        kind: Group,
        name: name.to_string(),
        actions,
    }
}

fn topic(name: &str, actions: &'static [Action]) -> Need {
    Need {
        kind: Topic,
        name: name.to_string(),
        actions,
    }
}

/// A topic field: a retry topic stands for its group.
fn topic_or_retry_group(name: &str, actions: &'static [Action]) -> Need {
    if is_retry(name) {
        group(name, actions)
    } else {
        topic(name, actions)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueSetBody {
    consumer_group: String,
    #[serde(default)]
    mq_set: Vec<QueueRef>,
}

#[derive(Deserialize)]
struct QueueRef {
    #[serde(default)]
    topic: String,
}

/// The resources `req` touches, each with the actions it needs; `cluster` names the
/// `Cluster` resource.
///
/// # Errors
/// A body the rule must read is malformed.
pub fn needs(req: &RemotingCommand, cluster: &str) -> Result<Vec<Need>, String> {
    let field = |name: &str| req.field(name).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    let send = |out: &mut Vec<Need>, topic_key: &str, group_key: &str| {
        if let Some(t) = field(topic_key) {
            out.push(if is_retry(t) {
                group(field(group_key).unwrap_or(t), &[Sub])
            } else {
                topic(t, &[Pub])
            });
        }
    };
    match req.code {
        request::SEND_MESSAGE | request::SEND_REPLY_MESSAGE => send(&mut out, "topic", "group"),
        request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE | request::SEND_REPLY_MESSAGE_V2 => {
            send(&mut out, "b", "a")
        }
        request::END_TRANSACTION => out.extend(field("topic").map(|t| topic(t, &[Pub]))),
        request::CONSUMER_SEND_MSG_BACK => out.extend(field("group").map(|g| group(g, &[Sub]))),
        request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => {
            out.extend(
                field("topic")
                    .filter(|t| !is_retry(t))
                    .map(|t| topic(t, &[Sub])),
            );
            out.extend(field("consumerGroup").map(|g| group(g, &[Sub])));
        }
        request::QUERY_MESSAGE => out.extend(field("topic").map(|t| topic(t, &[Sub, Get]))),
        request::HEART_BEAT => {
            let data: HeartbeatData = serde_json::from_slice(&req.body)
                .map_err(|e| format!("the heartbeat body is not valid: {e}"))?;
            for consumer in data.consumer_data_set {
                out.push(group(&consumer.group_name, &[Sub]));
                for sub in consumer.subscription_data_set {
                    if !is_retry(&sub.topic) {
                        out.push(topic(&sub.topic, &[Sub]));
                    }
                }
            }
        }
        request::UNREGISTER_CLIENT => out.extend(field("consumerGroup").map(|g| group(g, &[Sub]))),
        request::GET_CONSUMER_LIST_BY_GROUP => {
            out.extend(field("consumerGroup").map(|g| group(g, &[Sub, Get])))
        }
        request::QUERY_CONSUMER_OFFSET | request::UPDATE_CONSUMER_OFFSET => {
            let actions: &'static [Action] = if req.code == request::QUERY_CONSUMER_OFFSET {
                &[Sub, Get]
            } else {
                &[Sub, Update]
            };
            out.extend(
                field("topic")
                    .filter(|t| !is_retry(t))
                    .map(|t| topic(t, actions)),
            );
            out.extend(field("consumerGroup").map(|g| group(g, actions)));
        }
        request::LOCK_BATCH_MQ | request::UNLOCK_BATCH_MQ => {
            let body: QueueSetBody = serde_json::from_slice(&req.body)
                .map_err(|e| format!("the lock body is not valid: {e}"))?;
            out.push(group(&body.consumer_group, &[Sub]));
            for q in body.mq_set.iter().filter(|q| !is_retry(&q.topic)) {
                out.push(topic(&q.topic, &[Sub]));
            }
        }
        code if STRICTER.contains(&code) => out.push(Need {
            kind: Cluster,
            name: cluster.to_string(),
            actions: &[Update],
        }),
        code => {
            if let Some((_, actions, fields)) = RULES.iter().find(|(c, _, _)| *c == code) {
                for (name, kind, splitter) in *fields {
                    let Some(value) = field(name) else { continue };
                    let values: Vec<&str> = match splitter {
                        Some(s) => value.split(*s).filter(|v| !v.is_empty()).collect(),
                        None => vec![value],
                    };
                    for v in values {
                        out.push(match kind {
                            Topic => topic_or_retry_group(v, actions),
                            Group => group(v, actions),
                            other => Need {
                                kind: *other,
                                name: v.to_string(),
                                actions,
                            },
                        });
                    }
                }
                if out.is_empty() && fields.is_empty() {
                    out.push(Need {
                        kind: Cluster,
                        name: cluster.to_string(),
                        actions,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_retry_topics_need_the_group_and_pulls_need_topic_and_group() {
        let send = RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_field("b", "%RETRY%cg")
            .with_field("a", "pg");
        assert_eq!(needs(&send, "c").unwrap(), vec![group("pg", &[Sub])]);
        let send = RemotingCommand::request(request::SEND_MESSAGE_V2).with_field("b", "T");
        assert_eq!(needs(&send, "c").unwrap(), vec![topic("T", &[Pub])]);
        let pull = RemotingCommand::request(request::PULL_MESSAGE)
            .with_field("topic", "T")
            .with_field("consumerGroup", "cg");
        assert_eq!(
            needs(&pull, "c").unwrap(),
            vec![topic("T", &[Sub]), group("cg", &[Sub])]
        );
    }

    #[test]
    fn header_rules_read_split_fields_and_cluster_rules_name_the_cluster() {
        let stats = RemotingCommand::request(request::GET_CONSUME_STATS)
            .with_field("consumerGroup", "cg")
            .with_field("topicList", "a;b");
        let got = needs(&stats, "c").unwrap();
        assert_eq!(
            got,
            vec![group("cg", &[Get]), topic("a", &[Get]), topic("b", &[Get])]
        );
        let create =
            RemotingCommand::request(request::AUTH_CREATE_USER).with_field("username", "u");
        assert_eq!(
            needs(&create, "DefaultCluster").unwrap(),
            vec![Need {
                kind: Cluster,
                name: "DefaultCluster".into(),
                actions: &[Update]
            }]
        );
        let config = RemotingCommand::request(request::UPDATE_BROKER_CONFIG);
        assert_eq!(needs(&config, "c").unwrap()[0].kind, Cluster);
        // No rule: authentication alone.
        assert!(needs(
            &RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
            "c"
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn a_malformed_heartbeat_or_lock_body_is_an_error_not_a_pass() {
        let hb = RemotingCommand::request(request::HEART_BEAT).with_body(b"{not json".to_vec());
        assert!(needs(&hb, "c").unwrap_err().contains("heartbeat"));
        let lock = RemotingCommand::request(request::LOCK_BATCH_MQ).with_body(b"[]".to_vec());
        assert!(needs(&lock, "c").unwrap_err().contains("lock"));
    }
}
