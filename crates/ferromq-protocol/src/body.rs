//! JSON bodies exchanged with name servers, brokers and clients. Field names follow the
//! Java classes they mirror; unknown fields are ignored on input.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Topic permission bits (`PermName.java`).
pub mod perm {
    pub const PRIORITY: i32 = 8;
    pub const READ: i32 = 4;
    pub const WRITE: i32 = 2;
    pub const INHERIT: i32 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    pub timestamp: i64,
    pub counter: i64,
    #[serde(default)]
    pub state_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    #[serde(default = "default_filter_type")]
    pub topic_filter_type: String,
    #[serde(default)]
    pub topic_sys_flag: i32,
    #[serde(default)]
    pub order: bool,
    /// Apache 5's topic attributes (`message.type`, `queue.type`, `cleanup.policy`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Topic attributes Apache 5 knows, with the values each takes.
pub const TOPIC_ATTRIBUTES: [(&str, &[&str]); 3] = [
    (
        "message.type",
        &[
            "UNSPECIFIED",
            "NORMAL",
            "FIFO",
            "DELAY",
            "TRANSACTION",
            // Apache 5.4's priority messages: POP hands out higher queues first.
            "PRIORITY",
            "MIXED",
        ],
    ),
    ("queue.type", &["SimpleCQ", "BatchCQ"]),
    ("cleanup.policy", &["DELETE", "COMPACTION"]),
];

/// Applies Apache's attribute changes (`+key=value` sets, `-key` removes; comma
/// separated, `AttributeParser`) to `current`.
///
/// # Errors
/// A malformed entry, an unknown key or a value the key does not take, named.
pub fn apply_topic_attributes(
    current: &BTreeMap<String, String>,
    changes: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = current.clone();
    for entry in changes.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (set, rest) = match entry.split_at(1) {
            ("+", rest) => (true, rest),
            ("-", rest) => (false, rest),
            _ => {
                return Err(format!(
                    "attribute '{entry}' must start with + (set) or - (remove)"
                ))
            }
        };
        let (key, value) = match (set, rest.split_once('=')) {
            (true, Some((k, v))) => (k, Some(v)),
            (true, None) => return Err(format!("attribute '{entry}' needs key=value")),
            (false, None) => (rest, None),
            (false, Some(_)) => {
                return Err(format!("attribute '{entry}': removing takes no value"))
            }
        };
        let Some((_, allowed)) = TOPIC_ATTRIBUTES.iter().find(|(k, _)| *k == key) else {
            return Err(format!("unsupported topic attribute key: {key}"));
        };
        match value {
            Some(v) if !allowed.contains(&v) => {
                return Err(format!(
                    "value {v} is not allowed for topic attribute {key}: expected one of {}",
                    allowed.join(", ")
                ))
            }
            Some(v) => {
                out.insert(key.to_string(), v.to_string());
            }
            None => {
                out.remove(key);
            }
        }
    }
    Ok(out)
}

fn default_filter_type() -> String {
    "SINGLE_TAG".to_string()
}

