//! Bad input gets a clear error and never takes the broker down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ferromq_protocol::RemotingCommand;

use crate::harness::{call, connect, refused_start, send_request, Server};

#[tokio::test]
async fn unknown_request_code_is_not_supported() {
    let server = Server::start("");
    for addr in [&server.broker, &server.namesrv] {
        let conn = connect(addr).await;
        let resp = call(&conn, RemotingCommand::request(9999)).await;
        assert_eq!(resp.code, 3);
        assert!(resp.remark.unwrap().contains("9999"));
    }
}

#[tokio::test]
async fn message_over_max_size_is_illegal() {
    let server = Server::start("maxMessageSize=1024\n");
    let broker = connect(&server.broker).await;
    let resp = call(&broker, send_request("big", &vec![0u8; 1025], "")).await;
    assert_eq!(resp.code, 13);
    assert!(resp.remark.unwrap().contains("1024"));
    assert_eq!(
        call(&broker, send_request("big", &vec![0u8; 1024], ""))
            .await
            .code,
        0
    );
}

#[tokio::test]
async fn missing_header_field_is_named_in_the_error() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let mut req = send_request("t", b"x", "");
    req.ext_fields.remove("bornTimestamp");
    let resp = call(&broker, req).await;
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("bornTimestamp"));
    let bad = RemotingCommand::request(30)
        .with_field("topic", "t")
        .with_field("queueId", "zero");
    let resp = call(&broker, bad).await;
    assert!(resp.remark.unwrap().contains("queueId"));
}

#[tokio::test]
async fn malformed_bodies_are_refused() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let mut batch = send_request("t", &[0, 0, 0, 99, 1, 2], "");
    batch.code = 320;
    assert_eq!(call(&broker, batch).await.code, 13);
    let hb = call(
        &broker,
        RemotingCommand::request(34).with_body(&b"{not json"[..]),
    )
    .await;
    assert_eq!(hb.code, 1);
    let bad_topic = call(&broker, send_request("bad topic!", b"x", "")).await;
    assert_eq!(bad_topic.code, 29);
    let ns = connect(&server.namesrv).await;
    let reg = RemotingCommand::request(103)
        .with_field("brokerName", "b")
        .with_field("brokerAddr", "127.0.0.1:1")
        .with_field("clusterName", "c")
        .with_field("brokerId", 0)
        .with_body(&b"[1,2"[..]);
    assert_eq!(call(&ns, reg).await.code, 1);
    // The batch creations: a body that is not the list, a list with a bad entry (nothing
    // of it stored), and the broker still answers.
    for (code, body) in [
        (18, &br#"{"topicConfigList": 7}"#[..]),
        (18, &b"\xff\xfe"[..]),
        (225, &br#"{"groupConfigList": [{"retryMaxTimes": 1}]}"#[..]),
        (225, &b"{"[..]),
    ] {
        let resp = call(&broker, RemotingCommand::request(code).with_body(body)).await;
        assert_eq!(resp.code, 29, "{code}: {:?}", resp.remark);
    }
    let half_bad = br#"{"topicConfigList": [
        {"topicName": "list-ok", "readQueueNums": 1, "writeQueueNums": 1, "perm": 6},
        {"topicName": "list-too-many", "readQueueNums": 5000, "writeQueueNums": 1, "perm": 6}]}"#;
    let resp = call(
        &broker,
        RemotingCommand::request(18).with_body(&half_bad[..]),
    )
    .await;
    assert_eq!(resp.code, 29);
    assert!(
        resp.remark
            .as_deref()
            .unwrap_or("")
            .contains("list-too-many"),
        "{:?}",
        resp.remark
    );
    let no_group_name = br#"{"groupConfigList": [{"groupName": "", "retryMaxTimes": 1}]}"#;
    let resp = call(
        &broker,
        RemotingCommand::request(225).with_body(&no_group_name[..]),
    )
    .await;
    assert_eq!(resp.code, 29);
    let all = call(&broker, RemotingCommand::request(21)).await;
    assert!(
        !String::from_utf8_lossy(&all.body).contains("list-ok"),
        "nothing of a refused list is stored"
    );
}

