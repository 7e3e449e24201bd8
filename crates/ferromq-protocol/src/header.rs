//! Typed request and response headers. On the wire every field is a string in
//! `extFields`; these types parse and format them in one place.

use crate::command::ExtFields;
use crate::error::HeaderError;

/// A value that can live in `extFields`.
pub trait HeaderValue: Sized {
    fn parse(key: &'static str, raw: Option<&String>) -> Result<Self, HeaderError>;
    fn put(&self, key: &str, fields: &mut ExtFields);
}

macro_rules! parsed_header_value {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn parse(key: &'static str, raw: Option<&String>) -> Result<Self, HeaderError> {
                let raw = raw.ok_or(HeaderError::Missing(key))?;
                raw.trim().parse().map_err(|_| HeaderError::Invalid { field: key, value: raw.clone() })
            }
            fn put(&self, key: &str, fields: &mut ExtFields) {
                fields.insert(key.to_string(), self.to_string());
            }
        }
    )*};
}
parsed_header_value!(i32, i64, bool);

impl HeaderValue for String {
    fn parse(key: &'static str, raw: Option<&String>) -> Result<Self, HeaderError> {
        raw.cloned().ok_or(HeaderError::Missing(key))
    }
    fn put(&self, key: &str, fields: &mut ExtFields) {
        fields.insert(key.to_string(), self.clone());
    }
}

impl<T: HeaderValue> HeaderValue for Option<T> {
    fn parse(key: &'static str, raw: Option<&String>) -> Result<Self, HeaderError> {
        match raw {
            None => Ok(None),
            // Go sends empty strings for unset optional values.
            Some(s) if s.is_empty() => Ok(None),
            Some(_) => T::parse(key, raw).map(Some),
        }
    }
    fn put(&self, key: &str, fields: &mut ExtFields) {
        if let Some(v) = self {
            v.put(key, fields);
        }
    }
}

/// A header that converts to and from `extFields`.
pub trait CommandHeader: Sized {
    /// # Errors
    /// A required field is missing or a field does not parse.
    fn decode(fields: &ExtFields) -> Result<Self, HeaderError>;
    fn encode(&self, fields: &mut ExtFields);
}

