//! `ferromq admin` against a live broker.

use std::process::Command;

use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;

use crate::harness::{call, connect, pull_request, send_request, Server};

pub(crate) fn admin(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq"))
        .arg("admin")
        .args(["-n", &server.namesrv])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cluster_broker_and_delay_status() {
    let server = Server::start("messageDelayLevel=1h 2h\n");
    let broker = connect(&server.broker).await;
    let delayed = encode_properties([("DELAY", "2")]);
    for _ in 0..3 {
        assert_eq!(
            call(&broker, send_request("d", b"x", &delayed)).await.code,
            0
        );
    }
    let timer = encode_properties([("TIMER_DELAY_SEC", "120")]);
    assert_eq!(call(&broker, send_request("d", b"t", &timer)).await.code, 0);
    let (ok, out, err) = admin(&server, &["clusterList"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("DefaultCluster") && out.contains(&server.broker),
        "{out}"
    );
    let (ok, out, err) = admin(&server, &["delayStatus"]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("delay level 2") && l.trim_end().ends_with(" 3")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("delay level 1") && l.trim_end().ends_with(" 0")),
        "{out}"
    );
    // The timer is counted once it is indexed (within a second).
    crate::harness::eventually("the timer to be indexed", || {
        let (_, out, _) = admin(&server, &["delayStatus"]);
        out.lines()
            .any(|l| l.contains("timers due within 10m") && l.trim_end().ends_with(" 1"))
    });
    let (ok, out, _) = admin(&server, &["brokerStatus", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["broker-a"]["msgPutTotalTodayNow"], "4");
}

#[tokio::test]
async fn transactions_are_listed_with_age_and_checks() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let props = encode_properties([("TRAN_MSG", "true"), ("PGROUP", "pg"), ("UNIQ_KEY", "TX1")]);
    let mut req = send_request("tx", b"x", &props);
    req.ext_fields.insert("sysFlag".into(), "4".into());
    assert_eq!(call(&broker, req).await.code, 0);
    let (ok, out, err) = admin(&server, &["transactionStatus", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["transactionId"], "TX1");
    assert_eq!(v[0]["producerGroup"], "pg");
    assert_eq!(v[0]["topic"], "tx");
    assert_eq!(v[0]["checkTimes"], 0);
}

#[tokio::test]
async fn dead_letters_are_resent_to_the_retry_topic_once() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(
        call(&broker, send_request("work", b"poison", ""))
            .await
            .code,
        0
    );
    let msg = &MessageExt::decode_all(&call(&broker, pull_request("work", 0, 0, 0)).await.body)
        .unwrap()[0];
    let back = RemotingCommand::request(36)
        .with_field("offset", msg.commit_log_offset)
        .with_field("group", "g")
        .with_field("delayLevel", -1)
        .with_field("maxReconsumeTimes", 16);
    assert_eq!(call(&broker, back).await.code, 0);
    let (ok, out, err) = admin(&server, &["resendDlq", "-g", "g", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["resent"],
        1
    );
    let retried = call(&broker, pull_request("%RETRY%g", 0, 0, 0)).await;
    assert_eq!(retried.code, 0);
    let m = &MessageExt::decode_all(&retried.body).unwrap()[0];
    assert_eq!((&m.body[..], m.reconsume_times), (&b"poison"[..], 0));
    assert_eq!(m.property("RETRY_TOPIC"), Some("work"));
    let (_, out, _) = admin(&server, &["resendDlq", "-g", "g", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["resent"],
        0,
        "each dead letter is resent once"
    );
}

#[tokio::test]
async fn reset_offset_by_time_and_error_paths() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(call(&broker, send_request("r", b"x", "")).await.code, 0);
    let (ok, _, err) = admin(
        &server,
        &["resetOffsetByTime", "-g", "g", "-t", "r", "-s", "0"],
    );
    assert!(ok, "{err}");
    let q = RemotingCommand::request(14)
        .with_field("consumerGroup", "g")
        .with_field("topic", "r")
        .with_field("queueId", 0);
    assert_eq!(call(&broker, q).await.field("offset"), Some("0"));
    let (ok, _, err) = admin(
        &server,
        &["resetOffsetByTime", "-g", "g", "-t", "missing", "-s", "now"],
    );
    assert!(!ok && err.contains("unknown topic missing"), "{err}");
    let (ok, _, err) = admin(
        &server,
        &["resetOffsetByTime", "-g", "g", "-t", "r", "-s", "yesterday"],
    );
    assert!(!ok && err.contains("yesterday"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq"))
        .args([
            "admin",
            "-n",
            &format!("127.0.0.1:{}", crate::harness::free_port()),
            "clusterList",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[test]
fn bench_produces_and_consumes_through_the_client() {
    let server = Server::start("");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferromq"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(&[
        "produce",
        "-n",
        &server.namesrv,
        "--topic",
        "b",
        "--producers",
        "2",
        "--messages",
        "300",
        "--seconds",
        "30",
    ]);
    assert!(out.contains("300 sent, 0 failed"), "{out}");
    assert!(out.contains("send latency µs: p50="), "{out}");
    let out = run(&[
        "produce",
        "-n",
        &server.namesrv,
        "--topic",
        "b",
        "--mode",
        "async",
        "--messages",
        "100",
        "--seconds",
        "30",
    ]);
    assert!(out.contains("100 sent, 0 failed"), "{out}");
    // 2 warm-up + 300 + 1 warm-up + 100.
    let out = run(&[
        "consume",
        "-n",
        &server.namesrv,
        "--topic",
        "b",
        "--messages",
        "403",
        "--seconds",
        "30",
    ]);
    assert!(out.contains("consumed 403 messages"), "{out}");
}

#[tokio::test]
async fn mqadmin_commands_manage_topics_groups_and_messages() {
    let server = Server::start("");
    let ok = |args: &[&str]| {
        let (ok, out, err) = admin(&server, args);
        assert!(ok, "{args:?}: {err}");
        out
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&ok(&a)).unwrap()
    };
    ok(&["updateTopic", "-t", "cli-topic", "-r", "3"]);
    assert!(ok(&["topicList"]).lines().any(|l| l.trim() == "cli-topic"));
    assert_eq!(
        json(&["topicRoute", "-t", "cli-topic"])["queueDatas"][0]["writeQueueNums"],
        3
    );
    let sent = json(&[
        "sendMessage",
        "-t",
        "cli-topic",
        "-p",
        "hello-cli",
        "-c",
        "TagZ",
        "-k",
        "key-1",
    ]);
    let offset_id = sent["offsetMsgId"].as_str().unwrap().to_string();
    let status = json(&["topicStatus", "-t", "cli-topic"]);
    assert_eq!(
        status
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["maxOffset"].as_i64().unwrap())
            .sum::<i64>(),
        1
    );
    assert_eq!(
        json(&["queryMsgByKey", "-t", "cli-topic", "-k", "key-1"])[0]["body"],
        "hello-cli"
    );
    assert_eq!(json(&["queryMsgById", "-i", &offset_id])["tags"], "TagZ");
    let queue = sent["queueId"].as_i64().unwrap().to_string();
    assert_eq!(
        json(&[
            "queryMsgByOffset",
            "-t",
            "cli-topic",
            "-b",
            "broker-a",
            "-i",
            &queue,
            "-o",
            "0"
        ])["body"],
        "hello-cli"
    );
    let consumed = json(&[
        "consumeMessage",
        "-t",
        "cli-topic",
        "-g",
        "cli-group",
        "-c",
        "1",
    ]);
    assert_eq!(consumed[0]["body"], "hello-cli");
    crate::harness::eventually("the consumed offset to be committed", || {
        let (_, out, _) = admin(&server, &["consumerProgress", "-g", "cli-group", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out)
            .is_ok_and(|v| v["totalDiff"] == 0 && !v["queues"].as_array().unwrap().is_empty())
    });
    ok(&["updateSubGroup", "-g", "configured-group", "-r", "5"]);
    ok(&["deleteSubGroup", "-g", "cli-group"]);
    let cfg = json(&["getBrokerConfig"]);
    assert_eq!(cfg["broker-a"]["brokerName"], "broker-a");
    ok(&["updateBrokerConfig", "-k", "fileReservedTime", "-v", "1"]);
    assert_eq!(
        json(&["getBrokerConfig"])["broker-a"]["fileReservedTime"],
        "1"
    );
    // A key only a restart can change is refused by name, and nothing changes.
    let (ok_upd, _, err) = admin(
        &server,
        &["updateBrokerConfig", "-k", "listenPort", "-v", "1"],
    );
    assert!(
        !ok_upd && err.contains("listenPort") && err.contains("restart"),
        "{err}"
    );
    let (ok_upd, _, err) = admin(
        &server,
        &["updateBrokerConfig", "-k", "brokerPermission", "-v", "5"],
    );
    assert!(!ok_upd && err.contains("brokerPermission"), "{err}");
    let (online, _, err) = admin(&server, &["consumerConnection", "-g", "nobody-here"]);
    assert!(!online && err.contains("not online"), "{err}");
    assert_eq!(
        json(&["producerConnection", "-g", "nobody"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    ok(&["deleteTopic", "-t", "cli-topic"]);
    assert!(!ok(&["topicList"]).lines().any(|l| l.trim() == "cli-topic"));
    for args in [
        &["topicRoute", "-t", "cli-topic"][..],
        &["deleteTopic", "-t", "cli-topic"],
        &["topicStatus", "-t", "nope"],
    ] {
        let (success, _, err) = admin(&server, args);
        assert!(!success && err.contains("unknown topic"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    }
}
