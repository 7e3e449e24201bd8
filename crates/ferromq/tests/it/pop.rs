//! POP on the remoting port, as Apache's Java 5 client speaks it: pop hides what it hands
//! out, redelivers what is not acknowledged in time with one more reconsume, renews and
//! acknowledges by receipt handle (single and batch), holds FIFO queues, dead-letters after
//! `retryMaxTimes`, and keeps all of it across a SIGKILL.

use std::time::Duration;

use base64::Engine as _;
use ferromq_protocol::message::MessageExt;
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;

use crate::harness::*;

const POP: i32 = 200050;
const ACK: i32 = 200051;
const CHANGE_INVISIBLE: i32 = 200053;
const NOTIFICATION: i32 = 200054;
const BATCH_ACK: i32 = 200151;
const POLLING_TIMEOUT: i32 = 210;
const NO_MESSAGE: i32 = 208;

fn pop_request(
    group: &str,
    topic: &str,
    max: i32,
    invisible_ms: i64,
    order: bool,
) -> RemotingCommand {
    RemotingCommand::request(POP)
        .with_field("consumerGroup", group)
        .with_field("topic", topic)
        .with_field("queueId", -1)
        .with_field("maxMsgNums", max)
        .with_field("invisibleTime", invisible_ms)
        .with_field("pollTime", 0)
        .with_field("bornTime", now_ms())
        .with_field("initMode", 0)
        .with_field("expType", "TAG")
        .with_field("exp", "*")
        .with_field("order", order)
}

/// A popped message with the receipt handle the Java client builds from the answer.
struct Popped {
    message: MessageExt,
    extra_info: String,
}

async fn pop(
    conn: &Connection,
    group: &str,
    topic: &str,
    max: i32,
    invisible_ms: i64,
    order: bool,
) -> Vec<Popped> {
    let resp = call(conn, pop_request(group, topic, max, invisible_ms, order)).await;
    if resp.code == POLLING_TIMEOUT {
        return Vec::new();
    }
    assert_eq!(resp.code, 0, "pop: {:?}", resp.remark);
    let field = |k: &str| {
        resp.field(k)
            .unwrap_or_else(|| panic!("{k} missing"))
            .to_string()
    };
    let (pop_time, invisible, revive) =
        (field("popTime"), field("invisibleTime"), field("reviveQid"));
    let starts: std::collections::HashMap<String, String> = field("startOffsetInfo")
        .split(';')
        .map(|e| {
            let f: Vec<&str> = e.split(' ').collect();
            assert_eq!(f.len(), 3, "{e}");
            (format!("{}@{}", f[0], f[1]), f[2].to_string())
        })
        .collect();
    MessageExt::decode_all(&resp.body)
        .unwrap()
        .into_iter()
        .map(|m| {
            let start = &starts[&format!("0@{}", m.queue_id)];
            let extra_info = format!(
                "{start} {pop_time} {invisible} {revive} 0 broker-a {} {}",
                m.queue_id, m.queue_offset
            );
            Popped {
                message: m,
                extra_info,
            }
        })
        .collect()
}

async fn ack(conn: &Connection, group: &str, p: &Popped) -> i32 {
    let req = RemotingCommand::request(ACK)
        .with_field("consumerGroup", group)
        .with_field("topic", &p.message.topic)
        .with_field("queueId", p.message.queue_id)
        .with_field("extraInfo", &p.extra_info)
        .with_field("offset", p.message.queue_offset);
    call(conn, req).await.code
}

async fn change_invisible(
    conn: &Connection,
    group: &str,
    p: &Popped,
    invisible_ms: i64,
) -> RemotingCommand {
    let req = RemotingCommand::request(CHANGE_INVISIBLE)
        .with_field("consumerGroup", group)
        .with_field("topic", &p.message.topic)
        .with_field("queueId", p.message.queue_id)
        .with_field("extraInfo", &p.extra_info)
        .with_field("offset", p.message.queue_offset)
        .with_field("invisibleTime", invisible_ms);
    call(conn, req).await
}

