//! Delay levels through the real binary.

use std::time::{Duration, Instant};

use ferromq_protocol::message::{encode_properties, MessageExt};

use crate::harness::{call, connect, pull_request, send_request, Server};

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
    assert_eq!(msg.property("REAL_TOPIC"), Some("d"));
    assert_eq!(msg.property("DELAY"), None);
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