/// Declares a header struct whose fields map one-to-one to `extFields` keys.
macro_rules! command_header {
    ($(#[$meta:meta])* pub struct $name:ident { $($field:ident: $ty:ty => $key:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name { $(pub $field: $ty),* }
        impl $name {
            /// Decodes from any lookup by the long keys, so a header sent under other keys
            /// (SEND_MESSAGE_V2's letters) needs no re-keyed copy of its fields.
            pub fn decode_with<'a>(
                get: impl Fn(&'static str) -> Option<&'a String>,
            ) -> Result<Self, HeaderError> {
                Ok(Self { $($field: <$ty as HeaderValue>::parse($key, get($key))?),* })
            }
        }
        impl CommandHeader for $name {
            fn decode(fields: &ExtFields) -> Result<Self, HeaderError> {
                Self::decode_with(|key| fields.get(key))
            }
            fn encode(&self, fields: &mut ExtFields) {
                $(self.$field.put($key, fields);)*
            }
        }
    };
}

command_header! {
    /// SEND_MESSAGE (10) header, V1 keys. V2 (310/320) keys are mapped onto these first.
    pub struct SendMessageRequestHeader {
        producer_group: String => "producerGroup",
        topic: String => "topic",
        default_topic: Option<String> => "defaultTopic",
        default_topic_queue_nums: Option<i32> => "defaultTopicQueueNums",
        queue_id: i32 => "queueId",
        sys_flag: i32 => "sysFlag",
        born_timestamp: i64 => "bornTimestamp",
        flag: i32 => "flag",
        properties: Option<String> => "properties",
        reconsume_times: Option<i32> => "reconsumeTimes",
        unit_mode: Option<bool> => "unitMode",
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
        batch: Option<bool> => "batch",
    }
}

/// SEND_MESSAGE_V2 one-letter keys and their V1 names (`SendMessageRequestHeaderV2.java`).
const SEND_V2_KEYS: [(&str, &str); 13] = [
    ("a", "producerGroup"),
    ("b", "topic"),
    ("c", "defaultTopic"),
    ("d", "defaultTopicQueueNums"),
    ("e", "queueId"),
    ("f", "sysFlag"),
    ("g", "bornTimestamp"),
    ("h", "flag"),
    ("i", "properties"),
    ("j", "reconsumeTimes"),
    ("k", "unitMode"),
    ("l", "maxReconsumeTimes"),
    ("m", "batch"),
];

impl SendMessageRequestHeader {
    /// Decodes the header of any send request: SEND_MESSAGE and batches without V2's
    /// one-letter keys use the long keys; SEND_MESSAGE_V2 and V2 batches the short ones.
    pub fn decode_request(req: &crate::RemotingCommand) -> Result<Self, HeaderError> {
        use crate::code::request;
        if req.code == request::SEND_MESSAGE
            || req.code == request::SEND_REPLY_MESSAGE
            || (req.code == request::SEND_BATCH_MESSAGE && !req.ext_fields.contains_key("b"))
        {
            Self::decode(&req.ext_fields)
        } else {
            Self::decode_v2(&req.ext_fields)
        }
    }

    /// Decodes a V2 (one-letter keys) header.
    pub fn decode_v2(fields: &ExtFields) -> Result<Self, HeaderError> {
        Self::decode_with(|long| {
            SEND_V2_KEYS
                .iter()
                .find(|(_, l)| *l == long)
                .and_then(|(short, _)| fields.get(*short))
        })
    }

    /// Encodes with V2 keys, as Java clients do for codes 310 and 320.
    pub fn encode_v2(&self, fields: &mut ExtFields) {
        let mut v1 = ExtFields::default();
        self.encode(&mut v1);
        for (short, long) in SEND_V2_KEYS {
            if let Some(v) = v1.remove(long) {
                fields.insert(short.to_string(), v);
            }
        }
    }
}

command_header! {
    pub struct SendMessageResponseHeader {
        msg_id: String => "msgId",
        queue_id: i32 => "queueId",
        queue_offset: i64 => "queueOffset",
        transaction_id: Option<String> => "transactionId",
        recall_handle: Option<String> => "recallHandle",
    }
}

command_header! {
    /// QUERY_CONSUME_TIME_SPAN (303).
    pub struct QueryConsumeTimeSpanRequestHeader {
        topic: String => "topic",
        group: String => "group",
    }
}

command_header! {
    /// AUTH_CREATE_USER, AUTH_UPDATE_USER, AUTH_DELETE_USER, AUTH_GET_USER (3001–3004);
    /// the user's fields travel in the body (`UserInfo`).
    pub struct AuthUserRequestHeader {
        username: Option<String> => "username",
    }
}

command_header! {
    /// AUTH_LIST_USER (3005): users whose name contains the filter.
    pub struct AuthListUsersRequestHeader {
        filter: Option<String> => "filter",
    }
}

command_header! {
    /// AUTH_CREATE_ACL, AUTH_UPDATE_ACL, AUTH_GET_ACL (3006, 3007, 3009), and AUTH_DELETE_ACL
    /// (3008) with the policy type and resource of the entry to remove (none: the whole ACL).
    pub struct AuthAclRequestHeader {
        subject: Option<String> => "subject",
        policy_type: Option<String> => "policyType",
        resource: Option<String> => "resource",
    }
}

command_header! {
    /// AUTH_LIST_ACL (3010).
    pub struct AuthListAclsRequestHeader {
        subject_filter: Option<String> => "subjectFilter",
        resource_filter: Option<String> => "resourceFilter",
    }
}

command_header! {
    /// QUERY_TOPICS_BY_CONSUMER (343).
    pub struct QueryTopicsByConsumerRequestHeader {
        group: String => "group",
    }
}

command_header! {
    /// QUERY_SUBSCRIPTION_BY_CONSUMER (345).
    pub struct QuerySubscriptionByConsumerRequestHeader {
        group: String => "group",
        topic: Option<String> => "topic",
    }
}

command_header! {
    /// CLONE_GROUP_OFFSET (314): without a topic, every topic the source has offsets on.
    pub struct CloneGroupOffsetRequestHeader {
        src_group: String => "srcGroup",
        dest_group: String => "destGroup",
        topic: Option<String> => "topic",
        offline: Option<bool> => "offline",
    }
}

command_header! {
    /// UPDATE_AND_GET_GROUP_FORBIDDEN (353). `readable` is read as Java's
    /// `Boolean.parseBoolean` reads it (anything but "true" is false), so it stays text.
    pub struct UpdateGroupForbiddenRequestHeader {
        group: String => "group",
        topic: String => "topic",
        readable: Option<String> => "readable",
    }
}

command_header! {
    /// RECALL_MESSAGE (370): withdraw a timer message before it is due.
    pub struct RecallMessageRequestHeader {
        producer_group: Option<String> => "producerGroup",
        topic: String => "topic",
        recall_handle: String => "recallHandle",
    }
}

command_header! {
    pub struct PullMessageRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        queue_offset: i64 => "queueOffset",
        max_msg_nums: i32 => "maxMsgNums",
        sys_flag: i32 => "sysFlag",
        commit_offset: i64 => "commitOffset",
        suspend_timeout_millis: i64 => "suspendTimeoutMillis",
        subscription: Option<String> => "subscription",
        sub_version: i64 => "subVersion",
        expression_type: Option<String> => "expressionType",
        max_msg_bytes: Option<i32> => "maxMsgBytes",
    }
}

