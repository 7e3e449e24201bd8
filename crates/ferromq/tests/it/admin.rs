//! `ferromq admin` against a live broker.

use std::process::Command;

use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;

use crate::harness::{call, connect, pull_request, send_request, Server};

/// Runs `ferromq admin`, which must succeed; its standard output.
fn admin_ok(server: &Server, args: &[&str]) -> String {
    let (ok, out, err) = admin(server, args);
    assert!(ok, "{args:?}: {err}");
    out
}

/// Runs `ferromq admin … --json`, which must succeed; what it printed.
fn admin_json(server: &Server, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&admin_ok(server, &a)).unwrap()
}

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
    let ok = |args: &[&str]| admin_ok(&server, args);
    let json = |args: &[&str]| admin_json(&server, args);
    ok(&["updateTopic", "-t", "cli-topic", "-r", "3", "-w", "3"]);
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
    // As Apache's tool, consumeMessage reads without committing: the same message again.
    for _ in 0..2 {
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
        assert_eq!(consumed.as_array().unwrap().len(), 1);
    }
    let progress = json(&["consumerProgress", "-g", "cli-group"]);
    assert_eq!(progress["queues"], serde_json::json!([]), "{progress}");
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

/// The flags of Apache's mqadmin, as a runbook written for it spells them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqadmin_accepts_apaches_flags() {
    let server = Server::start("");
    let ok = |args: &[&str]| admin_ok(&server, args);
    let json = |args: &[&str]| admin_json(&server, args);
    let fails = |args: &[&str], why: &str| {
        let (success, _, err) = admin(&server, args);
        assert!(!success && err.contains(why), "{args:?}: {err}");
    };
    let queues = |topic: &str| {
        let route = json(&["topicRoute", "-t", topic]);
        let q = &route["queueDatas"][0];
        (
            q["readQueueNums"].as_i64().unwrap(),
            q["writeQueueNums"].as_i64().unwrap(),
            q["perm"].as_i64().unwrap(),
        )
    };

    // Topics: -c / -b, separate -r and -w, -o writing the name server's order setting.
    ok(&[
        "updateTopic",
        "-c",
        "DefaultCluster",
        "-t",
        "apache-t",
        "-r",
        "4",
        "-w",
        "4",
    ]);
    assert_eq!(queues("apache-t"), (4, 4, 6));
    ok(&[
        "updateTopic",
        "-b",
        &server.broker,
        "-t",
        "apache-t2",
        "-w",
        "2",
        "-r",
        "3",
        "-o",
        "true",
    ]);
    assert_eq!(queues("apache-t2"), (3, 2, 6));
    let namesrv = connect(&server.namesrv).await;
    let order = call(
        &namesrv,
        RemotingCommand::request(101)
            .with_field("namespace", "ORDER_TOPIC_CONFIG")
            .with_field("key", "apache-t2"),
    )
    .await;
    assert_eq!(order.field("value"), Some("broker-a:2"));
    let listed = ok(&["topicRoute", "-t", "apache-t2", "-l"]);
    assert!(
        listed.lines().any(|l| l.starts_with("Total:")
            && l.split_whitespace().collect::<Vec<_>>() == ["Total:", "1", "3", "2"]),
        "{listed}"
    );
    fails(
        &["updateTopic", "-c", "NoSuchCluster", "-t", "x"],
        "no cluster NoSuchCluster",
    );
    fails(
        &["updateTopic", "-t", "x", "-a", "message.type=FIFO"],
        "starts with '+'",
    );
    assert_eq!(
        json(&["topicClusterList", "-t", "apache-t"]),
        serde_json::json!(["DefaultCluster"])
    );

    let sent = json(&[
        "sendMessage",
        "-t",
        "apache-t",
        "-p",
        "to-queue-1",
        "-k",
        "K1",
        "-c",
        "TagA",
        "-b",
        "broker-a",
        "-i",
        "1",
    ]);
    assert_eq!(
        (sent["brokerName"].as_str(), sent["queueId"].as_i64()),
        (Some("broker-a"), Some(1))
    );
    fails(
        &["sendMessage", "-t", "apache-t", "-p", "x", "-i", "1"],
        "--broker",
    );
    let stored = json(&["queryMsgByKey", "-t", "apache-t", "-k", "K1"])[0]["storeTimestamp"]
        .as_i64()
        .unwrap();
    let by_key = |begin: i64, end: i64| {
        json(&[
            "queryMsgByKey",
            "-t",
            "apache-t",
            "-k",
            "K1",
            "-b",
            &begin.to_string(),
            "-e",
            &end.to_string(),
            "-m",
            "10",
        ])
        .as_array()
        .unwrap()
        .len()
    };
    assert_eq!(by_key(stored, stored), 1);
    assert_eq!(by_key(stored + 1, i64::MAX), 0);
    assert_eq!(by_key(0, stored - 1), 0);
    for _ in 0..2 {
        let read = json(&[
            "consumeMessage",
            "-t",
            "apache-t",
            "-b",
            "broker-a",
            "-i",
            "1",
            "-o",
            "0",
            "-c",
            "5",
        ]);
        assert_eq!(read[0]["body"], "to-queue-1", "{read}");
        assert_eq!(read.as_array().unwrap().len(), 1);
    }
    assert_eq!(
        json(&[
            "consumeMessage",
            "-t",
            "apache-t",
            "-b",
            "broker-a",
            "-i",
            "2"
        ]),
        serde_json::json!([])
    );

    // Topic list in Apache's cluster model: cluster, topic, consuming groups.
    let rows = ok(&["topicList", "-c"]);
    assert!(
        rows.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["DefaultCluster", "apache-t"]),
        "{rows}"
    );

    // Groups: Apache's -r is retryMaxTimes on updateSubGroup, removeOffset on deleteSubGroup.
    ok(&[
        "updateSubGroup",
        "-c",
        "DefaultCluster",
        "-g",
        "apache-g",
        "-r",
        "3",
        "-q",
        "2",
        "-o",
        "true",
    ]);
    let broker = connect(&server.broker).await;
    let groups = |broker| async move {
        let resp = call(broker, RemotingCommand::request(201)).await;
        serde_json::from_slice::<serde_json::Value>(&resp.body).unwrap()["subscriptionGroupTable"]
            .clone()
    };
    let table = groups(&broker).await;
    assert_eq!(table["apache-g"]["retryMaxTimes"], 3, "{table}");
    assert_eq!(table["apache-g"]["retryQueueNums"], 2, "{table}");
    assert_eq!(table["apache-g"]["consumeMessageOrderly"], true, "{table}");

    // Offsets: skip to the end, back in time (Apache's local date form), forward only if forced.
    let lag =
        || json(&["consumerProgress", "-g", "apache-g", "-t", "apache-t"])["totalDiff"].clone();
    ok(&["skipAccumulatedMessage", "-g", "apache-g", "-t", "apache-t"]);
    assert_eq!(lag(), 0);
    let reset = json(&[
        "resetOffsetByTime",
        "-g",
        "apache-g",
        "-t",
        "apache-t",
        "-s",
        "2000-01-01#00:00:00:000",
    ]);
    assert_eq!(reset["offsets"].as_array().unwrap().len(), 4, "{reset}");
    assert_eq!(lag(), 1);
    ok(&[
        "resetOffsetByTime",
        "-g",
        "apache-g",
        "-t",
        "apache-t",
        "-s",
        "now",
        "-f",
        "false",
    ]);
    assert_eq!(lag(), 1, "-f false never moves an offset forward");
    ok(&[
        "skipAccumulatedMessage",
        "-g",
        "apache-g",
        "-t",
        "apache-t",
        "-c",
        "DefaultCluster",
    ]);
    assert_eq!(lag(), 0);
    ok(&[
        "resetOffsetByTime",
        "-g",
        "apache-g",
        "-t",
        "apache-t",
        "-s",
        "now",
        "-b",
        &server.broker,
        "-q",
        "1",
        "-o",
        "0",
    ]);
    assert_eq!(lag(), 1, "one queue set back by -b -q -o");

    ok(&[
        "updateTopicPerm",
        "-c",
        "DefaultCluster",
        "-t",
        "apache-t",
        "-p",
        "4",
    ]);
    assert_eq!(queues("apache-t"), (4, 4, 4));
    ok(&[
        "updateTopicPerm",
        "-b",
        &server.broker,
        "-t",
        "apache-t",
        "-p",
        "6",
    ]);
    assert_eq!(queues("apache-t"), (4, 4, 6));

    ok(&[
        "deleteSubGroup",
        "-c",
        "DefaultCluster",
        "-g",
        "apache-g",
        "-r",
        "true",
    ]);
    assert!(groups(&broker).await.get("apache-g").is_none());

    // Brokers and clusters.
    assert_eq!(
        json(&["getBrokerConfig", "-c", "DefaultCluster"])["broker-a"]["brokerName"],
        "broker-a"
    );
    assert!(
        json(&["brokerStatus", "-b", &server.broker])["broker-a"]["msgPutTotalTodayNow"]
            .is_string()
    );
    let more = json(&["clusterList", "-c", "DefaultCluster", "-m"]);
    assert_eq!(more[0]["brokerName"], "broker-a", "{more}");
    assert!(more[0]["inTotalToday"].as_i64().unwrap() >= 1, "{more}");
    fails(&["brokerStatus", "-c", "Elsewhere"], "no cluster Elsewhere");
    ok(&[
        "updateBrokerConfig",
        "-c",
        "DefaultCluster",
        "-k",
        "fileReservedTime",
        "-v",
        "2",
    ]);
    assert_eq!(
        json(&["getBrokerConfig", "-b", &server.broker])["broker-a"]["fileReservedTime"],
        "2"
    );

    ok(&["deleteTopic", "-t", "apache-t2", "-c", "DefaultCluster"]);
    fails(
        &["topicRoute", "-t", "apache-t2"],
        "unknown topic apache-t2",
    );
}

