//! Delay levels through the real binary.

use std::time::{Duration, Instant};

use ferromq_protocol::message::{encode_properties, MessageExt};

use crate::harness::{call, connect, now_ms, pull_request, send_request, Server};

#[tokio::test]
async fn delayed_message_appears_in_its_topic_only_when_due() {
    let server = Server::start("messageDelayLevel=1s 2s\n");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("d", b"now", "")).await.code, 0);
    let sent = Instant::now();
    let props = encode_properties([("DELAY", "1"), ("KEYS", "later")]);
    let resp = call(&broker, send_request("d", b"later", &props)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let early = call(&broker, pull_request("d", 0, 1, 0)).await;
    assert_eq!(early.code, 19, "visible before it was due");
    let held = call(&broker, pull_request("d", 0, 1, 5_000)).await;
    let elapsed = sent.elapsed();
    assert_eq!(held.code, 0);
    let msg = &MessageExt::decode_all(&held.body).unwrap()[0];
    assert_eq!(&msg.body[..], b"later");
    // As Apache delivers it: the level and the real queue stay on the message.
    assert_eq!(msg.property("REAL_TOPIC"), Some("d"));
    assert_eq!(msg.property("REAL_QID"), Some("0"));
    assert_eq!(msg.property("DELAY"), Some("1"));
    assert_eq!(msg.property("TIMER_OUT_MS"), None);
    assert!(
        elapsed >= Duration::from_millis(900),
        "delivered after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1800),
        "delivered after {elapsed:?}"
    );
}

#[tokio::test]
async fn levels_beyond_the_table_clamp_to_the_highest() {
    let server = Server::start("messageDelayLevel=1s 2s\n");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("c", b"first", "")).await.code, 0);
    let sent = Instant::now();
    let props = encode_properties([("DELAY", "99")]);
    assert_eq!(
        call(&broker, send_request("c", b"clamped", &props))
            .await
            .code,
        0
    );
    let held = call(&broker, pull_request("c", 0, 1, 5_000)).await;
    assert_eq!(held.code, 0);
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(2800),
        "{elapsed:?}"
    );
}

/// Waits (held pulls) for the first message of a queue at `offset`; returns it and when.
async fn await_message(
    conn: &ferromq_remoting::Connection,
    topic: &str,
    offset: i64,
) -> (MessageExt, i64) {
    for _ in 0..10 {
        let resp = call(conn, pull_request(topic, 0, offset, 5_000)).await;
        if resp.code == 0 {
            return (
                MessageExt::decode_all(&resp.body).unwrap().remove(0),
                now_ms(),
            );
        }
    }
    panic!("no message arrived in {topic}");
}

#[tokio::test]
async fn timer_messages_are_delivered_at_their_due_time() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("t", b"first", "")).await.code, 0);
    let due = now_ms() + 1500;
    let props = encode_properties([("TIMER_DELIVER_MS", due.to_string().as_str())]);
    assert_eq!(
        call(&broker, send_request("t", b"at", &props)).await.code,
        0
    );
    assert_eq!(
        call(&broker, pull_request("t", 0, 1, 0)).await.code,
        19,
        "visible before due"
    );
    let (msg, at) = await_message(&broker, "t", 1).await;
    assert_eq!(&msg.body[..], b"at");
    assert_eq!(
        msg.property("TIMER_DELIVER_MS"),
        Some(due.to_string().as_str())
    );
    assert!((at - due).abs() < 300, "delivered {} ms from due", at - due);

    let sent = now_ms();
    let props = encode_properties([("TIMER_DELAY_SEC", "1")]);
    assert_eq!(
        call(&broker, send_request("t", b"rel", &props)).await.code,
        0
    );
    let (msg, at) = await_message(&broker, "t", 2).await;
    assert_eq!(&msg.body[..], b"rel");
    assert!(
        at - sent >= 950 && at - sent < 1400,
        "delivered after {} ms",
        at - sent
    );
}

#[tokio::test]
async fn timers_beyond_the_maximum_are_refused_and_past_ones_delivered_now() {
    let server = Server::start("timerMaxDelaySec=60\n");
    let broker = connect(&server.broker).await;
    let far = encode_properties([("TIMER_DELAY_SEC", "61")]);
    let resp = call(&broker, send_request("t", b"far", &far)).await;
    assert_eq!(resp.code, 13);
    assert!(resp.remark.unwrap().contains("timerMaxDelaySec"));
    let past = encode_properties([("TIMER_DELIVER_MS", "1000")]);
    assert_eq!(
        call(&broker, send_request("t", b"past", &past)).await.code,
        0
    );
    assert_eq!(call(&broker, pull_request("t", 0, 0, 0)).await.code, 0);
}