command_header! {
    pub struct PullMessageResponseHeader {
        next_begin_offset: i64 => "nextBeginOffset",
        min_offset: i64 => "minOffset",
        max_offset: i64 => "maxOffset",
        suggest_which_broker_id: i64 => "suggestWhichBrokerId",
    }
}

command_header! {
    pub struct QueryConsumerOffsetRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        set_zero_if_not_found: Option<bool> => "setZeroIfNotFound",
    }
}

command_header! {
    pub struct UpdateConsumerOffsetRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        commit_offset: i64 => "commitOffset",
    }
}

command_header! {
    /// GET_MAX_OFFSET, GET_MIN_OFFSET and GET_EARLIEST_MSG_STORETIME.
    pub struct QueueRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
    }
}

command_header! {
    pub struct SearchOffsetRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
        timestamp: i64 => "timestamp",
        boundary_type: Option<String> => "boundaryType",
    }
}

command_header! {
    pub struct ViewMessageRequestHeader {
        offset: i64 => "offset",
    }
}

command_header! {
    pub struct QueryMessageRequestHeader {
        topic: String => "topic",
        key: String => "key",
        max_num: i32 => "maxNum",
        begin_timestamp: i64 => "beginTimestamp",
        end_timestamp: i64 => "endTimestamp",
        unique_key_query: Option<bool> => "_UNIQUE_KEY_QUERY",
    }
}

command_header! {
    pub struct ConsumerGroupRequestHeader {
        consumer_group: String => "consumerGroup",
    }
}

command_header! {
    pub struct UnregisterClientRequestHeader {
        client_id: String => "clientID",
        producer_group: Option<String> => "producerGroup",
        consumer_group: Option<String> => "consumerGroup",
    }
}

command_header! {
    pub struct CreateTopicRequestHeader {
        topic: String => "topic",
        default_topic: Option<String> => "defaultTopic",
        read_queue_nums: i32 => "readQueueNums",
        write_queue_nums: i32 => "writeQueueNums",
        perm: i32 => "perm",
        topic_filter_type: Option<String> => "topicFilterType",
        topic_sys_flag: Option<i32> => "topicSysFlag",
        order: Option<bool> => "order",
        attributes: Option<String> => "attributes",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_BROKER, DELETE_TOPIC_IN_NAMESRV and GET_ROUTEINFO_BY_TOPIC.
    pub struct TopicRequestHeader {
        topic: String => "topic",
    }
}

command_header! {
    /// QUERY_CONSUME_QUEUE (321): `count` entries of a queue from `index`.
    pub struct QueryConsumeQueueRequestHeader {
        topic: String => "topic",
        queue_id: i32 => "queueId",
        index: i64 => "index",
        count: i32 => "count",
        consumer_group: Option<String> => "consumerGroup",
    }
}

command_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG (352).
    pub struct GetSubscriptionGroupConfigRequestHeader {
        group: String => "group",
    }
}

command_header! {
    /// VIEW_BROKER_STATS_DATA (315).
    pub struct ViewBrokerStatsDataRequestHeader {
        stats_name: String => "statsName",
        stats_key: String => "statsKey",
    }
}

