//! Between `apache.rocketmq.v2` messages and the broker's: property names, message types,
//! receipt handles and statuses as Apache's proxy spells them.

use std::collections::HashMap;

use ferromq_broker::topic::RETRY_GROUP_TOPIC_PREFIX;
use ferromq_broker::{BrokerError, OutgoingMessage, PoppedMessage};
use ferromq_grpc_proto::prost_types::{Duration as PbDuration, Timestamp};
use ferromq_grpc_proto::v2::{
    self as pb, Code, Digest, DigestType, Encoding, MessageType, Resource, SystemProperties,
};
use ferromq_protocol::extra_info;
use ferromq_protocol::message::{self, properties_iter, property, MessageExt};
use md5::Digest as _;

/// Property names the proxy reads from or writes to system properties.
pub mod prop {
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
    pub const BORN_HOST: &str = "__BORNHOST";
    pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
    pub const POP_CK: &str = "POP_CK";
    pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
    pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
}

/// Properties that are the broker's, not the user's (Apache's `MessageConst.STRING_HASH_SET`,
/// the part a message can carry); the rest are user properties.
const SYSTEM_PROPERTIES: &[&str] = &[
    "TRACE_ON",
    "MSG_REGION",
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "POP_CK",
    "POP_CK_OFFSET",
    "1ST_POP_TIME",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "DUP_INFO",
    "EXTEND_UNIQ_INFO",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "__transactionId__",
    "TRANSACTION_CHECK_TIMES",
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "__SHARDINGKEY",
    "_SYS_MSG_PRIORITY_",
    "__STARTDELIVERTIME",
    "TIMER_DELAY_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELIVER_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_OUT_MS",
    "TIMER_DEL_UNIQKEY",
    "TRACE_CONTEXT",
    "__BORNHOST",
    "BORN_TIMESTAMP",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
    "CRC32",
    "INNER_NUM",
    "INNER_BASE",
];

pub fn ok() -> pb::Status {
    status(Code::Ok, "OK")
}

pub fn status(code: Code, message: impl Into<String>) -> pb::Status {
    pb::Status {
        code: code as i32,
        message: message.into(),
    }
}

/// The status a refused operation answers with (Apache's codes where it has one).
pub fn error_status(e: &BrokerError) -> pb::Status {
    let code = match e {
        BrokerError::TopicNotFound(_) => Code::TopicNotFound,
        BrokerError::GroupNotFound(_) => Code::ConsumerGroupNotFound,
        BrokerError::NoPermission(_) => Code::Forbidden,
        BrokerError::InvalidParameter(_) | BrokerError::QueueIllegal(_) => Code::BadRequest,
        BrokerError::MessageIllegal(_) => Code::BadRequest,
        BrokerError::FilterInvalid(_) => Code::IllegalFilterExpression,
        BrokerError::StaleHandle(_) => Code::InvalidReceiptHandle,
        // Apache's proxy answers INTERNAL_SERVER_ERROR here; a refused recall is the
        // client's request, not the server's failure.
        BrokerError::IllegalOperation(_) => Code::BadRequest,
        BrokerError::NotMaster
        | BrokerError::Unavailable(_)
        | BrokerError::SlaveNotAvailable(_) => Code::ProxyTimeout,
        BrokerError::Put(p) => match p {
            ferromq_broker::store_service::PutError::Illegal(_) => Code::BadRequest,
            ferromq_broker::store_service::PutError::DiskFull(_) => Code::TooManyRequests,
            _ => Code::InternalServerError,
        },
        BrokerError::Internal(_) => Code::InternalServerError,
    };
    status(code, e.to_string())
}

pub fn millis_to_timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn timestamp_to_millis(t: &Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

pub fn duration_to_millis(d: &PbDuration) -> i64 {
    d.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(d.nanos) / 1_000_000)
}