/// Sends raw bytes on a fresh connection and reports whether the server closed it.
fn closed_after(addr: &str, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        // A read timeout means the server kept the connection open.
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(
        call(&broker, send_request("t", b"before", "")).await.code,
        0
    );
    let cases: Vec<Vec<u8>> = vec![
        // Claims a 2 GiB frame: refused before allocating.
        vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        // Negative length.
        vec![0xff, 0xff, 0xff, 0xf0],
        // Header length beyond the frame.
        vec![0, 0, 0, 8, 0, 0, 0x10, 0, 1, 2, 3, 4],
        // Invalid JSON header.
        [&[0u8, 0, 0, 9, 0, 0, 0, 5][..], b"{oops"].concat(),
        // Unknown serialization type.
        [&[0u8, 0, 0, 6, 7, 0, 0, 2][..], b"{}"].concat(),
        // Truncated binary header.
        [&[0u8, 0, 0, 7, 1, 0, 0, 3][..], &[0, 10, 9]].concat(),
    ];
    for (i, bytes) in cases.iter().enumerate() {
        for addr in [server.broker.clone(), server.namesrv.clone()] {
            let addr2 = addr.clone();
            let bytes = bytes.clone();
            let closed = tokio::task::spawn_blocking(move || closed_after(&addr2, &bytes))
                .await
                .unwrap();
            assert!(
                closed,
                "case {i}: {addr} kept a connection that sent garbage"
            );
        }
        assert_eq!(
            call(
                &broker,
                send_request("t", format!("after {i}").as_bytes(), "")
            )
            .await
            .code,
            0
        );
    }
}

#[test]
fn bad_config_value_refuses_to_start_and_unknown_keys_warn() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_start(dir.path(), "flushDiskType=SOMETIMES\n");
    assert!(
        err.contains("flushDiskType") && err.contains("SOMETIMES") && err.contains("SYNC_FLUSH"),
        "{err}"
    );

    // ACL switched on with a file that is missing, then with one that is malformed.
    let acl = dir.path().join("plain_acl.yml");
    let conf = format!("aclEnable=true\nplainAclFile={}\n", acl.display());
    let err = refused_start(dir.path(), &conf);
    assert!(
        err.contains("aclEnable=true") && err.contains("No such file"),
        "{err}"
    );
    std::fs::write(&acl, "accounts: [").unwrap();
    let err = refused_start(dir.path(), &conf);
    assert!(
        err.contains("aclEnable=true") && err.contains("plain_acl.yml"),
        "{err}"
    );

    let mut server = Server::start("someFutureKey=1\nbrokerName=b1\n");
    assert!(server.is_running());
    crate::harness::eventually("the unknown-key warning", || {
        server.logs().contains("someFutureKey")
    });
}

#[tokio::test]
async fn out_of_range_queues_topics_and_properties_are_refused() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("q", b"x", "")).await.code, 0);
    let mut bad_queue = send_request("q", b"x", "");
    bad_queue.ext_fields.insert("queueId".into(), "99".into());
    let resp = call(&broker, bad_queue).await;
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("queueId[99]"));
    let long_props = format!("KEYS\u{1}{}\u{2}", "k".repeat(40_000));
    assert_eq!(
        call(&broker, send_request("q", b"x", &long_props))
            .await
            .code,
        13
    );
    let pull_unknown = call(
        &broker,
        crate::harness::pull_request("never-created", 0, 0, 0),
    )
    .await;
    assert_eq!(pull_unknown.code, 17);
    let pull_bad_queue = call(&broker, crate::harness::pull_request("q", 42, 0, 0)).await;
    assert_eq!(pull_bad_queue.code, 1);
    let mut no_template = send_request("not-auto", b"x", "");
    no_template.ext_fields.remove("defaultTopic");
    assert_eq!(call(&broker, no_template).await.code, 17);
    let sql = crate::harness::pull_request("q", 0, 0, 0)
        .with_field("sysFlag", 4)
        .with_field("expressionType", "SQL92")
        .with_field("subscription", "a > 1");
    assert_eq!(call(&broker, sql).await.code, 1);
    assert_eq!(
        call(&broker, send_request("q", b"still serving", ""))
            .await
            .code,
        0
    );
}

#[tokio::test]
async fn auto_create_disabled_refuses_unknown_topics() {
    let server = Server::start("autoCreateTopicEnable=false\n");
    let broker = connect(&server.broker).await;
    let resp = call(&broker, send_request("fresh", b"x", "")).await;
    assert_eq!(resp.code, 17);
    assert!(resp.remark.unwrap().contains("fresh"));
}