/// What the group commands show of a consumer that is online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqadmin_shows_online_consumers() {
    use ferromq_client::{ConsumeFrom, ConsumeResult, PushConsumer, Selector};

    let server = Server::start("");
    let ok = |args: &[&str]| admin_ok(&server, args);
    ok(&[
        "updateTopic",
        "-c",
        "DefaultCluster",
        "-t",
        "live-t",
        "-r",
        "2",
        "-w",
        "2",
    ]);
    ok(&["sendMessage", "-t", "live-t", "-p", "one"]);
    let consumer = PushConsumer::builder()
        .name_servers([server.namesrv.clone()])
        .group("live-g")
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe("live-t", Selector::All)
        .start(|_| async { ConsumeResult::Success })
        .await
        .unwrap();
    // Without -g: every group with a retry topic, with its client count and lag.
    crate::harness::eventually("the group to be listed with no lag", || {
        let (_, out, _) = admin(&server, &["consumerProgress", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .any(|g| g["group"] == "live-g" && g["count"] == 1 && g["diffTotal"] == 0)
        })
    });
    let conns = ok(&[
        "consumerConnection",
        "-g",
        "live-g",
        "-b",
        &server.broker,
        "--json",
    ]);
    let conns: serde_json::Value = serde_json::from_str(&conns).unwrap();
    assert_eq!(
        conns["connectionSet"].as_array().unwrap().len(),
        1,
        "{conns}"
    );
    let rows = ok(&["topicList", "-c"]);
    assert!(
        rows.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["DefaultCluster", "live-t", "live-g"]),
        "{rows}"
    );
    ok(&["producerConnection", "-g", "nobody", "-t", "live-t"]);
    let (found, _, err) = admin(
        &server,
        &["producerConnection", "-g", "nobody", "-t", "nope"],
    );
    assert!(!found && err.contains("unknown topic nope"), "{err}");
    consumer.shutdown().await;
}