async fn send_n(conn: &Connection, topic: &str, n: usize) {
    for i in 0..n {
        let resp = call(conn, send_request(topic, format!("m{i}").as_bytes(), "")).await;
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
    }
}

fn bodies(popped: &[Popped]) -> Vec<String> {
    let mut b: Vec<String> = popped
        .iter()
        .map(|p| String::from_utf8_lossy(&p.message.body).into_owned())
        .collect();
    b.sort();
    b
}

async fn committed_offset(conn: &Connection, group: &str, topic: &str) -> Option<String> {
    let q = RemotingCommand::request(14)
        .with_field("consumerGroup", group)
        .with_field("topic", topic)
        .with_field("queueId", 0);
    call(conn, q).await.field("offset").map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn pop_hides_redelivers_what_is_not_acked_and_commits_what_is() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-basic", 5).await;
    let first = pop(&conn, "g", "pop-basic", 32, 1500, false).await;
    assert_eq!(bodies(&first), ["m0", "m1", "m2", "m3", "m4"]);
    assert!(first.iter().all(|p| p.message.reconsume_times == 0));
    assert!(
        pop(&conn, "g", "pop-basic", 32, 1500, false)
            .await
            .is_empty(),
        "hidden while invisible"
    );
    for p in &first[..2] {
        assert_eq!(ack(&conn, "g", p).await, 0);
    }
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let again = pop(&conn, "g", "pop-basic", 32, 60_000, false).await;
    assert_eq!(again.len(), 3, "the three unacknowledged come back");
    assert!(again.iter().all(|p| p.message.reconsume_times == 1));
    let acked: Vec<String> = bodies(&first[..2]);
    assert!(bodies(&again).iter().all(|b| !acked.contains(b)));
    // An old handle of a message handed out again acknowledges nothing.
    let old = first
        .iter()
        .find(|p| p.message.queue_offset == again[0].message.queue_offset)
        .unwrap();
    assert_eq!(
        ack(&conn, "g", old).await,
        0,
        "Apache answers SUCCESS for a stale ack"
    );
    for p in &again {
        assert_eq!(ack(&conn, "g", p).await, 0);
    }
    assert_eq!(
        committed_offset(&conn, "g", "pop-basic").await.as_deref(),
        Some("5")
    );
    // Another group pops the same messages independently.
    assert_eq!(
        pop(&conn, "other", "pop-basic", 32, 60_000, false)
            .await
            .len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn renewal_moves_the_deadline_and_retires_the_old_handle() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-renew", 1).await;
    let p = pop(&conn, "g", "pop-renew", 1, 1000, false).await.remove(0);
    let resp = change_invisible(&conn, "g", &p, 4000).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let new_pop_time = resp.field("popTime").unwrap().to_string();
    assert_eq!(resp.field("invisibleTime"), Some("4000"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        pop(&conn, "g", "pop-renew", 1, 1000, false)
            .await
            .is_empty(),
        "renewed past the first deadline"
    );
    // The old handle can neither renew nor acknowledge any more.
    assert_eq!(
        change_invisible(&conn, "g", &p, 1000).await.code,
        NO_MESSAGE
    );
    let renewed = Popped {
        extra_info: format!(
            "{} {new_pop_time} 4000 0 0 broker-a 0 {}",
            p.message.queue_offset, p.message.queue_offset
        ),
        message: p.message.clone(),
    };
    assert_eq!(ack(&conn, "g", &p).await, 0);
    assert_eq!(ack(&conn, "g", &renewed).await, 0);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(
        pop(&conn, "g", "pop-renew", 1, 1000, false)
            .await
            .is_empty(),
        "acknowledged by the renewed handle"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_past_its_retries_goes_to_the_dead_letter_queue() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    let group = RemotingCommand::request(200).with_body(
        serde_json::json!({"groupName": "dlq-g", "retryMaxTimes": 1, "consumeEnable": true})
            .to_string(),
    );
    assert_eq!(call(&conn, group).await.code, 0);
    send_n(&conn, "pop-dlq", 1).await;
    let first = pop(&conn, "dlq-g", "pop-dlq", 1, 500, false).await;
    assert_eq!(first[0].message.reconsume_times, 0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = pop(&conn, "dlq-g", "pop-dlq", 1, 500, false).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message.reconsume_times, 1);
    // Expired again after retryMaxTimes redeliveries: the sweep moves it.
    let mut dlq = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        dlq = queue0_bodies(&conn, "%DLQ%dlq-g").await;
        if !dlq.is_empty() {
            break;
        }
    }
    assert_eq!(dlq, vec![b"m0".to_vec()]);
    assert!(
        pop(&conn, "dlq-g", "pop-dlq", 1, 500, false)
            .await
            .is_empty(),
        "no longer handed out"
    );
    assert_eq!(
        committed_offset(&conn, "dlq-g", "pop-dlq").await.as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifo_pop_holds_the_queue_until_what_it_handed_out_is_acked() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-fifo", 3).await;
    let first = pop(&conn, "g", "pop-fifo", 1, 60_000, true).await;
    assert_eq!(bodies(&first), ["m0"]);
    assert!(
        pop(&conn, "g", "pop-fifo", 1, 60_000, true)
            .await
            .is_empty(),
        "held while m0 is out"
    );
    assert_eq!(ack(&conn, "g", &first[0]).await, 0);
    let second = pop(&conn, "g", "pop-fifo", 2, 800, true).await;
    assert_eq!(bodies(&second), ["m1", "m2"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let again = pop(&conn, "g", "pop-fifo", 2, 60_000, true).await;
    let order: Vec<i64> = again.iter().map(|p| p.message.queue_offset).collect();
    assert_eq!(order, vec![1, 2], "redelivered in queue order");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_ack_acknowledges_the_offsets_in_its_bit_set() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-batch", 4).await;
    let popped = pop(&conn, "g", "pop-batch", 4, 1000, false).await;
    assert_eq!(popped.len(), 4);
    let f: Vec<&str> = popped[0].extra_info.split(' ').collect();
    // Offsets 0, 1 and 3 of 0..4: bits 0, 1, 3.
    let body = serde_json::json!({
        "brokerName": "broker-a",
        "acks": [{"c": "g", "t": "pop-batch", "r": "0", "so": f[0].parse::<i64>().unwrap(), "q": 0,
                  "rq": 0, "pt": f[1].parse::<i64>().unwrap(), "it": 1000,
                  "b": base64::engine::general_purpose::STANDARD.encode([0b1011u8])}]
    });
    let resp = call(
        &conn,
        RemotingCommand::request(BATCH_ACK).with_body(body.to_string()),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        bodies(&pop(&conn, "g", "pop-batch", 4, 1000, false).await),
        ["m2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notification_waits_for_a_message() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-notify", 1).await;
    let taken = pop(&conn, "g", "pop-notify", 1, 60_000, false).await;
    assert_eq!(taken.len(), 1);
    let notify = |poll: i64| {
        RemotingCommand::request(NOTIFICATION)
            .with_field("consumerGroup", "g")
            .with_field("topic", "pop-notify")
            .with_field("queueId", -1)
            .with_field("pollTime", poll)
            .with_field("bornTime", now_ms())
    };
    assert_eq!(
        call(&conn, notify(200)).await.field("hasMsg"),
        Some("false")
    );
    let waiting = {
        let conn = conn.clone();
        tokio::spawn(async move { call(&conn, notify(5000)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_n(&conn, "pop-notify", 1).await;
    assert_eq!(waiting.await.unwrap().field("hasMsg"), Some("true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pop_state_survives_sigkill() {
    let conf = "flushDiskType=SYNC_FLUSH\n";
    let server = Server::start(conf);
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-crash", 10).await;
    let popped = pop(&conn, "g", "pop-crash", 10, 4000, false).await;
    assert_eq!(popped.len(), 10);
    for p in &popped[..5] {
        assert_eq!(ack(&conn, "g", p).await, 0);
    }
    let acked = bodies(&popped[..5]);
    let popped_at = std::time::Instant::now();
    drop(conn);
    let server = server.crash_and_restart(conf);
    let conn = connect(&server.broker).await;
    // Still invisible after the restart: nothing is handed out before the deadline.
    if popped_at.elapsed() < Duration::from_millis(3000) {
        assert!(pop(&conn, "g", "pop-crash", 10, 4000, false)
            .await
            .is_empty());
    }
    tokio::time::sleep(
        Duration::from_millis(4000).saturating_sub(popped_at.elapsed())
            + Duration::from_millis(300),
    )
    .await;
    let again = pop(&conn, "g", "pop-crash", 10, 60_000, false).await;
    let back = bodies(&again);
    assert_eq!(
        back.len(),
        5,
        "exactly the unacknowledged come back: {back:?}"
    );
    assert!(
        back.iter().all(|b| !acked.contains(b)),
        "an acknowledged message came back: {back:?}"
    );
    assert!(again.iter().all(|p| p.message.reconsume_times == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_pop_requests_get_clear_errors() {
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-bad", 1).await;
    for max in [0, 33] {
        let resp = call(&conn, pop_request("g", "pop-bad", max, 1000, false)).await;
        assert_eq!(resp.code, 29, "maxMsgNums {max}: {:?}", resp.remark);
    }
    let resp = call(&conn, pop_request("g", "no-such-topic", 1, 1000, false)).await;
    assert_eq!(resp.code, 17);
    let bad_filter = pop_request("g", "pop-bad", 1, 1000, false).with_field("exp", "a ||| (");
    let resp = call(&conn, bad_filter.with_field("expType", "SQL92")).await;
    assert_ne!(resp.code, 0);
    let p = pop(&conn, "g", "pop-bad", 1, 60_000, false).await.remove(0);
    let garbled = Popped {
        extra_info: "not a handle".into(),
        message: p.message.clone(),
    };
    assert_eq!(ack(&conn, "g", &garbled).await, 13);
    let mut beyond = Popped {
        extra_info: p.extra_info.clone(),
        message: p.message.clone(),
    };
    beyond.message.queue_offset = 99;
    assert_eq!(ack(&conn, "g", &beyond).await, NO_MESSAGE);
    for body in [
        "",
        "{",
        "{\"acks\":[]}",
        "{\"acks\":[{\"c\":\"g\"}]}",
        "{\"acks\":[{\"c\":\"g\",\"t\":\"pop-bad\",\"so\":0,\"q\":0,\"pt\":1,\"b\":\"!!\"}]}",
    ] {
        let resp = call(
            &conn,
            RemotingCommand::request(BATCH_ACK).with_body(body.to_string()),
        )
        .await;
        assert_ne!(resp.code, 0, "{body}");
    }
    // The message popped above is still in flight and can be acknowledged.
    assert_eq!(ack(&conn, "g", &p).await, 0);
    assert!(pop(&conn, "g", "pop-bad", 1, 60_000, false)
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_pop_journal_does_not_stop_the_broker() {
    let conf = "";
    let server = Server::start(conf);
    let conn = connect(&server.broker).await;
    send_n(&conn, "pop-torn", 2).await;
    let popped = pop(&conn, "g", "pop-torn", 2, 60_000, false).await;
    assert_eq!(ack(&conn, "g", &popped[0]).await, 0);
    drop(conn);
    let journal = server.data_dir().join("pop").join("journal");
    let mut text = std::fs::read(&journal).unwrap();
    text.extend_from_slice(b"garbage that is not a journal line\nP g pop-torn 0 9");
    std::fs::write(&journal, text).unwrap();
    let server = server.crash_and_restart(conf);
    let conn = connect(&server.broker).await;
    // The unacknowledged one is still in flight; the acknowledged one never returns.
    assert!(pop(&conn, "g", "pop-torn", 2, 60_000, false)
        .await
        .is_empty());
    assert_eq!(ack(&conn, "g", &popped[1]).await, 0);
}