#[tokio::test]
async fn trickling_and_idle_connections_are_closed_while_others_are_served() {
    let server = Server::start("serverChannelMaxIdleTimeSeconds=1\n");
    let addr = server.broker.clone();
    let slow = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A frame announced and never finished: one byte every 200 ms.
        s.write_all(&[0, 0, 1, 0]).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..50 {
            if s.write_all(b"x").is_err() {
                return started.elapsed();
            }
            let mut buf = [0u8; 8];
            if matches!(s.read(&mut buf), Ok(0)) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("a trickling connection was kept open for 15 s");
    });
    let broker = connect(&server.broker).await;
    for i in 0..5 {
        assert_eq!(
            call(&broker, send_request("t", format!("m{i}").as_bytes(), ""))
                .await
                .code,
            0
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed_after = slow.await.unwrap();
    assert!(
        closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_and_the_rest_are_served() {
    // No dashboard: its own client connection would take one of the three slots.
    let server = Server::start_with("maxConnections=3\n", &["--no-dashboard"]);
    let first = connect(&server.broker).await;
    let _second = connect(&server.broker).await;
    let _third = connect(&server.broker).await;
    assert_eq!(call(&first, send_request("t", b"in", "")).await.code, 0);
    let addr = server.broker.clone();
    let refused = tokio::task::spawn_blocking(move || closed_after(&addr, b""))
        .await
        .unwrap();
    assert!(refused, "a fourth connection was accepted");
    assert_eq!(call(&first, send_request("t", b"still", "")).await.code, 0);
    _third.close();
    // The freed slot takes a new client.
    let mut served = false;
    for _ in 0..150 {
        if let Ok(c) = ferromq_remoting::connect(
            &server.broker,
            std::sync::Arc::new(ferromq_remoting::NoInbound),
            Duration::from_secs(2),
        )
        .await
        {
            if c.invoke(send_request("t", b"new", ""), Duration::from_secs(2))
                .await
                .is_ok_and(|r| r.code == 0)
            {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a slot freed by a closed connection was not reused");
}

/// Every request Apache's tools added (broker and name server): a missing field is named in
/// the error, a bad body is refused, and nothing takes either server down.
#[tokio::test]
async fn tool_requests_with_bad_headers_or_bodies_get_clear_errors() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let namesrv = connect(&server.namesrv).await;
    // (code, a field the request needs): sent with no fields at all.
    for (code, field) in [
        (351, "topic"),
        (321, "topic"),
        (315, "statsName"),
        (300, "topic"),
        (343, "group"),
        (352, "group"),
    ] {
        let resp = call(&broker, RemotingCommand::request(code)).await;
        assert_eq!(resp.code, 1, "code {code}: {:?}", resp.remark);
        assert!(
            resp.remark.unwrap().contains(field),
            "code {code} names {field}"
        );
    }
    for (code, field) in [
        (100, "namespace"),
        (101, "namespace"),
        (102, "namespace"),
        (219, "namespace"),
        (205, "brokerName"),
        (327, "brokerName"),
        (224, "cluster"),
    ] {
        let resp = call(&namesrv, RemotingCommand::request(code)).await;
        assert_eq!(resp.code, 1, "code {code}: {:?}", resp.remark);
        assert!(
            resp.remark.unwrap().contains(field),
            "code {code} names {field}"
        );
    }
    // A consume-queue query for a queue that does not exist, and a huge count.
    let cq = RemotingCommand::request(321)
        .with_field("topic", "nope")
        .with_field("queueId", "0")
        .with_field("index", "0")
        .with_field("count", "2147483647");
    let resp = call(&broker, cq).await;
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("not exist"));
    // Stats never counted are "not exist", as Apache answers.
    let stats = RemotingCommand::request(315)
        .with_field("statsName", "TOPIC_PUT_NUMS")
        .with_field("statsKey", "never-sent");
    assert_eq!(call(&broker, stats).await.code, 1);
    // updateBrokerConfig: an empty body, an unknown key, a bad value, a restart-only key.
    for (body, expect) in [
        ("", "no configuration key"),
        ("noSuchKey=1", "noSuchKey"),
        ("brokerPermission=5", "brokerPermission"),
        ("listenPort=1", "restart"),
    ] {
        let resp = call(
            &broker,
            RemotingCommand::request(25).with_body(body.to_string()),
        )
        .await;
        assert_eq!(resp.code, 1, "{body}");
        assert!(resp.remark.unwrap().contains(expect), "{body}");
    }
    // Topic attributes the broker does not know are refused, naming them.
    let mut create = RemotingCommand::request(17)
        .with_field("topic", "attr-topic")
        .with_field("readQueueNums", "1")
        .with_field("writeQueueNums", "1")
        .with_field("perm", "6");
    create = create.with_field("attributes", "+no.such=1");
    let resp = call(&broker, create).await;
    assert_eq!(resp.code, 29);
    assert!(resp.remark.unwrap().contains("no.such"));
    // A data-version query without a body, a topic registration with a bad body.
    let dv = RemotingCommand::request(322).with_field("brokerAddr", "127.0.0.1:1");
    assert_eq!(call(&namesrv, dv).await.code, 1);
    let reg = RemotingCommand::request(217)
        .with_field("topic", "t")
        .with_body(b"{not json".to_vec());
    let resp = call(&namesrv, reg).await;
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("TopicRouteData"));
    // Both still serve.
    assert_eq!(
        call(&broker, send_request("still-up", b"x", "")).await.code,
        0
    );
    assert_eq!(call(&namesrv, RemotingCommand::request(106)).await.code, 0);
}

/// Replies (SEND_REPLY_MESSAGE, 324 and 325) that cannot reach anyone are refused with the
/// reason, and the broker goes on serving.
#[tokio::test]
async fn replies_without_a_requester_or_a_topic_are_refused() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    let reply = |topic: &str, props: &str, body: &[u8]| {
        let mut r = send_request(topic, body, props);
        r.code = 324;
        r
    };
    let no_requester = call(
        &conn,
        reply(
            "DefaultCluster_REPLY_TOPIC",
            "MSG_TYPE\u{1}reply\u{2}",
            b"x",
        ),
    )
    .await;
    assert_eq!(no_requester.code, 1);
    assert!(
        no_requester
            .remark
            .as_deref()
            .unwrap_or_default()
            .contains("REPLY_TO_CLIENT"),
        "{:?}",
        no_requester.remark
    );
    let gone = call(
        &conn,
        reply(
            "DefaultCluster_REPLY_TOPIC",
            "REPLY_TO_CLIENT\u{1}1.2.3.4@gone\u{2}",
            b"x",
        ),
    )
    .await;
    assert_eq!(gone.code, 1);
    assert!(
        gone.remark
            .as_deref()
            .unwrap_or_default()
            .contains("channel of <1.2.3.4@gone> not found"),
        "{:?}",
        gone.remark
    );
    let no_topic = call(
        &conn,
        reply(
            "NoSuchReplyTopic",
            "REPLY_TO_CLIENT\u{1}1.2.3.4@gone\u{2}",
            b"x",
        ),
    )
    .await;
    assert_eq!(no_topic.code, 17, "{:?}", no_topic.remark);
    let too_big = call(
        &conn,
        reply(
            "DefaultCluster_REPLY_TOPIC",
            "",
            &vec![0u8; 5 * 1024 * 1024],
        ),
    )
    .await;
    assert_eq!(too_big.code, 13, "{:?}", too_big.remark);
    let mut headless = RemotingCommand::request(325);
    headless.body = bytes::Bytes::from_static(b"x");
    let headless = call(&conn, headless).await;
    assert_eq!(headless.code, 1, "{:?}", headless.remark);
    // V2 keys are read as V2.
    let mut v2 = reply("NoSuchReplyTopic", "", b"x");
    v2.code = 325;
    use ferromq_protocol::header::CommandHeader;
    let mut short = v2.ext_fields.clone();
    short.clear();
    ferromq_protocol::header::SendMessageRequestHeader::decode(&v2.ext_fields)
        .unwrap()
        .encode_v2(&mut short);
    v2.ext_fields = short;
    assert_eq!(call(&conn, v2).await.code, 17);
    assert_eq!(
        call(&conn, send_request("still-served", b"x", ""))
            .await
            .code,
        0
    );
}

#[tokio::test]
async fn lite_topic_messages_are_refused_by_name_never_stored_as_ordinary_ones() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    let resp = call(
        &conn,
        send_request("lite-parent", b"x", "__LITE_TOPIC\u{1}order-42\u{2}"),
    )
    .await;
    assert_eq!(resp.code, 13, "MESSAGE_ILLEGAL: {:?}", resp.remark);
    assert!(
        resp.remark
            .as_deref()
            .unwrap_or("")
            .contains("lite topics (RIP-83"),
        "{:?}",
        resp.remark
    );
    let max = call(
        &conn,
        RemotingCommand::request(30)
            .with_field("topic", "lite-parent")
            .with_field("queueId", 0),
    )
    .await;
    assert_ne!(
        max.field("offset"),
        Some("1"),
        "the refused message was stored"
    );
}