/// `recallMessage -t -i` withdraws a timer message through the broker its handle names; the
/// message never arrives, and bad handles are refused before anything is sent.
#[tokio::test]
async fn recall_message_withdraws_a_timer_message_by_its_handle() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let due = crate::harness::now_ms() + 3_000;
    let timer = encode_properties([("TIMER_DELIVER_MS", due.to_string().as_str())]);
    let sent = call(&broker, send_request("recallme", b"withdrawn", &timer)).await;
    assert_eq!(sent.code, 0, "{:?}", sent.remark);
    let handle = sent.field("recallHandle").unwrap().to_string();
    let out = admin_json(&server, &["recallMessage", "-t", "recallme", "-i", &handle]);
    let id = out["msgId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{out}");
    assert_eq!(out["brokerName"], "broker-a");

    let (ok, _, err) = admin(&server, &["recallMessage", "-t", "other", "-i", &handle]);
    assert!(!ok && err.contains("for topic recallme"), "{err}");
    let (ok, _, err) = admin(
        &server,
        &["recallMessage", "-t", "recallme", "-i", "garbage!"],
    );
    assert!(!ok && err.contains("recall handle is invalid"), "{err}");

    // Past its due time, nothing arrived.
    tokio::time::sleep(std::time::Duration::from_millis(4_000)).await;
    let pulled = call(&broker, pull_request("recallme", 0, 0, 0)).await;
    let delivered = if pulled.code == 0 {
        MessageExt::decode_all(&pulled.body).unwrap().len()
    } else {
        0
    };
    assert_eq!(delivered, 0, "a recalled message was delivered");
}