command_header! {
    /// GET_BROKER_CONSUME_STATS (317): only orderly groups when `isOrder`.
    pub struct GetConsumeStatsInBrokerHeader {
        is_order: Option<bool> => "isOrder",
    }
}

command_header! {
    /// Name-server KV config (100-102, 219): `key`/`value` unused where absent.
    pub struct KvConfigRequestHeader {
        namespace: String => "namespace",
        key: Option<String> => "key",
        value: Option<String> => "value",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) and ADD_WRITE_PERM_OF_BROKER (327).
    pub struct BrokerNameRequestHeader {
        broker_name: String => "brokerName",
    }
}

command_header! {
    /// GET_TOPICS_BY_CLUSTER (224).
    pub struct ClusterRequestHeader {
        cluster: String => "cluster",
    }
}

command_header! {
    pub struct RegisterBrokerRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        ha_server_addr: Option<String> => "haServerAddr",
        broker_id: i64 => "brokerId",
        compressed: Option<bool> => "compressed",
        body_crc32: Option<i32> => "bodyCrc32",
        heartbeat_timeout_millis: Option<i64> => "heartbeatTimeoutMillis",
        // FerroMQ brokers mark what a registration carries: true, the whole topic table (a
        // FerroMQ name server drops the broker's topics missing from it); false, the topics
        // just changed. Unmarked (Apache's brokers) bodies add and update, as Apache's.
        whole_table: Option<bool> => "ferromqWholeTable",
    }
}

command_header! {
    pub struct QueryDataVersionRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        broker_id: i64 => "brokerId",
    }
}

command_header! {
    pub struct UnregisterBrokerRequestHeader {
        broker_name: String => "brokerName",
        broker_addr: String => "brokerAddr",
        cluster_name: String => "clusterName",
        broker_id: i64 => "brokerId",
    }
}

command_header! {
    pub struct BrokerHeartbeatRequestHeader {
        cluster_name: String => "clusterName",
        broker_addr: String => "brokerAddr",
        broker_name: String => "brokerName",
    }
}

command_header! {
    pub struct ConsumerSendMsgBackRequestHeader {
        offset: i64 => "offset",
        group: String => "group",
        delay_level: i32 => "delayLevel",
        origin_msg_id: Option<String> => "originMsgId",
        origin_topic: Option<String> => "originTopic",
        unit_mode: Option<bool> => "unitMode",
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222) and RESET_CONSUMER_CLIENT_OFFSET (220).
    pub struct ResetOffsetRequestHeader {
        topic: String => "topic",
        group: String => "group",
        timestamp: i64 => "timestamp",
        is_force: Option<bool> => "isForce",
    }
}

command_header! {
    pub struct GetConsumeStatsRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: Option<String> => "topic",
    }
}

command_header! {
    pub struct GetConsumerRunningInfoRequestHeader {
        consumer_group: String => "consumerGroup",
        client_id: String => "clientId",
        jstack_enable: Option<bool> => "jstackEnable",
    }
}

command_header! {
    pub struct ProducerGroupRequestHeader {
        producer_group: String => "producerGroup",
    }
}

command_header! {
    pub struct EndTransactionRequestHeader {
        producer_group: String => "producerGroup",
        tran_state_table_offset: i64 => "tranStateTableOffset",
        commit_log_offset: i64 => "commitLogOffset",
        commit_or_rollback: i32 => "commitOrRollback",
        from_transaction_check: Option<bool> => "fromTransactionCheck",
        msg_id: Option<String> => "msgId",
        transaction_id: Option<String> => "transactionId",
    }
}

