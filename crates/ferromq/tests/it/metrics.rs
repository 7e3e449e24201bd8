//! Prometheus metrics scraped under load: each series moves as the load does, with
//! Apache's names and labels, on the dashboard's `/metrics` and on the exporter port.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_client::{ConsumeResult, Message, Producer, PushConsumer, Selector};

use crate::harness::{free_port, refused_start, Server};

/// GET `path` over HTTP/1.0; returns the head and the body.
fn get(addr: &str, path: &str, accept: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

type Series = Vec<(BTreeMap<String, String>, f64)>;

/// The samples of `name` (the full sample name, `_total`/`_count` included).
fn series(text: &str, name: &str) -> Series {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (metric, labels) = match head.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        if metric != name {
            continue;
        }
        let mut map = BTreeMap::new();
        // Values here hold no `",` sequence: topic and group names are plain.
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap();
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        out.push((map, value.parse().unwrap()));
    }
    out
}

/// The one sample of `name` whose labels include `want`.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = series(text, name)
        .into_iter()
        .filter(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    assert!(matching.len() <= 1, "{name} {want:?} matches {matching:?}");
    matching.first().copied()
}

fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

const TOPIC: &str = "MetricsTopic";
const GROUP: &str = "MetricsGroup";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_count_what_was_sent_and_consumed_and_lag_follows_the_consumer() {
    let exporter = free_port();
    let server = Server::start(&format!(
        "metricsExporterType=PROM\nmetricsPromExporterPort={exporter}\nmetricsLabel=env:test,zone:z1\n"
    ));
    let exporter = format!("127.0.0.1:{exporter}");
    let dashboard = server.dashboard.clone();
    let scrape = move || get(&dashboard, "/metrics", "*/*").1;

    let producer = Producer::builder()
        .name_servers([server.namesrv.as_str()])
        .group("metrics-producer")
        .build()
        .unwrap();
    let body = "x".repeat(100);
    for _ in 0..30 {
        producer
            .send(Message::new(TOPIC, body.clone()))
            .await
            .unwrap();
    }
    let text = scrape();
    let common = [
        ("topic", TOPIC),
        ("cluster", "DefaultCluster"),
        ("node_id", "broker-a"),
        ("node_type", "broker"),
        ("env", "test"),
        ("zone", "z1"),
    ];
    let normal = [
        &common[..],
        &[("message_type", "normal"), ("is_system", "false")],
    ]
    .concat();
    assert_eq!(
        value(&text, "rocketmq_messages_in_total", &normal),
        Some(30.0),
        "{text}"
    );
    let bytes = value(&text, "rocketmq_throughput_in_total", &normal).unwrap();
    assert!(
        bytes >= 30.0 * 100.0,
        "stored bytes include the bodies: {bytes}"
    );
    assert_eq!(
        value(&text, "rocketmq_message_size_count", &normal),
        Some(30.0)
    );
    let sends = value(
        &text,
        "rocketmq_rpc_latency_milliseconds_count",
        &[
            ("request_code", "send_message_v2"),
            ("response_code", "success"),
            ("protocol_type", "remoting"),
        ],
    )
    .unwrap();
    assert!(sends >= 30.0, "every send timed: {sends}");
    let delayed = [&common[..], &[("message_type", "delay")]].concat();
    producer
        .send(Message::new(TOPIC, "later").with_delay_level(1))
        .await
        .unwrap();
    assert_eq!(
        value(&scrape(), "rocketmq_messages_in_total", &delayed),
        Some(1.0)
    );

    // A consumer that holds its messages while `gate` is closed.
    let gate = Arc::new(AtomicBool::new(true));
    let consumed = Arc::new(AtomicUsize::new(0));
    let (g, c) = (gate.clone(), consumed.clone());
    let consumer = PushConsumer::builder()
        .name_servers([server.namesrv.as_str()])
        .group(GROUP)
        .subscribe(TOPIC, Selector::All)
        .start(move |msgs| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                while !g.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                c.fetch_add(msgs.len(), Ordering::AcqRel);
                ConsumeResult::Success
            }
        })
        .await
        .unwrap();
    let lag_labels = [
        ("consumer_group", GROUP),
        ("topic", TOPIC),
        ("is_retry", "false"),
    ];
    let out_labels = [
        ("consumer_group", GROUP),
        ("topic", TOPIC),
        ("is_system", "false"),
    ];
    let first = scrape.clone();
    tokio::task::spawn_blocking(move || {
        let scrape = first;
        eventually(
            "all 31 consumed and committed",
            Duration::from_secs(60),
            || {
                let text = scrape();
                let out = value(&text, "rocketmq_messages_out_total", &out_labels);
                let lag = value(&text, "rocketmq_consumer_lag_messages", &lag_labels);
                (out == Some(31.0) && lag == Some(0.0))
                    .then_some(())
                    .ok_or(format!("out {out:?}, lag {lag:?}"))
            },
        );
        let text = scrape();
        assert_eq!(
            value(
                &text,
                "rocketmq_consumer_connections",
                &[
                    ("consumer_group", GROUP),
                    ("language", "rust"),
                    ("consume_mode", "push")
                ]
            ),
            Some(1.0),
            "{text}"
        );
        assert!(
            value(
                &text,
                "rocketmq_producer_connections",
                &[("language", "rust")]
            )
            .unwrap()
                >= 1.0
        );
        assert_eq!(
            value(
                &text,
                "rocketmq_consumer_lag_latency_milliseconds",
                &lag_labels
            ),
            Some(0.0)
        );
    })
    .await
    .unwrap();

    // Held messages are pulled but not committed: they are lag until consumed.
    gate.store(false, Ordering::Release);
    for _ in 0..20 {
        producer
            .send(Message::new(TOPIC, body.clone()))
            .await
            .unwrap();
    }
    let scrape_again = scrape.clone();
    tokio::task::spawn_blocking(move || {
        eventually(
            "lag of 20 while the consumer holds them",
            Duration::from_secs(30),
            || {
                let text = scrape();
                let lag = value(&text, "rocketmq_consumer_lag_messages", &lag_labels);
                let latency = value(
                    &text,
                    "rocketmq_consumer_lag_latency_milliseconds",
                    &lag_labels,
                );
                (lag == Some(20.0) && latency.is_some_and(|l| l > 0.0))
                    .then_some(())
                    .ok_or(format!("lag {lag:?}, latency {latency:?}"))
            },
        );
    })
    .await
    .unwrap();
    gate.store(true, Ordering::Release);
    tokio::task::spawn_blocking(move || {
        eventually("lag back to 0", Duration::from_secs(60), || {
            let text = scrape_again();
            let lag = value(&text, "rocketmq_consumer_lag_messages", &lag_labels);
            let out = value(&text, "rocketmq_messages_out_total", &out_labels);
            (lag == Some(0.0) && out == Some(51.0))
                .then_some(())
                .ok_or(format!("lag {lag:?}, out {out:?}"))
        });
    })
    .await
    .unwrap();
    assert_eq!(consumed.load(Ordering::Acquire), 51);
    consumer.shutdown().await;

    // The exporter port serves the same families; OpenMetrics when asked for it.
    let (head, text) = get(
        &exporter,
        "/metrics",
        "application/openmetrics-text;version=1.0.0",
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert_eq!(
        value(&text, "rocketmq_messages_in_total", &normal),
        Some(50.0)
    );
    let (_, plain) = get(&exporter, "/", "*/*");
    for family in [
        "rocketmq_topic_number",
        "rocketmq_consumer_group_number",
        "rocketmq_broker_permission",
        "rocketmq_storage_flush_behind_bytes",
        "rocketmq_storage_dispatch_behind_bytes",
        "rocketmq_storage_size_bytes",
        "rocketmq_storage_message_reserve_time_milliseconds",
        "ferromq_timer_pending_messages",
    ] {
        assert!(
            !series(&plain, family).is_empty(),
            "{family} missing:\n{plain}"
        );
    }
    assert_eq!(value(&plain, "rocketmq_broker_permission", &[]), Some(6.0));
    assert!(value(&plain, "ferromq_fsync_latency_milliseconds_count", &[]).unwrap() > 0.0);
    assert_eq!(
        get(&exporter, "/-/healthy", "*/*").1,
        "Exporter is Healthy."
    );
}

