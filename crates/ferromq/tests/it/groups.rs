//! Consumer-group features over raw requests: retry and dead letters, queue locks,
//! filters, offset reset and stats.

use std::time::{Duration, Instant};

use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use serde_json::json;

use crate::harness::{call, commit_request, connect, pull_request, send_request, Server};

const QUICK_LEVELS: &str =
    "messageDelayLevel=1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s\n";

fn heartbeat(
    client: &str,
    group: &str,
    topic: &str,
    kind: &str,
    expression: &str,
) -> RemotingCommand {
    let body = json!({
        "clientID": client,
        "producerDataSet": [],
        "consumerDataSet": [{
            "groupName": group, "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "unitMode": false,
            "subscriptionDataSet": [{"topic": topic, "subString": expression, "expressionType": kind,
                                     "tagsSet": [], "codeSet": [], "subVersion": 1, "classFilterMode": false}]
        }]
    });
    RemotingCommand::request(34).with_body(body.to_string())
}

fn group_pull(group: &str, topic: &str, queue: i32, offset: i64) -> RemotingCommand {
    let mut p = pull_request(topic, queue, offset, 0);
    p.ext_fields.insert("consumerGroup".into(), group.into());
    p
}

/// Pulls a queue until a message arrives or the deadline passes.
async fn pull_until(
    conn: &Connection,
    group: &str,
    topic: &str,
    queue: i32,
    within: Duration,
) -> Vec<MessageExt> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut p = group_pull(group, topic, queue, 0);
        p.ext_fields.insert("sysFlag".into(), "2".into());
        p.ext_fields
            .insert("suspendTimeoutMillis".into(), "1000".into());
        let resp = call(conn, p).await;
        if resp.code == 0 {
            return MessageExt::decode_all(&resp.body).unwrap();
        }
    }
    Vec::new()
}

async fn send_back(
    conn: &Connection,
    msg: &MessageExt,
    group: &str,
    delay_level: i32,
    max: i32,
) -> RemotingCommand {
    let req = RemotingCommand::request(36)
        .with_field("offset", msg.commit_log_offset)
        .with_field("group", group)
        .with_field("delayLevel", delay_level)
        .with_field("originMsgId", msg.offset_msg_id())
        .with_field("originTopic", &msg.topic)
        .with_field("maxReconsumeTimes", max);
    call(conn, req).await
}

#[tokio::test]
async fn failed_message_is_retried_with_increasing_reconsume_times_then_dead_lettered() {
    let server = Server::start(QUICK_LEVELS);
    let broker = connect(&server.broker).await;
    let props = encode_properties([("KEYS", "k1"), ("UNIQ_KEY", "U1")]);
    assert_eq!(
        call(&broker, send_request("work", b"payload", &props))
            .await
            .code,
        0
    );
    let first = MessageExt::decode_all(&call(&broker, group_pull("g", "work", 0, 0)).await.body)
        .unwrap()
        .remove(0);
    assert_eq!(send_back(&broker, &first, "g", 0, 2).await.code, 0);
    let retried = pull_until(&broker, "g", "%RETRY%g", 0, Duration::from_secs(8)).await;
    assert_eq!(retried.len(), 1);
    let r1 = &retried[0];
    assert_eq!((r1.reconsume_times, &r1.body[..]), (1, &b"payload"[..]));
    assert_eq!(r1.property("RETRY_TOPIC"), Some("work"));
    assert_eq!(
        r1.property("ORIGIN_MESSAGE_ID"),
        Some(first.offset_msg_id().as_str())
    );
    assert_eq!(
        r1.property("UNIQ_KEY"),
        Some("U1"),
        "the client-visible id is stable"
    );
    // Second failure: retried again; third: max (2) reached → dead letter queue.
    assert_eq!(send_back(&broker, r1, "g", 0, 2).await.code, 0);
    let mut p = group_pull("g", "%RETRY%g", 0, 1);
    p.ext_fields.insert("sysFlag".into(), "2".into());
    p.ext_fields
        .insert("suspendTimeoutMillis".into(), "8000".into());
    let r2 = MessageExt::decode_all(&call(&broker, p).await.body)
        .unwrap()
        .remove(0);
    assert_eq!(r2.reconsume_times, 2);
    assert_eq!(send_back(&broker, &r2, "g", 0, 2).await.code, 0);
    let dead = pull_until(&broker, "g-dlq-reader", "%DLQ%g", 0, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].reconsume_times, &dead[0].body[..]),
        (3, &b"payload"[..])
    );
    assert_eq!(
        dead[0].property("ORIGIN_MESSAGE_ID"),
        Some(first.offset_msg_id().as_str())
    );
    // A negative level goes straight to the DLQ.
    assert_eq!(send_back(&broker, &first, "g", -1, 16).await.code, 0);
    let dlq = call(&broker, group_pull("x", "%DLQ%g", 0, 1)).await;
    assert_eq!(dlq.code, 0);
    // Unknown offsets are refused clearly.
    let mut bogus = first.clone();
    bogus.commit_log_offset = 1 << 40;
    let resp = send_back(&broker, &bogus, "g", 0, 16).await;
    assert_eq!(resp.code, 1);
    assert!(resp
        .remark
        .unwrap()
        .contains("look message by offset failed"));
}