impl TopicConfig {
    pub fn new(topic: &str, queues: i32, perm: i32) -> Self {
        TopicConfig {
            topic_name: topic.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm,
            topic_filter_type: default_filter_type(),
            topic_sys_flag: 0,
            order: false,
            attributes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    pub data_version: DataVersion,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    #[serde(default)]
    pub filter_server_list: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    #[serde(default)]
    pub topic_sys_flag: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    /// brokerId (0 = master) → "ip:port". Serialized with quoted keys, which both the Go
    /// and Java clients accept.
    pub broker_addrs: BTreeMap<i64, String>,
    #[serde(default)]
    pub enable_acting_master: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
    #[serde(default)]
    pub filter_server_table: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    pub cluster_addr_table: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    pub topic_list: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerIdList {
    pub consumer_id_list: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "producerDataSet", default)]
    pub producer_data_set: Vec<ProducerData>,
    #[serde(rename = "consumerDataSet", default)]
    pub consumer_data_set: Vec<ConsumerData>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    pub group_name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    pub group_name: String,
    #[serde(default)]
    pub consume_type: String,
    #[serde(default)]
    pub message_model: String,
    #[serde(default)]
    pub consume_from_where: String,
    #[serde(default)]
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(default)]
    pub unit_mode: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    pub topic: String,
    #[serde(default)]
    pub sub_string: String,
    #[serde(default)]
    pub tags_set: Vec<String>,
    /// Go sends these as strings, Java as numbers; the broker recomputes them from
    /// `tags_set` anyway, so they are kept only for display.
    #[serde(default)]
    pub code_set: Vec<serde_json::Value>,
    #[serde(default)]
    pub sub_version: i64,
    #[serde(default = "default_expression_type")]
    pub expression_type: String,
    #[serde(default)]
    pub class_filter_mode: bool,
}

fn default_expression_type() -> String {
    "TAG".to_string()
}

/// A message queue as clients name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
}

impl MessageQueue {
    /// The key form fastjson writes for a `MessageQueue` map key (fields sorted).
    pub fn fastjson_key(&self) -> String {
        format!(
            r#"{{"brokerName":{},"queueId":{},"topic":{}}}"#,
            serde_json::to_string(&self.broker_name).expect("string serializes"),
            self.queue_id,
            serde_json::to_string(&self.topic).expect("string serializes")
        )
    }
}