pub fn millis_to_duration(ms: i64) -> PbDuration {
    PbDuration {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A property key or value holding a control character breaks Apache's property string.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Why a message cannot be sent as it is.
#[derive(Debug)]
pub struct Refusal(pub Code, pub String);

/// The broker's view of a message a client sends. `producer_group` becomes `PGROUP`: for
/// transactions, Apache's proxy uses the topic, which the check-back then names.
pub fn outgoing(
    m: &pb::Message,
    producer_group: &str,
    peer: &str,
    max_body: usize,
) -> Result<(OutgoingMessage, i32, i64), Refusal> {
    let sys = m.system_properties.clone().unwrap_or_default();
    if m.body.len() > max_body {
        return Err(Refusal(
            Code::MessageBodyTooLarge,
            format!("message body cannot exceed the max {max_body}"),
        ));
    }
    let mut props = String::new();
    for (k, v) in &m.user_properties {
        if SYSTEM_PROPERTIES.contains(&k.as_str()) {
            return Err(Refusal(
                Code::IllegalMessagePropertyKey,
                format!("property is used by system: {k}"),
            ));
        }
        if k.is_empty() || has_control(k) {
            return Err(Refusal(
                Code::IllegalMessagePropertyKey,
                "the key of property cannot contain control character".into(),
            ));
        }
        if has_control(v) {
            return Err(Refusal(
                Code::IllegalMessagePropertyKey,
                "the value of property cannot contain control character".into(),
            ));
        }
        message::push_property(&mut props, k, v);
    }
    if let Some(tag) = sys.tag.as_deref().filter(|t| !t.is_empty()) {
        if tag.trim().is_empty() || tag.contains('|') || has_control(tag) {
            return Err(Refusal(
                Code::IllegalMessageTag,
                format!("tag is illegal: {tag:?}"),
            ));
        }
        message::push_property(&mut props, message::property::TAGS, tag);
    }
    if !sys.keys.is_empty() {
        for k in &sys.keys {
            if k.trim().is_empty() || has_control(k) {
                return Err(Refusal(
                    Code::IllegalMessageKey,
                    "key cannot be blank or contain control characters".into(),
                ));
            }
        }
        message::push_property(&mut props, message::property::KEYS, &sys.keys.join(" "));
    }
    if sys.message_id.trim().is_empty() {
        return Err(Refusal(
            Code::IllegalMessageId,
            "message id cannot be empty".into(),
        ));
    }
    message::push_property(&mut props, message::property::UNIQ_KEY, &sys.message_id);
    let mut sys_flag = 0;
    if sys.body_encoding == Encoding::Gzip as i32 {
        sys_flag |= message::sys_flag::COMPRESSED;
    }
    if sys.message_type == MessageType::Transaction as i32 {
        sys_flag |= message::sys_flag::TRANSACTION_PREPARED;
        message::push_property(&mut props, message::property::TRAN_MSG, "true");
        if let Some(d) = &sys.orphaned_transaction_recovery_duration {
            let secs = duration_to_millis(d) / 1000;
            message::push_property(
                &mut props,
                message::property::CHECK_IMMUNITY_TIME_IN_SECONDS,
                &secs.to_string(),
            );
        }
    }
    if let Some(t) = &sys.delivery_timestamp {
        let ms = timestamp_to_millis(t);
        message::push_property(
            &mut props,
            message::property::TIMER_DELIVER_MS,
            &ms.to_string(),
        );
    }
    message::push_property(&mut props, message::property::PGROUP, producer_group);
    if let Some(group) = sys.message_group.as_deref().filter(|g| !g.is_empty()) {
        if group.trim().is_empty() || has_control(group) || group.len() >= 64 {
            return Err(Refusal(
                Code::IllegalMessageGroup,
                "message group must be 1-63 bytes without control characters".into(),
            ));
        }
        message::push_property(&mut props, prop::SHARDING_KEY, group);
    }
    if sys.lite_topic.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(Refusal(
            Code::NotImplemented,
            "lite topics (RIP-83, Apache 5.5) are not supported by FerroMQ; send to an ordinary topic".into(),
        ));
    }
    if let Some(priority) = sys.priority {
        if priority < 0 {
            return Err(Refusal(
                Code::BadRequest,
                format!("the message priority must be 0 or more, not {priority}"),
            ));
        }
        message::push_property(
            &mut props,
            message::property::PRIORITY,
            &priority.to_string(),
        );
    }
    if let Some(tc) = sys.trace_context.as_deref().filter(|t| !t.is_empty()) {
        message::push_property(&mut props, prop::TRACE_CONTEXT, tc);
    }
    let born_host = if sys.born_host.trim().is_empty() {
        peer
    } else {
        sys.born_host.as_str()
    };
    message::push_property(&mut props, prop::BORN_HOST, born_host);
    let born_ms = sys
        .born_timestamp
        .as_ref()
        .map(timestamp_to_millis)
        .unwrap_or_else(now_ms);
    message::push_property(&mut props, prop::BORN_TIMESTAMP, &born_ms.to_string());
    Ok((
        OutgoingMessage {
            flag: 0,
            body: bytes::Bytes::copy_from_slice(&m.body),
            properties: props,
        },
        sys_flag,
        born_ms,
    ))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The message type a stored message was sent as.
pub fn message_type(props: &str) -> MessageType {
    if property(props, message::property::TRAN_MSG) == Some("true") {
        MessageType::Transaction
    } else if property(props, message::property::DELAY).is_some()
        || property(props, message::property::TIMER_DELIVER_MS).is_some()
        || property(props, message::property::TIMER_DELAY_SEC).is_some()
    {
        MessageType::Delay
    } else if property(props, prop::SHARDING_KEY).is_some() {
        MessageType::Fifo
    } else {
        MessageType::Normal
    }
}

/// A stored message as a client receives it; `receipt` is its receipt handle when popped.
pub fn delivered(m: &MessageExt, receipt: Option<(String, i64)>) -> pb::Message {
    let props = &m.properties;
    let user_properties: HashMap<String, String> = properties_iter(props)
        .filter(|(k, _)| !SYSTEM_PROPERTIES.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let keys = property(props, message::property::KEYS)
        .map(|k| {
            k.split(' ')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let message_id = property(props, message::property::UNIQ_KEY)
        .map(str::to_string)
        .unwrap_or_else(|| m.offset_msg_id());
    let checksum: String = md5::Md5::digest(&m.body)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let born_host = property(props, prop::BORN_HOST)
        .map(str::to_string)
        .unwrap_or_else(|| m.born_host.ip().to_string());
    let delivery_timestamp = property(props, message::property::TIMER_DELIVER_MS)
        .and_then(|v| v.parse::<i64>().ok())
        .map(millis_to_timestamp);
    let dead_letter_queue = match (
        property(props, prop::DLQ_ORIGIN_TOPIC),
        property(props, prop::DLQ_ORIGIN_MESSAGE_ID),
    ) {
        (Some(topic), Some(id)) => Some(pb::DeadLetterQueue {
            topic: topic.to_string(),
            message_id: id.to_string(),
        }),
        _ => None,
    };
    // A message redelivered from the group's retry topic is shown under its first topic.
    let topic = property(props, message::property::RETRY_TOPIC)
        .filter(|_| m.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX))
        .unwrap_or(&m.topic);
    let (receipt_handle, invisible_duration) = match receipt {
        Some((h, inv)) => (Some(h), Some(millis_to_duration(inv))),
        None => (None, None),
    };
    // As Apache's proxy: a namespaced name (`tenant%orders`) is shown as its parts.
    let (namespace, topic) = ferromq_broker::topic::split_namespace(topic);
    pb::Message {
        topic: Some(Resource {
            resource_namespace: namespace.to_string(),
            name: topic,
        }),
        user_properties,
        system_properties: Some(SystemProperties {
            tag: property(props, message::property::TAGS).map(str::to_string),
            keys,
            message_id,
            body_digest: Some(Digest {
                r#type: DigestType::Md5 as i32,
                checksum,
            }),
            body_encoding: if m.sys_flag & message::sys_flag::COMPRESSED != 0 {
                Encoding::Gzip as i32
            } else {
                Encoding::Identity as i32
            },
            message_type: message_type(props) as i32,
            born_timestamp: Some(millis_to_timestamp(m.born_timestamp)),
            born_host,
            store_timestamp: Some(millis_to_timestamp(m.store_timestamp)),
            store_host: m.store_host.to_string(),
            delivery_timestamp,
            receipt_handle,
            queue_id: m.queue_id,
            queue_offset: Some(m.queue_offset),
            invisible_duration,
            delivery_attempt: Some(m.reconsume_times + 1),
            message_group: property(props, prop::SHARDING_KEY).map(str::to_string),
            trace_context: property(props, prop::TRACE_CONTEXT).map(str::to_string),
            orphaned_transaction_recovery_duration: None,
            dead_letter_queue,
            lite_topic: None,
            priority: property(props, message::property::PRIORITY).and_then(|p| p.parse().ok()),
        }),
        body: m.body.to_vec(),
    }
}

/// Apache's receipt handle (`ReceiptHandle.encode`) of one delivery; topic type 1 marks the
/// group's retry topic.
pub fn receipt_handle(p: &PoppedMessage, broker_name: &str) -> String {
    let m = &p.message;
    extra_info::format(
        p.pop_time,
        p.invisible_ms,
        m.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX),
        broker_name,
        m.queue_id,
        m.queue_offset as u64,
        m.commit_log_offset,
    )
}

/// The parts of a receipt handle an ack or renewal needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    pub pop_time: i64,
    pub invisible_ms: i64,
    pub retry_topic: bool,
    pub broker_name: String,
    pub queue_id: i32,
    pub offset: u64,
    pub commit_log_offset: i64,
}

impl Handle {
    /// The handle of the same delivery after a renewal.
    pub fn renewed(&self, pop_time: i64, invisible_ms: i64) -> String {
        extra_info::format(
            pop_time,
            invisible_ms,
            self.retry_topic,
            &self.broker_name,
            self.queue_id,
            self.offset,
            self.commit_log_offset,
        )
    }

    /// A handle with every field an ack needs (the queue offset too).
    pub fn parse(s: &str) -> Option<Handle> {
        let e = extra_info::ExtraInfo::parse(s)?;
        Some(Handle {
            pop_time: e.pop_time()?,
            invisible_ms: e.invisible_ms()?,
            retry_topic: e.retry_topic(),
            broker_name: e.broker_name().to_string(),
            queue_id: e.queue_id()?,
            offset: e.queue_offset()?,
            commit_log_offset: e.commit_log_offset()?.unwrap_or(-1),
        })
    }

    /// The topic the handle's message was popped from.
    pub fn real_topic(&self, topic: &str, group: &str) -> String {
        if self.retry_topic {
            format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
        } else {
            topic.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_garbage_is_refused() {
        let p = PoppedMessage {
            message: MessageExt {
                topic: "%RETRY%g".into(),
                queue_id: 2,
                queue_offset: 17,
                commit_log_offset: 4096,
                ..Default::default()
            },
            pop_time: 1_700_000_000_000,
            invisible_ms: 30_000,
        };
        let h = receipt_handle(&p, "broker-a");
        assert_eq!(h, "17 1700000000000 30000 0 1 broker-a 2 17 4096");
        let parsed = Handle::parse(&h).unwrap();
        assert_eq!(parsed.real_topic("t", "g"), "%RETRY%g");
        assert_eq!(
            (parsed.queue_id, parsed.offset, parsed.pop_time),
            (2, 17, 1_700_000_000_000)
        );
        for bad in ["", "1 2 3", "a b c d e f g h", "1 x 3 0 0 b 1 2"] {
            assert_eq!(Handle::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_convert_both_ways() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1] {
            assert_eq!(timestamp_to_millis(&millis_to_timestamp(ms)), ms);
            assert_eq!(duration_to_millis(&millis_to_duration(ms)), ms);
        }
    }
}