#[tokio::test]
async fn retry_delay_follows_level_three_plus_reconsume_times() {
    let server = Server::start("messageDelayLevel=1s 1s 2s 5s\n");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("w", b"x", "")).await.code, 0);
    let first = MessageExt::decode_all(&call(&broker, group_pull("g", "w", 0, 0)).await.body)
        .unwrap()
        .remove(0);
    let sent = Instant::now();
    assert_eq!(send_back(&broker, &first, "g", 0, 16).await.code, 0);
    let retried = pull_until(&broker, "g", "%RETRY%g", 0, Duration::from_secs(6)).await;
    let elapsed = sent.elapsed();
    assert_eq!(retried.len(), 1);
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_millis(3500),
        "level 3 = 2 s, took {elapsed:?}"
    );
}

#[tokio::test]
async fn queue_locks_go_to_one_client_and_are_released_by_it() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let mq = |q: i32| json!({"topic": "T", "brokerName": "broker-a", "queueId": q});
    let lock = |client: &str, qs: Vec<serde_json::Value>| {
        RemotingCommand::request(41)
            .with_body(json!({"consumerGroup": "g", "clientId": client, "mqSet": qs}).to_string())
    };
    let granted = |resp: RemotingCommand| -> Vec<i64> {
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let mut q: Vec<i64> = v["lockOKMQSet"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["queueId"].as_i64().unwrap())
            .collect();
        q.sort();
        q
    };
    assert_eq!(
        granted(call(&broker, lock("c1", vec![mq(0), mq(1)])).await),
        vec![0, 1]
    );
    assert_eq!(
        granted(call(&broker, lock("c2", vec![mq(1), mq(2)])).await),
        vec![2]
    );
    let unlock = RemotingCommand::request(42)
        .with_body(json!({"consumerGroup": "g", "clientId": "c1", "mqSet": [mq(1)]}).to_string());
    assert_eq!(call(&broker, unlock).await.code, 0);
    assert_eq!(
        granted(call(&broker, lock("c2", vec![mq(1)])).await),
        vec![1]
    );
    assert_eq!(
        call(
            &broker,
            RemotingCommand::request(41).with_body(&b"nope"[..])
        )
        .await
        .code,
        1
    );
}