/// `producer` (GET_ALL_PRODUCER_INFO) lists a producer by its heartbeat; a subscription query
/// (QUERY_SUBSCRIPTION_BY_CONSUMER) without its group is refused, one for an unknown group
/// answers without a subscription.
#[tokio::test]
async fn producer_lists_connected_producers_and_subscriptions_are_queried() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    let heartbeat = serde_json::json!({
        "clientID": "127.0.0.1@listed",
        "producerDataSet": [{"groupName": "PG-listed"}],
        "consumerDataSet": []
    });
    let hb = call(
        &broker,
        RemotingCommand::request(34).with_body(heartbeat.to_string()),
    )
    .await;
    assert_eq!(hb.code, 0, "{:?}", hb.remark);
    let listed = admin_json(&server, &["producer"]);
    let (_, groups) = listed.as_object().unwrap().iter().next().unwrap();
    assert_eq!(
        groups["PG-listed"][0]["clientId"], "127.0.0.1@listed",
        "{listed}"
    );
    assert!(groups["PG-listed"][0]["remoteIP"]
        .as_str()
        .unwrap()
        .starts_with("/127.0.0.1:"));

    let headless = call(
        &broker,
        RemotingCommand::request(345).with_field("topic", "T"),
    )
    .await;
    assert_eq!(headless.code, 1, "{:?}", headless.remark);
    let unknown = call(
        &broker,
        RemotingCommand::request(345)
            .with_field("group", "nobody")
            .with_field("topic", "T"),
    )
    .await;
    assert_eq!(unknown.code, 0);
    let body: serde_json::Value = serde_json::from_slice(&unknown.body).unwrap();
    assert_eq!(body, serde_json::json!({"group": "nobody", "topic": "T"}));
}

