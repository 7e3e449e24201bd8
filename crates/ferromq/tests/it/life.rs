//! `ferromq admin messageLife`: a message's life from the broker's own records — stored,
//! waiting for its delay, pulled, committed, sent back, dead-lettered — with no client
//! tracing.

use std::time::{Duration, Instant};

use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;
use serde_json::Value;

use crate::admin::admin;
use ferromq_remoting::Connection;

use crate::harness::{call, commit_request, connect, pull_request, send_request, Server};

fn life(server: &Server, topic: &str, id: &str) -> Value {
    let (ok, out, err) = admin(
        server,
        &[
            "messageLife",
            "-t",
            topic,
            "-i",
            id,
            "--json",
            "--log-level",
            "error",
        ],
    );
    assert!(ok, "{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all:#}");
    all[0].clone()
}

fn group<'a>(life: &'a Value, name: &str) -> &'a Value {
    life["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name}: {life:#}"))
}

/// Polls (bounded) until `f` holds of the message's life.
fn life_when(
    server: &Server,
    topic: &str,
    id: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = life(server, topic, id);
        if f(&l) {
            return l;
        }
        assert!(Instant::now() < deadline, "{what}: {l:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn pull_one(conn: &Connection, topic: &str, offset: i64) -> MessageExt {
    let resp = call(conn, pull_request(topic, 0, offset, 0)).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    MessageExt::decode_all(&resp.body).unwrap().remove(0)
}

fn send_back(m: &MessageExt, delay_level: i32) -> RemotingCommand {
    RemotingCommand::request(36)
        .with_field("offset", m.commit_log_offset)
        .with_field("group", "CG")
        .with_field("delayLevel", delay_level)
        .with_field("maxReconsumeTimes", 16)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_life_shows_the_pull_the_commit_the_retry_and_the_dead_letter() {
    let server = Server::start("messageDelayLevel=1s 1h\n");
    let conn = connect(&server.broker).await;
    let props = encode_properties([("UNIQ_KEY", "LIFE-1"), ("KEYS", "order-1")]);
    assert_eq!(
        call(&conn, send_request("life-t", b"hello", &props))
            .await
            .code,
        0
    );
    // The broker is another process: blocking this runtime on the CLI is harmless.
    let before = life(&server, "life-t", "LIFE-1");
    assert_eq!(before["stored"][0]["queueOffset"], 0);
    assert_eq!(before["stored"][0]["keys"], "order-1");
    assert_eq!(before["recording"], true);
    assert!(
        before["groups"].as_array().unwrap().is_empty(),
        "{before:#}"
    );

    // Pulled (the harness pulls as group CG), not yet committed.
    let m = pull_one(&conn, "life-t", 0).await;
    let read = life(&server, "life-t", "LIFE-1");
    let copy = &group(&read, "CG")["copies"][0];
    assert_eq!(copy["kind"], "original");
    assert_eq!(copy["consumed"], false);
    assert_eq!(copy["reads"].as_array().unwrap().len(), 1, "{copy:#}");
    // This test's connection, as the broker saw it.
    let me = copy["reads"][0]["client"].as_str().unwrap().to_string();
    assert!(me.starts_with("127.0.0.1:") && !me.ends_with(":0"), "{me}");
    assert_eq!(
        (&copy["reads"][0]["from"], &copy["reads"][0]["next"]),
        (&0.into(), &1.into())
    );

    // Committed past it.
    let commit = commit_request("CG", "life-t", 0, 1);
    assert_eq!(call(&conn, commit).await.code, 0);
    // Sent back for a retry (level 1: a second), then the retry dead-lettered.
    assert_eq!(call(&conn, send_back(&m, 1)).await.code, 0);
    let retried = life_when(&server, "life-t", "LIFE-1", "the retry copy", |l| {
        group(l, "CG")["copies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "retry")
    });
    let cg = group(&retried, "CG");
    let original = &cg["copies"][0];
    assert_eq!(original["consumed"], true);
    assert_eq!(original["committedBy"]["offset"], 1);
    assert_eq!(original["committedBy"]["client"], me.as_str());
    let retry = &cg["copies"][1];
    assert_eq!(retry["topic"], "%RETRY%CG");
    assert_eq!(retry["reconsumeTimes"], 1);
    assert_eq!(retry["consumed"], false);

    let retry_msg = {
        let resp = call(&conn, pull_request("%RETRY%CG", 0, 0, 0)).await;
        MessageExt::decode_all(&resp.body).unwrap().remove(0)
    };
    assert_eq!(call(&conn, send_back(&retry_msg, -1)).await.code, 0);
    let dead = life_when(&server, "life-t", "LIFE-1", "the dead letter", |l| {
        group(l, "CG")["copies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "dlq")
    });
    let copies = group(&dead, "CG")["copies"].as_array().unwrap().clone();
    let dlq = copies.iter().find(|c| c["kind"] == "dlq").unwrap();
    assert_eq!(dlq["topic"], "%DLQ%CG");
    // The retry copy was pulled (by the harness, as CG) before it was sent back.
    let retry = copies.iter().find(|c| c["kind"] == "retry").unwrap();
    assert_eq!(retry["reads"].as_array().unwrap().len(), 1, "{retry:#}");

    // The text report names each step.
    let (ok, out, err) = admin(&server, &["messageLife", "-t", "life-t", "-k", "order-1"]);
    assert!(ok, "{err}");
    for want in [
        "Stored     life-t queue 0 offset 0",
        "Group      CG",
        &format!("pulled by {me}"),
        &format!("consumed: offset 1 committed by {me}"),
        "retry 1: %RETRY%CG queue 0 offset 0",
        "dead-lettered: %DLQ%CG queue 0 offset 0",
    ] {
        assert!(out.contains(want), "lacks {want:?}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_message_waits_then_is_stored_on_its_topic() {
    let server = Server::start("messageDelayLevel=1s 3s\n");
    let conn = connect(&server.broker).await;
    let props = encode_properties([("UNIQ_KEY", "LATER-1"), ("DELAY", "2")]);
    assert_eq!(
        call(&conn, send_request("later-t", b"later", &props))
            .await
            .code,
        0
    );
    let waiting = life(&server, "later-t", "LATER-1");
    let fired = life_when(&server, "later-t", "LATER-1", "the delay to fire", |l| {
        !l["stored"].as_array().unwrap().is_empty()
    });
    assert!(
        waiting["stored"].as_array().unwrap().is_empty(),
        "{waiting:#}"
    );
    assert_eq!(waiting["waiting"][0]["kind"], "delay");
    assert_eq!(waiting["waiting"][0]["delayLevel"], 2);
    assert_eq!(waiting["waiting"][0]["fired"], false);
    assert_eq!(fired["waiting"][0]["fired"], true);
    assert!(
        fired["stored"][0]["storeTimestamp"].as_i64().unwrap()
            >= waiting["waiting"][0]["storeTimestamp"].as_i64().unwrap() + 2500,
        "stored about 3 s after it was sent: {fired:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_records_off_nothing_is_remembered_and_bad_requests_are_refused() {
    let server = Server::start("enableMessageLife=false\n");
    let conn = connect(&server.broker).await;
    let props = encode_properties([("UNIQ_KEY", "QUIET-1")]);
    assert_eq!(
        call(&conn, send_request("quiet-t", b"q", &props))
            .await
            .code,
        0
    );
    pull_one(&conn, "quiet-t", 0).await;
    let l = life(&server, "quiet-t", "QUIET-1");
    assert_eq!(l["recording"], false);
    // The pull is known (its position feeds the metrics), not who made it.
    for g in l["groups"].as_array().unwrap() {
        for c in g["copies"].as_array().unwrap() {
            assert!(c["reads"].as_array().unwrap().is_empty(), "{l:#}");
        }
    }
    // The request without its fields, and an id nobody sent.
    let bare = call(&conn, RemotingCommand::request(9003)).await;
    assert_ne!(bare.code, 0);
    assert!(bare.remark.unwrap_or_default().contains("msgId"));
    let (ok, _, err) = admin(
        &server,
        &["messageLife", "-t", "quiet-t", "-i", "NOBODY-SENT-THIS"],
    );
    assert!(!ok);
    assert!(err.contains("no message NOBODY-SENT-THIS"), "{err}");
    let (ok, _, err) = admin(&server, &["messageLife", "-t", "quiet-t"]);
    assert!(!ok, "neither -i nor -k: {err}");
}