#[tokio::test]
async fn pending_timers_and_delays_survive_a_crash() {
    let server = Server::start("messageDelayLevel=2s\n");
    let broker = connect(&server.broker).await;
    let due = now_ms() + 2500;
    let timer = encode_properties([("TIMER_DELIVER_MS", due.to_string().as_str())]);
    let delayed = encode_properties([("DELAY", "1")]);
    let sent = now_ms();
    for i in 0..50 {
        assert_eq!(
            call(
                &broker,
                send_request("timer", format!("t{i}").as_bytes(), &timer)
            )
            .await
            .code,
            0
        );
        assert_eq!(
            call(
                &broker,
                send_request("delay", format!("d{i}").as_bytes(), &delayed)
            )
            .await
            .code,
            0
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = server.crash_and_restart("messageDelayLevel=2s\n");
    let broker = connect(&server.broker).await;
    for topic in ["timer", "delay"] {
        let mut got = std::collections::BTreeSet::new();
        let mut offset = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < 50 && Instant::now() < deadline {
            let resp = call(&broker, pull_request(topic, 0, offset, 2_000)).await;
            if resp.code == 0 {
                for m in MessageExt::decode_all(&resp.body).unwrap() {
                    assert!(m.store_timestamp >= sent + 1900, "{topic}: delivered early");
                    got.insert(String::from_utf8(m.body.to_vec()).unwrap());
                }
                offset = resp.field("nextBeginOffset").unwrap().parse().unwrap();
            }
        }
        assert_eq!(got.len(), 50, "{topic}: {got:?}");
    }
}

#[tokio::test]
async fn a_recalled_timer_message_is_never_delivered_even_across_a_crash() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let due = now_ms() + 2500;
    let timer = encode_properties([("TIMER_DELIVER_MS", due.to_string().as_str())]);
    let recalled = call(&broker, send_request("rc", b"recalled", &timer)).await;
    assert_eq!(recalled.code, 0);
    let handle = recalled
        .field("recallHandle")
        .expect("a timer send returns a recall handle")
        .to_string();
    let kept = call(&broker, send_request("rc", b"kept", &timer)).await;
    assert_eq!(kept.code, 0);
    let recall = |topic: &str, handle: &str| {
        ferromq_protocol::RemotingCommand::request(370)
            .with_field("producerGroup", "PG")
            .with_field("topic", topic)
            .with_field("recallHandle", handle)
    };
    let answer = call(&broker, recall("rc", &handle)).await;
    assert_eq!(answer.code, 0, "{:?}", answer.remark);
    assert!(answer.field("msgId").is_some_and(|id| !id.is_empty()));
    // Refusals, as Apache words them (ILLEGAL_OPERATION 604).
    assert_eq!(call(&broker, recall("rc", "not-base64!")).await.code, 604);
    assert_eq!(call(&broker, recall("t-other", &handle)).await.code, 17);
    // The recall is written down: a SIGKILL before the due time does not undo it.
    drop(broker);
    let server = server.crash_and_restart("");
    let broker = connect(&server.broker).await;
    let (msg, _) = await_message(&broker, "rc", 0).await;
    assert_eq!(&msg.body[..], b"kept");
    let after = call(&broker, pull_request("rc", 0, 1, 1500)).await;
    assert_eq!(after.code, 19, "the recalled message was delivered");
    // Too late: the handle's time has passed.
    assert_eq!(call(&broker, recall("rc", &handle)).await.code, 604);
}

#[tokio::test]
async fn extreme_timer_times_are_answered_not_overflowed() {
    let server = Server::start("timerMaxDelaySec=60\n");
    let broker = connect(&server.broker).await;
    let (max, min) = (i64::MAX.to_string(), i64::MIN.to_string());
    for (name, value, code) in [
        ("TIMER_DELIVER_MS", max.as_str(), 13),
        ("TIMER_DELAY_SEC", max.as_str(), 13),
        ("TIMER_DELAY_MS", max.as_str(), 13),
        ("TIMER_DELIVER_MS", min.as_str(), 0),
    ] {
        let props = encode_properties([(name, value)]);
        let resp = call(&broker, send_request("x", b"edge", &props)).await;
        assert_eq!(resp.code, code, "{name}={value}: {:?}", resp.remark);
    }
    // A recall handle naming the earliest possible time: refused, not a broken connection.
    use base64::Engine as _;
    let handle =
        base64::engine::general_purpose::URL_SAFE.encode(format!("v1 x broker-a {min} ID"));
    let recall = ferromq_protocol::RemotingCommand::request(370)
        .with_field("topic", "x")
        .with_field("recallHandle", handle);
    assert_eq!(call(&broker, recall).await.code, 604);
}

/// `recallMessageEnable=false` (Apache's default) refuses every recall with Apache's answer.
#[tokio::test]
async fn recall_can_be_switched_off_as_in_apache() {
    let server = Server::start("recallMessageEnable=false\n");
    let broker = connect(&server.broker).await;
    let due = now_ms() + 60_000;
    let timer = encode_properties([("TIMER_DELIVER_MS", due.to_string().as_str())]);
    let sent = call(&broker, send_request("rcoff", b"x", &timer)).await;
    let handle = sent.field("recallHandle").unwrap().to_string();
    let answer = call(
        &broker,
        ferromq_protocol::RemotingCommand::request(370)
            .with_field("producerGroup", "PG")
            .with_field("topic", "rcoff")
            .with_field("recallHandle", handle),
    )
    .await;
    assert_eq!(answer.code, 16);
    assert_eq!(
        answer.remark.as_deref(),
        Some("recall failed, operation is forbidden")
    );
}
