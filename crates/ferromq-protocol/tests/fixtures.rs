//! Frames captured from the official Go client decode to what the client meant.

use bytes::BytesMut;
use ferromq_protocol::body::HeartbeatData;
use ferromq_protocol::command::DEFAULT_MAX_FRAME_BYTES;
use ferromq_protocol::header::{
    CommandHeader, PullMessageRequestHeader, QueryConsumerOffsetRequestHeader,
    SendMessageRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use ferromq_protocol::message::property;
use ferromq_protocol::{LanguageCode, RemotingCommand, SerializeType};

fn frame(name: &str) -> RemotingCommand {
    let path = format!(
        "{}/tests/fixtures/go-client-v2.1.2/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut buf = BytesMut::from(&bytes[..]);
    let cmd = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
        .unwrap()
        .expect("a whole frame");
    assert!(buf.is_empty(), "{name}: trailing bytes");
    assert_eq!(cmd.language, LanguageCode::Go);
    assert_eq!(cmd.version, 317);
    assert_eq!(cmd.serialize_type, SerializeType::Json);
    assert!(
        !cmd.is_response() && !cmd.is_oneway(),
        "the Go client never sets the oneway bit"
    );
    cmd
}

#[test]
fn go_send_message_frame() {
    let cmd = frame("send_message.bin");
    assert_eq!(cmd.code, 10);
    let h = SendMessageRequestHeader::decode(&cmd.ext_fields).unwrap();
    assert_eq!(
        (h.producer_group.as_str(), h.topic.as_str()),
        ("DEFAULT_PRODUCER", "imooc1")
    );
    assert_eq!(h.default_topic.as_deref(), Some("TBW102"));
    assert_eq!(h.default_topic_queue_nums, Some(4));
    assert_eq!(h.batch, Some(false));
    assert_eq!(
        property(h.properties.as_deref().unwrap(), "UNIQ_KEY").map(str::len),
        Some(32)
    );
    assert_eq!(&cmd.body[..], b"this is imooc1");
}

#[test]
fn go_heartbeat_frame() {
    let cmd = frame("heartbeat_consumer.bin");
    assert_eq!(cmd.code, 34);
    let hb: HeartbeatData = serde_json::from_slice(&cmd.body).unwrap();
    assert!(hb.client_id.contains('@'));
    let group = &hb.consumer_data_set[0];
    assert_eq!(group.group_name, "maxshop");
    assert_eq!(group.message_model, "CLUSTERING");
    let topics: Vec<&str> = group
        .subscription_data_set
        .iter()
        .map(|s| s.topic.as_str())
        .collect();
    assert!(
        topics.contains(&"imooc1") && topics.contains(&"%RETRY%maxshop"),
        "{topics:?}"
    );
    // Go's subscription version is in nanoseconds.
    assert!(group.subscription_data_set[0].sub_version > 1_000_000_000_000_000);
}

#[test]
fn go_pull_frame() {
    let cmd = frame("pull_message.bin");
    assert_eq!(cmd.code, 11);
    let h = PullMessageRequestHeader::decode(&cmd.ext_fields).unwrap();
    assert_eq!(
        (h.consumer_group.as_str(), h.topic.as_str()),
        ("maxshop", "imooc1")
    );
    assert_eq!(
        (h.max_msg_nums, h.suspend_timeout_millis, h.sys_flag),
        (32, 20_000, 2)
    );
    assert_eq!(h.subscription, None, "an empty expression reads as absent");
    assert_eq!(h.expression_type.as_deref(), Some("TAG"));
}

#[test]
fn go_offset_frames() {
    let q = frame("query_consumer_offset.bin");
    assert_eq!(q.code, 14);
    assert_eq!(
        QueryConsumerOffsetRequestHeader::decode(&q.ext_fields)
            .unwrap()
            .consumer_group,
        "maxshop"
    );
    let u = frame("update_consumer_offset.bin");
    assert_eq!(u.code, 15);
    let h = UpdateConsumerOffsetRequestHeader::decode(&u.ext_fields).unwrap();
    assert_eq!((h.topic.as_str(), h.commit_offset), ("imooc1", 0));
}

#[test]
fn go_name_server_frames() {
    let route = frame("get_route_info.bin");
    assert_eq!((route.code, route.field("topic")), (105, Some("imooc1")));
    let list = frame("get_consumer_list.bin");
    assert_eq!(
        (list.code, list.field("consumerGroup")),
        (38, Some("maxshop"))
    );
}

#[test]
fn every_prefix_of_a_captured_frame_is_incomplete_not_an_error() {
    let path = format!(
        "{}/tests/fixtures/go-client-v2.1.2/send_message.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(path).unwrap();
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(
            RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
            Ok(None)
        );
    }
}