/// `cleanExpiredCQ`, `deleteExpiredCommitLog` and `cleanUnusedTopic` run on every broker and
/// take nothing that is still wanted: a configured topic's recent messages stay readable.
#[tokio::test]
async fn cleanup_commands_keep_what_is_wanted() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    assert_eq!(
        call(&broker, send_request("kept", b"still here", ""))
            .await
            .code,
        0
    );
    for command in [
        "cleanExpiredCQ",
        "deleteExpiredCommitLog",
        "cleanUnusedTopic",
    ] {
        let out = admin_json(&server, &[command]);
        let results: Vec<&serde_json::Value> = out.as_object().unwrap().values().collect();
        assert_eq!(
            results,
            vec![&serde_json::json!("success")],
            "{command}: {out}"
        );
    }
    let pulled = call(&broker, pull_request("kept", 0, 0, 0)).await;
    assert_eq!(pulled.code, 0, "{:?}", pulled.remark);
    let found = MessageExt::decode_all(&pulled.body).unwrap();
    assert_eq!(&found[0].body[..], b"still here");
}

/// QUERY_CONSUME_TIME_SPAN (303): store times per queue and the group's delay; refusals for a
/// missing field and an unknown topic.
#[tokio::test]
async fn consume_time_span_shows_what_a_group_has_left() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    for body in [b"one", b"two"] {
        assert_eq!(call(&broker, send_request("span", body, "")).await.code, 0);
    }
    assert_eq!(
        call(&broker, crate::harness::commit_request("G", "span", 0, 1))
            .await
            .code,
        0
    );
    let span = |topic: &str, group: Option<&str>| {
        let mut r = RemotingCommand::request(303).with_field("topic", topic);
        if let Some(g) = group {
            r = r.with_field("group", g);
        }
        r
    };
    let resp = call(&broker, span("span", Some("G"))).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let q0 = &body["consumeTimeSpanSet"][0];
    assert_eq!(q0["messageQueue"]["queueId"], 0);
    let (min, max, consumed) = (
        q0["minTimeStamp"].as_i64().unwrap(),
        q0["maxTimeStamp"].as_i64().unwrap(),
        q0["consumeTimeStamp"].as_i64().unwrap(),
    );
    assert!(min > 0 && max >= min && consumed == min, "{q0}");
    assert!(q0["delayTime"].as_i64().unwrap() >= 0, "{q0}");
    assert_eq!(call(&broker, span("span", None)).await.code, 1);
    assert_eq!(call(&broker, span("nosuch", Some("G"))).await.code, 17);
}

/// `cloneGroupOffset -s -d -t` (CLONE_GROUP_OFFSET): the destination group takes the source's
/// committed offsets; without a topic every topic of the source is cloned; a request without
/// its groups is refused.
#[tokio::test]
async fn clone_group_offset_copies_committed_offsets() {
    let server = Server::start("");
    let broker = connect(&server.broker).await;
    for topic in ["cloned-a", "cloned-b"] {
        assert_eq!(call(&broker, send_request(topic, b"x", "")).await.code, 0);
        assert_eq!(
            call(&broker, crate::harness::commit_request("SRC", topic, 0, 1))
                .await
                .code,
            0
        );
    }
    admin_ok(
        &server,
        &[
            "cloneGroupOffset",
            "-s",
            "SRC",
            "-d",
            "DST",
            "-t",
            "cloned-a",
            "-o",
            "true",
        ],
    );
    let offset = |group: &str, topic: &str| {
        RemotingCommand::request(14)
            .with_field("consumerGroup", group)
            .with_field("topic", topic)
            .with_field("queueId", 0)
    };
    assert_eq!(
        call(&broker, offset("DST", "cloned-a"))
            .await
            .field("offset"),
        Some("1")
    );
    assert_ne!(
        call(&broker, offset("DST", "cloned-b"))
            .await
            .field("offset"),
        Some("1")
    );
    let every_topic = RemotingCommand::request(314)
        .with_field("srcGroup", "SRC")
        .with_field("destGroup", "ALL")
        .with_field("offline", true);
    assert_eq!(call(&broker, every_topic).await.code, 0);
    for topic in ["cloned-a", "cloned-b"] {
        assert_eq!(
            call(&broker, offset("ALL", topic)).await.field("offset"),
            Some("1"),
            "{topic}"
        );
    }
    let headless = call(
        &broker,
        RemotingCommand::request(314).with_field("srcGroup", "SRC"),
    )
    .await;
    assert_eq!(headless.code, 1, "{:?}", headless.remark);
}

