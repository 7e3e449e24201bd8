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

/// LITE_PULL_MESSAGE (361), which the Java client sends for a lite pull consumer, is a pull.
#[tokio::test]
async fn a_lite_pull_reads_like_a_pull() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("lite", b"x", "")).await.code, 0);
    let mut lite = pull_request("lite", 0, 0, 0);
    lite.code = 361;
    let resp = call(&broker, lite).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    assert_eq!(
        &MessageExt::decode_all(&resp.body).unwrap()[0].body[..],
        b"x"
    );
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

/// Held pulls wait on their own queue: an append to one queue answers the pulls held on
/// it and no other; the rest are answered PULL_NOT_FOUND when their hold runs out. Pulls
/// held for a connection that closed are dropped without harm to anyone else.
#[tokio::test]
async fn held_pulls_are_answered_by_their_own_queue_or_at_their_deadline() {
    let server = Server::start("");
    crate::harness::create_topic(&server.broker, "hold", 4).await;
    let broker = connect(&server.broker).await;
    let gone = connect(&server.broker).await;
    for queue in 0..4 {
        let conn = gone.clone();
        tokio::spawn(async move {
            conn.invoke(
                pull_request("hold", queue, 0, 20_000),
                Duration::from_secs(30),
            )
            .await
        });
    }
    let mut held = Vec::new();
    for i in 0..40 {
        let (conn, queue) = (broker.clone(), i % 4);
        held.push((
            queue,
            tokio::spawn(async move { call(&conn, pull_request("hold", queue, 0, 5_000)).await }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        held.iter().all(|(_, h)| !h.is_finished()),
        "pulls at the end of their queues must be held"
    );
    gone.close();
    let mut to_two = send_request("hold", b"for two", "");
    to_two.ext_fields.insert("queueId".into(), "2".into());
    assert_eq!(call(&broker, to_two).await.code, 0);
    let (two, others): (Vec<_>, Vec<_>) = held.into_iter().partition(|(q, _)| *q == 2);
    for (_, h) in two {
        let resp = h.await.unwrap();
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
        assert_eq!(
            &MessageExt::decode_all(&resp.body).unwrap()[0].body[..],
            b"for two"
        );
    }
    assert!(
        others.iter().all(|(_, h)| !h.is_finished()),
        "an append to queue 2 answered a pull held on another queue"
    );
    for (_, h) in others {
        let resp = h.await.unwrap();
        assert_eq!(resp.code, 19, "{:?}", resp.remark);
        assert_eq!(resp.field("nextBeginOffset"), Some("0"));
    }
    // The pulls of the closed connection were on these queues too.
    for queue in [0, 1, 3] {
        let mut send = send_request("hold", b"later", "");
        send.ext_fields.insert("queueId".into(), queue.to_string());
        assert_eq!(call(&broker, send).await.code, 0);
        let resp = call(&broker, pull_request("hold", queue, 0, 1_000)).await;
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
    }
}

/// A held pull woken by a message its filter rejects is answered PULL_RETRY_IMMEDIATELY
/// past it (Apache's NO_MATCHED_MESSAGE answer), and the next held pull takes the next
/// message that passes.
#[tokio::test]
async fn a_held_pull_woken_by_a_rejected_message_moves_past_it() {
    let server = Server::start("");
    crate::harness::create_topic(&server.broker, "tagged", 1).await;
    let broker = connect(&server.broker).await;
    let held_from = |offset: i64| {
        let mut pull = pull_request("tagged", 0, offset, 10_000);
        pull.ext_fields.insert("sysFlag".into(), "6".into());
        pull.ext_fields.insert("subscription".into(), "A".into());
        let conn = broker.clone();
        tokio::spawn(async move { call(&conn, pull).await })
    };
    let tagged =
        |tag: &str| send_request("tagged", tag.as_bytes(), &format!("TAGS\u{1}{tag}\u{2}"));
    let first = held_from(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call(&broker, tagged("B")).await.code, 0);
    let resp = first.await.unwrap();
    assert_eq!(resp.code, 20, "{:?}", resp.remark);
    assert!(resp.body.is_empty());
    assert_eq!(resp.field("nextBeginOffset"), Some("1"));
    let second = held_from(1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a pull at the end of the queue must be held"
    );
    assert_eq!(call(&broker, tagged("A")).await.code, 0);
    let resp = second.await.unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let found = MessageExt::decode_all(&resp.body).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(&found[0].body[..], b"A");
    assert_eq!(resp.field("nextBeginOffset"), Some("2"));
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