command_header! {
    /// CHECK_TRANSACTION_STATE (39), broker → producer.
    pub struct CheckTransactionStateRequestHeader {
        tran_state_table_offset: i64 => "tranStateTableOffset",
        commit_log_offset: i64 => "commitLogOffset",
        msg_id: Option<String> => "msgId",
        transaction_id: Option<String> => "transactionId",
        offset_msg_id: Option<String> => "offsetMsgId",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_field_names_the_key() {
        let fields = ExtFields::default();
        assert_eq!(
            QueueRequestHeader::decode(&fields),
            Err(HeaderError::Missing("topic"))
        );
    }

    #[test]
    fn unparsable_number_names_field_and_value() {
        let mut fields = ExtFields::default();
        fields.insert("topic".into(), "T".into());
        fields.insert("queueId".into(), "zero".into());
        assert_eq!(
            QueueRequestHeader::decode(&fields),
            Err(HeaderError::Invalid {
                field: "queueId",
                value: "zero".into()
            })
        );
    }

    #[test]
    fn empty_optional_values_read_as_absent() {
        let mut fields = ExtFields::default();
        fields.insert("clientID".into(), "c".into());
        fields.insert("producerGroup".into(), "".into());
        let h = UnregisterClientRequestHeader::decode(&fields).unwrap();
        assert_eq!(h.producer_group, None);
    }

    #[test]
    fn send_header_v2_keys_map_to_v1() {
        let h = SendMessageRequestHeader {
            producer_group: "PG".into(),
            topic: "T".into(),
            default_topic: Some("TBW102".into()),
            default_topic_queue_nums: Some(4),
            queue_id: 2,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: Some("KEYS\u{1}k\u{2}".into()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: Some(false),
        };
        let mut v2 = ExtFields::default();
        h.encode_v2(&mut v2);
        assert_eq!(v2.get("b").map(String::as_str), Some("T"));
        assert!(!v2.contains_key("topic"));
        assert_eq!(SendMessageRequestHeader::decode_v2(&v2).unwrap(), h);
    }
}

command_header! {
    /// POP_MESSAGE (200050).
    pub struct PopMessageRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        max_msg_nums: i32 => "maxMsgNums",
        invisible_time: i64 => "invisibleTime",
        poll_time: i64 => "pollTime",
        born_time: i64 => "bornTime",
        init_mode: i32 => "initMode",
        exp_type: Option<String> => "expType",
        exp: Option<String> => "exp",
        order: Option<bool> => "order",
        attempt_id: Option<String> => "attemptId",
    }
}

command_header! {
    /// POP_MESSAGE's answer. The offset infos are `;`-joined `type queueId value` entries
    /// (type 0 for the topic itself), from which the client builds each receipt handle.
    pub struct PopMessageResponseHeader {
        pop_time: i64 => "popTime",
        invisible_time: i64 => "invisibleTime",
        revive_qid: i32 => "reviveQid",
        rest_num: i64 => "restNum",
        start_offset_info: Option<String> => "startOffsetInfo",
        msg_offset_info: Option<String> => "msgOffsetInfo",
        order_count_info: Option<String> => "orderCountInfo",
    }
}

command_header! {
    /// ACK_MESSAGE (200051); `extraInfo` is the receipt handle.
    pub struct AckMessageRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        extra_info: String => "extraInfo",
        offset: i64 => "offset",
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME (200053).
    pub struct ChangeInvisibleTimeRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        extra_info: String => "extraInfo",
        offset: i64 => "offset",
        invisible_time: i64 => "invisibleTime",
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME's answer: the client builds the new handle from it.
    pub struct ChangeInvisibleTimeResponseHeader {
        pop_time: i64 => "popTime",
        invisible_time: i64 => "invisibleTime",
        revive_qid: i32 => "reviveQid",
    }
}

command_header! {
    /// NOTIFICATION (200054): is there anything to pop?
    pub struct NotificationRequestHeader {
        consumer_group: String => "consumerGroup",
        topic: String => "topic",
        queue_id: i32 => "queueId",
        poll_time: i64 => "pollTime",
        born_time: i64 => "bornTime",
        order: Option<bool> => "order",
        attempt_id: Option<String> => "attemptId",
        exp_type: Option<String> => "expType",
        exp: Option<String> => "exp",
    }
}

command_header! {
    pub struct NotificationResponseHeader {
        has_msg: bool => "hasMsg",
        polling_full: bool => "pollingFull",
    }
}

command_header! {
    /// CONSUME_MESSAGE_DIRECTLY (309): have one consumer consume one stored message now
    /// (mqadmin consumeMessage, the dashboards' "resend to consumer").
    pub struct ConsumeMessageDirectlyRequestHeader {
        consumer_group: String => "consumerGroup",
        client_id: Option<String> => "clientId",
        msg_id: Option<String> => "msgId",
        broker_name: Option<String> => "brokerName",
        topic: Option<String> => "topic",
    }
}
