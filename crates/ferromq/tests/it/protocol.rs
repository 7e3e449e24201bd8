//! Request/response behaviour that clients depend on.

use std::time::{Duration, Instant};

use ferromq_protocol::body::TopicRouteData;
use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::{RemotingCommand, SerializeType};

use crate::harness::{call, commit_request, connect, pull_request, send_request, Server};

#[tokio::test]
async fn name_server_serves_the_auto_create_template_and_refuses_unknown_topics() {
    let server = Server::start("");
    let ns = connect(&server.namesrv).await;
    let resp = call(
        &ns,
        RemotingCommand::request(105).with_field("topic", "TBW102"),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let route: TopicRouteData = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        route.broker_datas[0].broker_addrs.get(&0),
        Some(&server.broker)
    );
    assert_eq!(
        route.queue_datas[0].perm & 1,
        1,
        "TBW102 must carry INHERIT"
    );
    let body = std::str::from_utf8(&resp.body).unwrap();
    assert!(
        !body.contains(' ') && body.contains(r#""brokerAddrs":{"0":""#),
        "{body}"
    );
    let resp = call(
        &ns,
        RemotingCommand::request(105).with_field("topic", "nope"),
    )
    .await;
    assert_eq!(resp.code, 17);
}

#[tokio::test]
async fn send_auto_creates_registers_and_pull_returns_the_record() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let props = encode_properties([
        ("KEYS", "order-7"),
        ("TAGS", "TagA"),
        ("UNIQ_KEY", "ABCDEF"),
    ]);
    let resp = call(&broker, send_request("orders", b"hello", &props)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(resp.field("queueOffset"), Some("0"));
    let msg_id = resp.field("msgId").unwrap().to_string();
    assert_eq!(msg_id.len(), 32);
    // Registered with the name server right away.
    let ns = connect(&server.namesrv).await;
    let route = call(
        &ns,
        RemotingCommand::request(105).with_field("topic", "orders"),
    )
    .await;
    assert_eq!(route.code, 0);
    let route: TopicRouteData = serde_json::from_slice(&route.body).unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    let pull = call(&broker, pull_request("orders", 0, 0, 0)).await;
    assert_eq!(pull.code, 0);
    assert_eq!(pull.field("nextBeginOffset"), Some("1"));
    let msgs = MessageExt::decode_all(&pull.body).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(&msgs[0].body[..], b"hello");
    assert_eq!(msgs[0].property("KEYS"), Some("order-7"));
    assert_eq!(msgs[0].property("CLUSTER"), Some("DefaultCluster"));
    assert_eq!(msgs[0].offset_msg_id(), msg_id);
    // By offset id and by key.
    let (_, offset) = ferromq_protocol::message::decode_offset_msg_id(&msg_id).unwrap();
    let view = call(
        &broker,
        RemotingCommand::request(33).with_field("offset", offset),
    )
    .await;
    assert_eq!(
        MessageExt::decode_all(&view.body).unwrap()[0].body,
        msgs[0].body
    );
    let query = RemotingCommand::request(12)
        .with_field("topic", "orders")
        .with_field("key", "order-7")
        .with_field("maxNum", 10)
        .with_field("beginTimestamp", 0)
        .with_field("endTimestamp", i64::MAX);
    let found = call(&broker, query).await;
    assert_eq!(found.code, 0);
    assert_eq!(MessageExt::decode_all(&found.body).unwrap().len(), 1);
}

#[tokio::test]
async fn auto_created_topics_survive_a_crash_even_when_their_first_send_was_refused() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let resp = call(&broker, send_request("kept", b"stored", "")).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    // Created from the template, then refused: queue 99 is beyond its 4 queues.
    let refused = send_request("refused-first", b"never stored", "").with_field("queueId", 99);
    let resp = call(&broker, refused).await;
    assert_ne!(resp.code, 0);
    assert!(
        resp.remark
            .as_deref()
            .unwrap_or("")
            .contains("queueId[99] is illegal"),
        "{:?}",
        resp.remark
    );
    let server = server.crash_and_restart("");
    let ns = connect(&server.namesrv).await;
    for topic in ["kept", "refused-first"] {
        let mut found = None;
        for _ in 0..100 {
            let resp = call(
                &ns,
                RemotingCommand::request(105).with_field("topic", topic),
            )
            .await;
            if resp.code == 0 {
                found = Some(resp);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let route: TopicRouteData = serde_json::from_slice(
            &found
                .unwrap_or_else(|| panic!("{topic} lost in the crash"))
                .body,
        )
        .unwrap();
        assert_eq!(route.queue_datas[0].write_queue_nums, 4, "{topic}");
    }
}

#[tokio::test]
async fn held_pull_is_answered_when_a_message_arrives() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(
        call(&broker, send_request("lp", b"first", "")).await.code,
        0
    );
    let puller = broker.clone();
    let started = Instant::now();
    let held = tokio::spawn(async move { call(&puller, pull_request("lp", 0, 1, 15_000)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !held.is_finished(),
        "a pull at the end of the queue must be held"
    );
    // Another request on the same connection is not blocked by the held pull.
    assert_eq!(
        call(&broker, send_request("lp", b"second", "")).await.code,
        0
    );
    let resp = held.await.unwrap();
    assert_eq!(resp.code, 0);
    assert_eq!(
        &MessageExt::decode_all(&resp.body).unwrap()[0].body[..],
        b"second"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn held_pull_times_out_with_pull_not_found() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("idle", b"x", "")).await.code, 0);
    let resp = call(&broker, pull_request("idle", 0, 1, 300)).await;
    assert_eq!(resp.code, 19);
    assert_eq!(resp.field("nextBeginOffset"), Some("1"));
}

#[tokio::test]
async fn offsets_commit_query_and_new_group_starts_at_zero() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("off", b"x", "")).await.code, 0);
    let query = |group: &str| {
        RemotingCommand::request(14)
            .with_field("consumerGroup", group)
            .with_field("topic", "off")
            .with_field("queueId", 0)
    };
    let fresh = call(&broker, query("new-group")).await;
    assert_eq!((fresh.code, fresh.field("offset")), (0, Some("0")));
    let update = commit_request("g", "off", 0, 1);
    assert_eq!(call(&broker, update).await.code, 0);
    assert_eq!(call(&broker, query("g")).await.field("offset"), Some("1"));
    let max = call(
        &broker,
        RemotingCommand::request(30)
            .with_field("topic", "off")
            .with_field("queueId", 0),
    )
    .await;
    assert_eq!(max.field("offset"), Some("1"));
}

#[tokio::test]
async fn binary_header_requests_get_binary_header_replies() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let mut req = RemotingCommand::request(30)
        .with_field("topic", "none")
        .with_field("queueId", 0);
    req.serialize_type = SerializeType::RocketMq;
    let resp = call(&broker, req).await;
    assert_eq!(resp.serialize_type, SerializeType::RocketMq);
    assert_eq!((resp.code, resp.field("offset")), (0, Some("0")));
}

#[tokio::test]
async fn batch_send_assigns_consecutive_offsets() {
    use ferromq_protocol::message::{encode_batch_entry, BatchEntry};
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let mut body = bytes::BytesMut::new();
    for i in 0..3u8 {
        encode_batch_entry(
            &BatchEntry {
                flag: 0,
                body: vec![i].into(),
                properties: encode_properties([("KEYS", "b")]),
            },
            &mut body,
        );
    }
    let mut req = send_request("batch", b"", "");
    req.code = 320;
    req.body = body.freeze();
    let resp = call(&broker, req).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(resp.field("msgId").unwrap().split(',').count(), 3);
    let pull = call(&broker, pull_request("batch", 0, 0, 0)).await;
    let msgs = MessageExt::decode_all(&pull.body).unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}
