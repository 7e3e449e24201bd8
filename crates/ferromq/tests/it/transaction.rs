//! Transaction messages over raw requests: half, commit, rollback, check-back.

use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, InboundHandler};
use serde_json::json;
use tokio::sync::mpsc;

use crate::harness::{call, pull_request, send_request, Server, TIMEOUT};

const FAST_CHECKS: &str = "transactionCheckInterval=300\ntransactionTimeOut=300\n";

/// A producer connection that records the broker's check requests.
struct Checks(mpsc::UnboundedSender<RemotingCommand>);

impl InboundHandler for Checks {
    async fn on_request(
        &self,
        _conn: Connection,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let _ = self.0.send(request);
        None
    }
}

async fn producer(
    server: &Server,
    group: &str,
) -> (Connection, mpsc::UnboundedReceiver<RemotingCommand>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = ferromq_remoting::connect(&server.broker, Arc::new(Checks(tx)), TIMEOUT)
        .await
        .unwrap();
    let hb = json!({"clientID": format!("{group}@1"), "producerDataSet": [{"groupName": group}], "consumerDataSet": []});
    assert_eq!(
        call(
            &conn,
            RemotingCommand::request(34).with_body(hb.to_string())
        )
        .await
        .code,
        0
    );
    (conn, rx)
}

fn half_request(topic: &str, body: &[u8], group: &str, uniq: &str) -> RemotingCommand {
    let props = encode_properties([("TRAN_MSG", "true"), ("PGROUP", group), ("UNIQ_KEY", uniq)]);
    let mut req = send_request(topic, body, &props);
    req.ext_fields.insert("sysFlag".into(), "4".into());
    req.ext_fields.insert("producerGroup".into(), group.into());
    req
}

fn end(group: &str, send: &RemotingCommand, decision: i32, from_check: bool) -> RemotingCommand {
    let (_, offset) =
        ferromq_protocol::message::decode_offset_msg_id(send.field("msgId").unwrap()).unwrap();
    RemotingCommand::request(37)
        .with_field("producerGroup", group)
        .with_field("tranStateTableOffset", send.field("queueOffset").unwrap())
        .with_field("commitLogOffset", offset)
        .with_field("commitOrRollback", decision)
        .with_field("fromTransactionCheck", from_check)
}