#[tokio::test]
async fn name_server_commands_drain_a_broker_and_manage_kv_and_config() {
    let server = Server::start("");
    // A topic, so that the broker has routes to take write permission from.
    admin_ok(&server, &["updateTopic", "-t", "drained"]);
    let out = admin_ok(&server, &["wipeWritePerm", "-b", "broker-a"]);
    let wiped = out
        .trim()
        .rsplit_once(", ")
        .and_then(|(_, n)| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        out.contains("wipe write perm of broker[broker-a] in name server[") && wiped > 0,
        "{out}"
    );
    let route = admin_json(&server, &["topicRoute", "-t", "drained"]);
    assert_eq!(
        route["queueDatas"][0]["perm"], 4,
        "read only after the wipe: {route}"
    );
    let out = admin_ok(&server, &["addWritePerm", "-b", "broker-a"]);
    assert!(out.contains("add write perm of broker[broker-a]"), "{out}");
    let route = admin_json(&server, &["topicRoute", "-t", "drained"]);
    assert_eq!(route["queueDatas"][0]["perm"], 6, "writable again: {route}");

    let out = admin_ok(
        &server,
        &[
            "updateKvConfig",
            "-s",
            "ORDER_TOPIC_CONFIG",
            "-k",
            "orders",
            "-v",
            "broker-a:4",
        ],
    );
    assert!(out.contains("success"), "{out}");
    let ns = connect(&server.namesrv).await;
    let get = RemotingCommand::request(101)
        .with_field("namespace", "ORDER_TOPIC_CONFIG")
        .with_field("key", "orders");
    let resp = call(&ns, get.clone()).await;
    assert_eq!(resp.field("value"), Some("broker-a:4"));
    admin_ok(
        &server,
        &["deleteKvConfig", "-s", "ORDER_TOPIC_CONFIG", "-k", "orders"],
    );
    assert_ne!(call(&ns, get).await.code, 0, "the entry is gone");

    let config = admin_ok(&server, &["getNamesrvConfig"]);
    assert!(
        config.contains(&format!("============{}============", server.namesrv)),
        "{config}"
    );
    assert!(config.contains("listenPort"), "{config}");
    let (ok, _, err) = admin(
        &server,
        &[
            "updateNamesrvConfig",
            "-k",
            "orderMessageEnable",
            "-v",
            "true",
        ],
    );
    assert!(!ok && err.contains("does not change at run time"), "{err}");
}