#[tokio::test]
async fn label_sets_beyond_the_limit_share_one_overflow_series() {
    let server = Server::start("metricsOtelCardinalityLimit=4\n");
    let producer = Producer::builder()
        .name_servers([server.namesrv.as_str()])
        .group("cap-producer")
        .build()
        .unwrap();
    for i in 0..6 {
        producer
            .send(Message::new(format!("CapTopic{i}"), "x"))
            .await
            .unwrap();
    }
    let text = get(&server.dashboard, "/metrics", "*/*").1;
    let sent = series(&text, "rocketmq_messages_in_total");
    assert_eq!(
        sent.len(),
        4,
        "three topics and the overflow series: {sent:?}"
    );
    let overflow = value(
        &text,
        "rocketmq_messages_in_total",
        &[("otel_metric_overflow", "true")],
    );
    assert_eq!(overflow, Some(3.0), "{sent:?}");
    assert_eq!(sent.iter().map(|(_, v)| v).sum::<f64>(), 6.0);
    assert!(
        server.logs().contains("metricsOtelCardinalityLimit"),
        "the cap is reported once"
    );
}

/// A pull group's inflight (pulled, not committed), ready (not pulled) and queueing latency
/// (age of the oldest message not pulled) follow its pulls and commits, by Apache's
/// formulas: the pull position is the offset the last pull asked for.
#[tokio::test]
async fn pull_groups_inflight_and_ready_follow_their_pulls_and_commits() {
    use crate::harness::{call, commit_request, connect, pull_request, send_request};
    use ferromq_protocol::RemotingCommand;
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    for i in 0..10 {
        let body = format!("m{i}");
        assert_eq!(
            call(&conn, send_request("pulled-t", body.as_bytes(), ""))
                .await
                .code,
            0
        );
    }
    let heartbeat = serde_json::json!({
        "clientID": "gauge-client",
        "producerDataSet": [],
        "consumerDataSet": [{
            "groupName": "CG", "consumeType": "CONSUME_ACTIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "unitMode": false,
            "subscriptionDataSet": [{"topic": "pulled-t", "subString": "*", "expressionType": "TAG",
                                     "tagsSet": [], "codeSet": [], "subVersion": 1, "classFilterMode": false}]
        }]
    });
    assert_eq!(
        call(
            &conn,
            RemotingCommand::request(34).with_body(heartbeat.to_string())
        )
        .await
        .code,
        0
    );
    let gauges = |text: &str| {
        let labels = [("consumer_group", "CG"), ("topic", "pulled-t")];
        (
            value(text, "rocketmq_consumer_inflight_messages", &labels),
            value(text, "rocketmq_consumer_ready_messages", &labels),
            value(
                text,
                "rocketmq_consumer_queueing_latency_milliseconds",
                &labels,
            ),
        )
    };
    let (inflight, ready, _) = gauges(&get(&server.dashboard, "/metrics", "*/*").1);
    assert_eq!(
        (inflight, ready),
        (Some(0.0), Some(0.0)),
        "nothing pulled yet"
    );
    // Two pulls: the second asks for offset 4, so 0..4 were handed out.
    let first = pull_request("pulled-t", 0, 0, 0).with_field("maxMsgNums", 4);
    assert_eq!(call(&conn, first).await.code, 0);
    let second = pull_request("pulled-t", 0, 4, 0).with_field("maxMsgNums", 4);
    assert_eq!(call(&conn, second).await.code, 0);
    let commit = commit_request("CG", "pulled-t", 0, 1);
    assert_eq!(call(&conn, commit).await.code, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (inflight, ready, queueing) = gauges(&get(&server.dashboard, "/metrics", "*/*").1);
    assert_eq!(inflight, Some(3.0), "pulled up to 4, committed 1");
    assert_eq!(ready, Some(6.0), "10 stored, 4 pulled");
    assert!(queueing.unwrap() > 0.0, "message 4 waits: {queueing:?}");
    let commit = commit_request("CG", "pulled-t", 0, 4);
    assert_eq!(call(&conn, commit).await.code, 0);
    let (inflight, _, _) = gauges(&get(&server.dashboard, "/metrics", "*/*").1);
    assert_eq!(inflight, Some(0.0));
}

#[test]
fn exporter_settings_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_start(dir.path(), "metricsExporterType=OTLP_GRPC\n");
    assert!(
        err.contains("metricsExporterType") && err.contains("PROM"),
        "{err}"
    );
    let err = refused_start(dir.path(), "metricsLabel=no-colon-here\n");
    assert!(err.contains("metricsLabel"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = refused_start(
        dir.path(),
        &format!("metricsExporterType=PROM\nmetricsPromExporterPort={port}\n"),
    );
    assert!(err.contains("metrics exporter"), "{err}");
}