async fn bodies(conn: &Connection, topic: &str) -> Vec<String> {
    let resp = call(conn, pull_request(topic, 0, 0, 0)).await;
    if resp.code != 0 {
        return vec![];
    }
    MessageExt::decode_all(&resp.body)
        .unwrap()
        .iter()
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn commit_delivers_once_and_rollback_never() {
    let server = Server::start("");
    let (conn, _checks) = producer(&server, "pg").await;
    let half = call(&conn, half_request("tx", b"commit-me", "pg", "U1")).await;
    assert_eq!(half.code, 0, "{:?}", half.remark);
    assert_eq!(half.field("transactionId"), Some("U1"));
    assert!(
        bodies(&conn, "tx").await.is_empty(),
        "a half message is invisible"
    );
    assert_eq!(call(&conn, end("pg", &half, 8, false)).await.code, 0);
    assert_eq!(bodies(&conn, "tx").await, vec!["commit-me"]);
    let msg =
        &MessageExt::decode_all(&call(&conn, pull_request("tx", 0, 0, 0)).await.body).unwrap()[0];
    assert_eq!(msg.sys_flag & 0xC, 8, "committed flag");
    // As Apache: the committed message keeps the half's transaction properties.
    assert_eq!(msg.property("TRAN_MSG"), Some("true"));
    assert_eq!(msg.property("PGROUP"), Some("pg"));
    assert_eq!(msg.property("UNIQ_KEY"), Some("U1"));
    // Duplicate and contradicting late answers change nothing.
    let dup = call(&conn, end("pg", &half, 8, true)).await;
    assert_eq!(dup.code, 0);
    assert!(dup.remark.unwrap().contains("already decided"));
    assert_eq!(call(&conn, end("pg", &half, 12, false)).await.code, 0);
    assert_eq!(bodies(&conn, "tx").await, vec!["commit-me"]);

    let half = call(&conn, half_request("tx2", b"roll-me-back", "pg", "U2")).await;
    assert_eq!(call(&conn, end("pg", &half, 12, false)).await.code, 0);
    assert_eq!(call(&conn, end("pg", &half, 8, false)).await.code, 0);
    assert!(bodies(&conn, "tx2").await.is_empty());
    // Wrong group or offsets are refused.
    let other = call(&conn, half_request("tx3", b"x", "pg", "U3")).await;
    assert_eq!(
        call(&conn, end("someone-else", &other, 8, false))
            .await
            .code,
        1
    );
    let mut wrong = end("pg", &other, 8, false);
    wrong
        .ext_fields
        .insert("tranStateTableOffset".into(), "999".into());
    assert_eq!(call(&conn, wrong).await.code, 1);
    // Unknown (0) is ignored: no reply and no decision.
    let unknown = end("pg", &other, 0, false);
    assert!(conn
        .invoke(unknown, Duration::from_millis(300))
        .await
        .is_err());
    assert!(bodies(&conn, "tx3").await.is_empty());
}

#[tokio::test]
async fn unknown_transactions_are_checked_and_the_answer_is_applied() {
    let server = Server::start(FAST_CHECKS);
    let (conn, mut checks) = producer(&server, "pg").await;
    let half = call(&conn, half_request("checked", b"after-check", "pg", "U9")).await;
    assert_eq!(half.code, 0);
    let check = tokio::time::timeout(Duration::from_secs(10), checks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(check.code, 39);
    assert_eq!(
        check.field("tranStateTableOffset"),
        half.field("queueOffset")
    );
    let msg = &MessageExt::decode_all(&check.body).unwrap()[0];
    assert_eq!(msg.topic, "checked", "the check carries the real topic");
    assert_eq!(msg.property("PGROUP"), Some("pg"));
    assert_eq!(msg.property("TRANSACTION_CHECK_TIMES"), Some("1"));
    assert!(bodies(&conn, "checked").await.is_empty());
    let answer = RemotingCommand::request(37)
        .with_field("producerGroup", "pg")
        .with_field(
            "tranStateTableOffset",
            check.field("tranStateTableOffset").unwrap(),
        )
        .with_field("commitLogOffset", check.field("commitLogOffset").unwrap())
        .with_field("commitOrRollback", 8)
        .with_field("fromTransactionCheck", true);
    assert_eq!(call(&conn, answer).await.code, 0);
    assert_eq!(bodies(&conn, "checked").await, vec!["after-check"]);
    // Decided: no further checks.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    while let Ok(extra) = checks.try_recv() {
        assert_ne!(
            extra.field("tranStateTableOffset"),
            half.field("queueOffset"),
            "checked after its decision"
        );
    }
}

#[tokio::test]
async fn checks_give_up_after_the_maximum_and_wait_for_a_live_producer() {
    let server = Server::start(&format!("{FAST_CHECKS}transactionCheckMax=2\n"));
    let conn = crate::harness::connect(&server.broker).await;
    let half = call(
        &conn,
        half_request("gone", b"orphan", "nobody-online", "U5"),
    )
    .await;
    assert_eq!(half.code, 0);
    // No producer of the group is connected: rounds pass without using up checks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_p, mut checks) = producer(&server, "nobody-online").await;
    let first = tokio::time::timeout(Duration::from_secs(10), checks.recv())
        .await
        .unwrap()
        .unwrap();
    let m = &MessageExt::decode_all(&first.body).unwrap()[0];
    assert_eq!(m.property("TRANSACTION_CHECK_TIMES"), Some("1"));
    let second = tokio::time::timeout(Duration::from_secs(10), checks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        MessageExt::decode_all(&second.body).unwrap()[0].property("TRANSACTION_CHECK_TIMES"),
        Some("2")
    );
    // Never answered: given up and kept for an operator, never delivered.
    let mut kept = vec![];
    for _ in 0..40 {
        kept = bodies(&conn, "TRANS_CHECK_MAX_TIME_TOPIC").await;
        if !kept.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(kept, vec!["orphan"]);
    assert!(bodies(&conn, "gone").await.is_empty());
    let late = call(&conn, end("nobody-online", &half, 8, false)).await;
    assert_eq!(late.code, 0);
    assert!(
        bodies(&conn, "gone").await.is_empty(),
        "a given-up transaction is never delivered"
    );

    // An operator resumes it (RESUME_CHECK_HALF_MESSAGE, by the kept copy's offset id): the
    // producer is asked again from a check count of 0, and its commit delivers it once.
    let kept = call(&conn, pull_request("TRANS_CHECK_MAX_TIME_TOPIC", 0, 0, 0)).await;
    let kept_id = MessageExt::decode_all(&kept.body).unwrap()[0].offset_msg_id();
    let resume = |id: &str| {
        RemotingCommand::request(323)
            .with_field("topic", "TRANS_CHECK_MAX_TIME_TOPIC")
            .with_field("msgId", id)
    };
    assert_eq!(call(&conn, resume("not-an-id")).await.code, 1);
    let resumed = call(&conn, resume(&kept_id)).await;
    assert_eq!(resumed.code, 0, "{:?}", resumed.remark);
    let again = tokio::time::timeout(Duration::from_secs(10), checks.recv())
        .await
        .unwrap()
        .unwrap();
    let m = &MessageExt::decode_all(&again.body).unwrap()[0];
    assert_eq!(m.property("TRANSACTION_CHECK_TIMES"), Some("1"));
    assert_eq!(&m.body[..], b"orphan");
    let commit = RemotingCommand::request(37)
        .with_field("producerGroup", "nobody-online")
        .with_field(
            "tranStateTableOffset",
            again.field("tranStateTableOffset").unwrap(),
        )
        .with_field("commitLogOffset", again.field("commitLogOffset").unwrap())
        .with_field("commitOrRollback", 8)
        .with_field("fromTransactionCheck", true);
    assert_eq!(call(&conn, commit).await.code, 0);
    let mut delivered = vec![];
    for _ in 0..40 {
        delivered = bodies(&conn, "gone").await;
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, vec!["orphan"]);
}

#[tokio::test]
async fn decisions_and_undecided_halves_survive_a_crash() {
    let server = Server::start("transactionCheckInterval=300\ntransactionTimeOut=1000\n");
    let (conn, _) = producer(&server, "pg").await;
    let mut halves = Vec::new();
    for i in 0..20 {
        halves.push(
            call(
                &conn,
                half_request("crash", format!("m{i}").as_bytes(), "pg", &format!("C{i}")),
            )
            .await,
        );
    }
    for h in &halves[..10] {
        assert_eq!(call(&conn, end("pg", h, 8, false)).await.code, 0);
    }
    let server =
        server.crash_and_restart("transactionCheckInterval=300\ntransactionTimeOut=1000\n");
    let (conn, mut checks) = producer(&server, "pg").await;
    let mut checked = std::collections::BTreeSet::new();
    while checked.len() < 10 {
        let c = tokio::time::timeout(Duration::from_secs(10), checks.recv())
            .await
            .unwrap()
            .unwrap();
        let m = &MessageExt::decode_all(&c.body).unwrap()[0];
        let body = String::from_utf8(m.body.to_vec()).unwrap();
        let n: usize = body[1..].parse().unwrap();
        assert!(n >= 10, "committed m{n} was checked again");
        if checked.insert(n) {
            let answer = RemotingCommand::request(37)
                .with_field("producerGroup", "pg")
                .with_field(
                    "tranStateTableOffset",
                    c.field("tranStateTableOffset").unwrap(),
                )
                .with_field("commitLogOffset", c.field("commitLogOffset").unwrap())
                .with_field("commitOrRollback", 8)
                .with_field("fromTransactionCheck", true);
            assert_eq!(call(&conn, answer).await.code, 0);
        }
    }
    let mut got = Vec::new();
    let mut offset = 0i64;
    for _ in 0..20 {
        let resp = call(&conn, pull_request("crash", 0, offset, 500)).await;
        if resp.code == 0 {
            got.extend(
                MessageExt::decode_all(&resp.body)
                    .unwrap()
                    .iter()
                    .map(|m| String::from_utf8(m.body.to_vec()).unwrap()),
            );
            offset = resp.field("nextBeginOffset").unwrap().parse().unwrap();
        }
        if got.len() >= 20 {
            break;
        }
    }
    got.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(got, expected, "each transaction delivered exactly once");
}