#[tokio::test]
async fn batch_deletes_of_topics_and_groups_check_the_whole_list_first() {
    let server = Server::start("");
    for t in ["batch-a", "batch-b"] {
        admin_ok(&server, &["updateTopic", "-t", t]);
    }
    for g in ["batch-g1", "batch-g2"] {
        admin_ok(&server, &["updateSubGroup", "-g", g]);
    }
    let broker = connect(&server.broker).await;
    let delete_topics =
        |body: &str| RemotingCommand::request(5002).with_body(body.as_bytes().to_vec());
    for (body, remark) in [
        (r#"{"topicList":[]}"#, "The specified topic list is blank."),
        (
            r#"{"topicList":["batch-a"," "]}"#,
            "The specified topic is blank.",
        ),
        (
            r#"{"topicList":["batch-a","TBW102"]}"#,
            "The topic[TBW102] is conflict with system topic.",
        ),
    ] {
        let resp = call(&broker, delete_topics(body)).await;
        assert_eq!(
            (resp.code, resp.remark.as_deref()),
            (29, Some(remark)),
            "{body}"
        );
    }
    let resp = call(&broker, delete_topics("[")).await;
    assert_eq!(resp.code, 29, "{:?}", resp.remark);
    // Nothing was deleted by the refused requests.
    assert!(admin_ok(&server, &["topicList"]).contains("batch-a"));
    let resp = call(
        &broker,
        delete_topics(r#"{"topicList":["batch-a","batch-b","batch-a"]}"#),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let topics = call(&broker, RemotingCommand::request(21)).await;
    let table: serde_json::Value = serde_json::from_slice(&topics.body).unwrap();
    assert!(
        table["topicConfigTable"].get("batch-a").is_none()
            && table["topicConfigTable"].get("batch-b").is_none()
    );

    let delete_groups =
        |body: &str| RemotingCommand::request(5003).with_body(body.as_bytes().to_vec());
    let resp = call(&broker, delete_groups(r#"{"groupNameList":[]}"#)).await;
    assert_eq!(
        (resp.code, resp.remark.as_deref()),
        (29, Some("The specified group name list is blank."))
    );
    let resp = call(
        &broker,
        delete_groups(r#"{"groupNameList":["batch-g1","batch-g2"],"cleanOffset":true}"#),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let groups = call(&broker, RemotingCommand::request(201)).await;
    let table: serde_json::Value = serde_json::from_slice(&groups.body).unwrap();
    assert!(
        table["subscriptionGroupTable"].get("batch-g1").is_none(),
        "{table}"
    );
    assert!(
        table["subscriptionGroupTable"].get("batch-g2").is_none(),
        "{table}"
    );
}

#[tokio::test]
async fn topic_and_group_lists_from_a_file_and_a_groups_configuration() {
    let server = Server::start("");
    let dir = tempfile::tempdir().unwrap();
    let topics = dir.path().join("topics.json");
    std::fs::write(
        &topics,
        r#"[{"topicName":"listed-1","readQueueNums":2,"writeQueueNums":2,"perm":6},
            {"topicName":"listed-2","readQueueNums":3,"writeQueueNums":3,"perm":6}]"#,
    )
    .unwrap();
    let out = admin_ok(
        &server,
        &["updateTopicList", "-f", topics.to_str().unwrap()],
    );
    assert!(out.contains("submit batch of topic config to"), "{out}");
    let list = admin_ok(&server, &["topicList"]);
    assert!(
        list.contains("listed-1") && list.contains("listed-2"),
        "{list}"
    );
    let groups = dir.path().join("groups.json");
    std::fs::write(
        &groups,
        r#"[{"groupName":"listed-g1","retryMaxTimes":3},{"groupName":"listed-g2","retryMaxTimes":5}]"#,
    )
    .unwrap();
    admin_ok(
        &server,
        &["updateSubGroupList", "-f", groups.to_str().unwrap()],
    );
    let config = admin_ok(&server, &["getConsumerConfig", "-g", "listed-g2"]);
    assert!(config.contains("DefaultCluster:broker-a"), "{config}");
    assert!(
        config
            .lines()
            .any(|l| l.starts_with("retryMaxTimes") && l.trim_end().ends_with("=  5")),
        "{config}"
    );
    let missing = dir.path().join("missing.json");
    let (ok, _, err) = admin(
        &server,
        &["updateTopicList", "-f", missing.to_str().unwrap()],
    );
    assert!(!ok && err.contains("does not exists"), "{err}");
    std::fs::write(&missing, "{}").unwrap();
    let (ok, _, err) = admin(
        &server,
        &["updateTopicList", "-f", missing.to_str().unwrap()],
    );
    assert!(!ok && err.contains("not a JSON list"), "{err}");
}

#[tokio::test]
async fn unit_topic_lists_follow_the_topics_flags() {
    let server = Server::start("");
    admin_ok(&server, &["updateTopic", "-t", "unit-topic", "-u", "true"]);
    admin_ok(
        &server,
        &["updateTopic", "-t", "unit-sub-topic", "-s", "true"],
    );
    admin_ok(&server, &["updateTopic", "-t", "plain-topic"]);
    let ns = connect(&server.namesrv).await;
    let list = |code: i32| {
        let ns = ns.clone();
        async move {
            let resp = call(&ns, RemotingCommand::request(code)).await;
            assert_eq!(resp.code, 0, "{code}: {:?}", resp.remark);
            let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            let mut topics: Vec<String> = v["topicList"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .filter(|t| t.ends_with("-topic"))
                .collect();
            topics.sort();
            topics
        }
    };
    // GET_UNIT_TOPIC_LIST (311), GET_HAS_UNIT_SUB_TOPIC_LIST (312),
    // GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST (313).
    assert_eq!(list(311).await, ["unit-topic"]);
    assert_eq!(list(312).await, ["unit-sub-topic"]);
    assert_eq!(list(313).await, ["unit-sub-topic"]);
}

/// QUERY_TOPIC_CONSUME_BY_WHO (300) follows every change of who subscribes: a new group, a
/// heartbeat naming one more topic or one fewer, a client leaving; and groups with offsets.
#[tokio::test]
async fn topic_consumers_follow_heartbeats_and_departures() {
    let server = Server::start("");
    let heartbeat = |client: &str, group: &str, topics: &[&str]| {
        let subs: Vec<serde_json::Value> = topics
            .iter()
            .map(|t| serde_json::json!({"topic": t, "subString": "*", "subVersion": 1}))
            .collect();
        RemotingCommand::request(34).with_body(
            serde_json::json!({
                "clientID": client,
                "consumerDataSet": [{"groupName": group, "consumeType": "CONSUME_PASSIVELY",
                    "messageModel": "CLUSTERING", "subscriptionDataSet": subs}],
            })
            .to_string(),
        )
    };
    let by_who = async |topic: &str| {
        let conn = connect(&server.broker).await;
        let resp = call(
            &conn,
            RemotingCommand::request(300).with_field("topic", topic),
        )
        .await;
        assert_eq!(resp.code, 0, "{:?}", resp.remark);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let mut groups: Vec<String> = body["groupList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        groups.sort();
        groups
    };
    let first = connect(&server.broker).await;
    assert_eq!(call(&first, heartbeat("c1", "g1", &["ta"])).await.code, 0);
    assert_eq!(by_who("ta").await, ["g1"]);
    assert!(by_who("tb").await.is_empty());
    assert_eq!(
        call(&first, heartbeat("c1", "g1", &["ta", "tb"]))
            .await
            .code,
        0
    );
    assert_eq!(
        by_who("tb").await,
        ["g1"],
        "a topic added by a later heartbeat"
    );
    let second = connect(&server.broker).await;
    assert_eq!(call(&second, heartbeat("c2", "g2", &["tb"])).await.code, 0);
    assert_eq!(by_who("tb").await, ["g1", "g2"], "a new group");
    assert_eq!(call(&first, heartbeat("c1", "g1", &["ta"])).await.code, 0);
    assert_eq!(
        by_who("tb").await,
        ["g2"],
        "a topic the heartbeat no longer names"
    );
    second.close();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !by_who("tb").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "g2 must go with its connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A group with an offset on the topic consumes it too, online or not.
    let commit = RemotingCommand::request(15)
        .with_field("consumerGroup", "g3")
        .with_field("topic", "tb")
        .with_field("queueId", "0")
        .with_field("commitOffset", "4");
    assert_eq!(call(&first, commit).await.code, 0);
    assert_eq!(by_who("tb").await, ["g3"]);
    assert_eq!(by_who("ta").await, ["g1"]);
}