#[tokio::test]
async fn tag_and_sql_subscriptions_filter_on_the_broker() {
    let server = Server::start("enablePropertyFilter=true\n");
    let broker = connect(&server.broker).await;
    for (tag, a, b) in [
        ("TagA", "7", "x"),
        ("TagB", "3", "x"),
        ("TagC", "9", "y"),
        ("Aa", "8", "x"),
    ] {
        let props = encode_properties([("TAGS", tag), ("a", a), ("b", b)]);
        assert_eq!(
            call(&broker, send_request("f", tag.as_bytes(), &props))
                .await
                .code,
            0
        );
    }
    let bodies = |resp: RemotingCommand| -> Vec<String> {
        if resp.code != 0 {
            return vec![format!("code {}", resp.code)];
        }
        MessageExt::decode_all(&resp.body)
            .unwrap()
            .iter()
            .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
            .collect()
    };
    assert_eq!(
        call(&broker, heartbeat("c1", "tags", "f", "TAG", "TagA || BB"))
            .await
            .code,
        0
    );
    // "BB" has the same hash as "Aa": only the exact check keeps "Aa" out.
    assert_eq!(
        bodies(call(&broker, group_pull("tags", "f", 0, 0)).await),
        vec!["TagA"]
    );
    assert_eq!(
        call(
            &broker,
            heartbeat("c2", "sql", "f", "SQL92", "a > 5 AND b = 'x'")
        )
        .await
        .code,
        0
    );
    assert_eq!(
        bodies(call(&broker, group_pull("sql", "f", 0, 0)).await),
        vec!["TagA", "Aa"]
    );
    assert_eq!(
        call(&broker, heartbeat("c3", "bad", "f", "SQL92", "a > AND"))
            .await
            .code,
        0
    );
    let bad = call(&broker, group_pull("bad", "f", 0, 0)).await;
    assert_eq!(bad.code, 23);
    assert!(bad.remark.unwrap().contains("a > AND"));
    let check = |kind: &str, expr: &str| {
        let body = json!({"clientId": "c", "group": "g", "subscriptionData": {"topic": "f", "subString": expr, "expressionType": kind}});
        RemotingCommand::request(46).with_body(body.to_string())
    };
    assert_eq!(call(&broker, check("SQL92", "a > 1")).await.code, 0);
    assert_eq!(call(&broker, check("SQL92", "a >")).await.code, 23);
    assert_eq!(
        call(&broker, send_request("f", b"still serving", ""))
            .await
            .code,
        0
    );
}

#[tokio::test]
async fn sql_subscriptions_need_property_filtering_enabled() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("f", b"x", "")).await.code, 0);
    assert_eq!(
        call(&broker, heartbeat("c", "sql", "f", "SQL92", "a > 1"))
            .await
            .code,
        0
    );
    let resp = call(&broker, group_pull("sql", "f", 0, 0)).await;
    assert_eq!(resp.code, 1);
    assert!(resp.remark.unwrap().contains("SQL92"));
}