/// Writes `{"<field>":{<MessageQueue>:<value>,...}<rest>}` the way Apache's fastjson does:
/// objects as map keys. Not valid JSON, but what Java tools and the Go client parse.
pub fn fastjson_queue_map<V: Serialize>(
    field: &str,
    entries: &[(MessageQueue, V)],
    rest: &str,
) -> String {
    let mut out = format!("{{\"{field}\":{{");
    for (i, (mq, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&mq.fastjson_key());
        out.push(':');
        out.push_str(&serde_json::to_string(v).expect("value serializes"));
    }
    out.push('}');
    out.push_str(rest);
    out.push('}');
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    #[serde(default)]
    pub consumer_group: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub only_this_broker: bool,
    #[serde(default)]
    pub mq_set: Vec<MessageQueue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckClientConfigBody {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub group: String,
    pub subscription_data: SubscriptionData,
}

/// Where the JSON object or array starting at `from` ends (the index after its closing
/// bracket), strings and nesting respected; `None` when it does not close. fastjson's maps
/// keyed by objects (`{{"topic":…}:…}`) are not JSON, so their parts are found with this.
pub fn json_value_end(text: &[u8], from: usize) -> Option<usize> {
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for (i, &b) in text.iter().enumerate().skip(from) {
        match (in_str, b) {
            (true, b'\\') if !esc => esc = true,
            (true, b'"') if !esc => in_str = false,
            (true, _) => esc = false,
            (false, b'"') => in_str = true,
            (false, b'{' | b'[') => depth += 1,
            (false, b'}' | b']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Apache's fastjson writes integer map keys bare (`{"brokerAddrs":{0:"host:port"}}`), which
/// is not JSON. Quotes such keys so serde can read the body; valid JSON passes unchanged.
pub fn fastjson_to_json(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let (mut in_string, mut escaped) = (false, false);
    // Where the next object key may start: after `{` or `,` outside strings.
    let mut key_position = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        let was_in_string = in_string;
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if key_position && (b.is_ascii_digit() || b == b'-') {
            let end = i + body[i..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || **c == b'-')
                .count();
            let colon = body[end..].iter().position(|c| !c.is_ascii_whitespace());
            if colon.is_some_and(|k| body[end + k] == b':') {
                let buf = out.get_or_insert_with(|| body[..i].to_vec());
                buf.push(b'"');
                buf.extend_from_slice(&body[i..end]);
                buf.push(b'"');
                i = end;
                key_position = false;
                continue;
            }
        }
        if !was_in_string {
            match b {
                b'"' => {
                    in_string = true;
                    key_position = false;
                }
                b'{' | b',' => key_position = true,
                b if b.is_ascii_whitespace() => {}
                _ => key_position = false,
            }
        }
        if let Some(buf) = out.as_mut() {
            buf.push(b);
        }
        i += 1;
    }
    match out {
        Some(v) => std::borrow::Cow::Owned(v),
        None => std::borrow::Cow::Borrowed(body),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fastjson_integer_keys_are_quoted() {
        let fast = br#"{"brokerAddrTable":{"b":{"brokerAddrs":{0:"127.0.0.1:1", -1 :"x"},"n":[1,2],"s":"{3:4}"}}}"#;
        let fixed = fastjson_to_json(fast);
        let v: serde_json::Value = serde_json::from_slice(&fixed).expect("valid JSON");
        assert_eq!(v["brokerAddrTable"]["b"]["brokerAddrs"]["0"], "127.0.0.1:1");
        assert_eq!(v["brokerAddrTable"]["b"]["brokerAddrs"]["-1"], "x");
        assert_eq!(v["brokerAddrTable"]["b"]["n"][1], 2);
        assert_eq!(
            v["brokerAddrTable"]["b"]["s"], "{3:4}",
            "strings are left alone"
        );
        let valid = br#"{"a":{"0":"x"},"b":[0,1]}"#;
        assert!(matches!(
            fastjson_to_json(valid),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn topic_attributes_are_set_and_removed_as_apache_parses_them() {
        let none = BTreeMap::new();
        let a = apply_topic_attributes(&none, "+message.type=FIFO").unwrap();
        assert_eq!(a["message.type"], "FIFO");
        let b = apply_topic_attributes(&a, "-message.type,+queue.type=BatchCQ").unwrap();
        assert!(!b.contains_key("message.type"));
        assert_eq!(b["queue.type"], "BatchCQ");
        for bad in [
            "message.type=FIFO",
            "+message.type",
            "+nope=1",
            "+message.type=LOUD",
            "-queue.type=1",
        ] {
            assert!(apply_topic_attributes(&none, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fastjson_queue_maps_use_object_keys() {
        let mq = MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: 2,
        };
        assert_eq!(
            fastjson_queue_map("offsetTable", &[(mq, 5i64)], ""),
            r#"{"offsetTable":{{"brokerName":"b","queueId":2,"topic":"T"}:5}}"#
        );
    }

    use super::*;

    #[test]
    fn route_data_is_compact_with_quoted_broker_ids() {
        let route = TopicRouteData {
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
                topic_sys_flag: 0,
            }],
            broker_datas: vec![BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([(0, "127.0.0.1:10911".to_string())]),
                enable_acting_master: false,
            }],
            filter_server_table: HashMap::new(),
        };
        let json = serde_json::to_string(&route).unwrap();
        assert!(
            json.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911"}"#),
            "{json}"
        );
        assert!(!json.contains(' '));
        assert_eq!(
            serde_json::from_str::<TopicRouteData>(&json).unwrap(),
            route
        );
    }

    #[test]
    fn go_heartbeat_with_string_code_set_parses() {
        let json = r#"{"clientID":"10.0.0.5@123","producerDataSet":[],"consumerDataSet":[{"groupName":"maxshop",
            "consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet":[{"classFilterMode":false,"topic":"imooc1","subString":"*","tagsSet":[],"codeSet":["2598919"],
            "subVersion":1700000000000000000,"expressionType":"TAG"}],"unitMode":false}]}"#;
        let hb: HeartbeatData = serde_json::from_str(json).unwrap();
        assert_eq!(
            hb.consumer_data_set[0].subscription_data_set[0].sub_version,
            1_700_000_000_000_000_000
        );
    }
}