#[tokio::test]
async fn reset_offset_moves_committed_offsets_and_stats_report_lag() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let mut req = send_request("r", b"old", "");
    req.ext_fields.insert("queueId".into(), "0".into());
    assert_eq!(call(&broker, req).await.code, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..2 {
        assert_eq!(call(&broker, send_request("r", b"new", "")).await.code, 0);
    }
    let commit = commit_request("g", "r", 0, 3);
    assert_eq!(call(&broker, commit).await.code, 0);
    assert_eq!(
        call(&broker, heartbeat("c1", "g", "r", "TAG", "*"))
            .await
            .code,
        0
    );
    let stats = call(
        &broker,
        RemotingCommand::request(208)
            .with_field("consumerGroup", "g")
            .with_field("topic", "r"),
    )
    .await;
    assert_eq!(stats.code, 0);
    let text = String::from_utf8(stats.body.to_vec()).unwrap();
    assert!(text.contains(r#"{"brokerName":"broker-a","queueId":0,"topic":"r"}:{"brokerOffset":3,"consumerOffset":3"#), "{text}");
    let reset = RemotingCommand::request(222)
        .with_field("topic", "r")
        .with_field("group", "g")
        .with_field("timestamp", cut)
        .with_field("isForce", true);
    let resp = call(&broker, reset).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let query = RemotingCommand::request(14)
        .with_field("consumerGroup", "g")
        .with_field("topic", "r")
        .with_field("queueId", 0);
    assert_eq!(call(&broker, query).await.field("offset"), Some("1"));
    let conns = call(
        &broker,
        RemotingCommand::request(203).with_field("consumerGroup", "g"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&conns.body).unwrap();
    assert_eq!(v["connectionSet"][0]["clientId"], "c1");
    assert_eq!(v["messageModel"], "CLUSTERING");
    assert_eq!(
        call(
            &broker,
            RemotingCommand::request(203).with_field("consumerGroup", "nobody")
        )
        .await
        .code,
        206
    );
    assert_eq!(
        call(
            &broker,
            RemotingCommand::request(202).with_field("topic", "r")
        )
        .await
        .code,
        0
    );
    assert_eq!(
        call(
            &broker,
            RemotingCommand::request(202).with_field("topic", "none")
        )
        .await
        .code,
        17
    );
}

/// As Apache's broker: a heartbeat carries the group's whole subscription, so a topic it no
/// longer names is unsubscribed (Apache's 5.x client drops its POP retry topic so).
#[tokio::test]
async fn a_heartbeat_without_a_topic_unsubscribes_it() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    let beat = |topics: &[&str]| {
        let subs: Vec<_> = topics
            .iter()
            .map(|t| {
                json!({"topic": t, "subString": "*", "expressionType": "TAG", "tagsSet": [],
                            "codeSet": [], "subVersion": 1, "classFilterMode": false})
            })
            .collect();
        let body = json!({
            "clientID": "unsub-client", "producerDataSet": [],
            "consumerDataSet": [{
                "groupName": "unsub-g", "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
                "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "unitMode": false,
                "subscriptionDataSet": subs
            }]
        });
        RemotingCommand::request(34).with_body(body.to_string())
    };
    let subscribed = async |conn: &Connection| {
        let resp = call(
            conn,
            RemotingCommand::request(203).with_field("consumerGroup", "unsub-g"),
        )
        .await;
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let mut topics: Vec<String> = body["subscriptionTable"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        topics.sort();
        topics
    };
    assert_eq!(call(&conn, beat(&["sub-a", "sub-b"])).await.code, 0);
    assert_eq!(subscribed(&conn).await, ["sub-a", "sub-b"]);
    assert_eq!(call(&conn, beat(&["sub-a"])).await.code, 0);
    assert_eq!(subscribed(&conn).await, ["sub-a"]);
}

/// UPDATE_AND_GET_GROUP_FORBIDDEN (353): a group forbidden to read a topic is refused its
/// pulls, other groups and topics are not, and the ban survives a crash until lifted.
#[tokio::test]
async fn a_group_forbidden_to_read_a_topic_is_refused_its_pulls() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    for topic in ["guarded", "open"] {
        assert_eq!(call(&broker, send_request(topic, b"x", "")).await.code, 0);
    }
    let forbid = |readable: Option<bool>| {
        let mut r = RemotingCommand::request(353)
            .with_field("group", "G")
            .with_field("topic", "guarded");
        if let Some(v) = readable {
            r = r.with_field("readable", v);
        }
        r
    };
    let set = call(&broker, forbid(Some(false))).await;
    assert_eq!(set.code, 0, "{:?}", set.remark);
    let body: serde_json::Value = serde_json::from_slice(&set.body).unwrap();
    assert_eq!(
        body,
        json!({"group": "G", "topic": "guarded", "readable": false})
    );
    let refused = call(&broker, group_pull("G", "guarded", 0, 0)).await;
    assert_eq!(refused.code, 16);
    assert_eq!(
        refused.remark.as_deref(),
        Some("the consumer group[G] is forbidden for topic[guarded]")
    );
    assert_eq!(call(&broker, group_pull("G", "open", 0, 0)).await.code, 0);
    assert_eq!(
        call(&broker, group_pull("H", "guarded", 0, 0)).await.code,
        0
    );

    let server = server.crash_and_restart("");
    let broker = connect(&server.broker).await;
    assert_eq!(
        call(&broker, group_pull("G", "guarded", 0, 0)).await.code,
        16,
        "the ban was lost in the crash"
    );
    let asked = call(&broker, forbid(None)).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&asked.body).unwrap()["readable"],
        false
    );
    assert_eq!(call(&broker, forbid(Some(true))).await.code, 0);
    assert_eq!(
        call(&broker, group_pull("G", "guarded", 0, 0)).await.code,
        0
    );
    let headless = call(
        &broker,
        RemotingCommand::request(353).with_field("group", "G"),
    )
    .await;
    assert_eq!(headless.code, 1);
}
