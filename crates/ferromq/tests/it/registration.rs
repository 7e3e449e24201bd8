//! Registration with name servers at scale (issue 21): a topic change sends only the
//! changed topics, a deletion the whole table; the name server adds what unmarked (Apache)
//! bodies carry and replaces a broker's topics only from a whole table; `forceRegister=false`
//! asks QUERY_DATA_VERSION before sending the table.

use std::time::{Duration, Instant};

use ferromq_protocol::body::{
    DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper, TopicRouteData,
};
use ferromq_protocol::header::{CommandHeader, RegisterBrokerRequestHeader};
use ferromq_protocol::RemotingCommand;

use crate::cluster::broker;
use crate::harness::{call, connect, create_topic, free_port, Proc};

/// A name server logging its registrations (debug).
fn logging_namesrv() -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let proc = Proc::spawn(&[
        "namesrv".into(),
        "--listen".into(),
        addr.clone(),
        "--log-level".into(),
        "info,ferromq_namesrv=debug".into(),
    ]);
    (proc, addr)
}

async fn route(ns: &str, topic: &str) -> Option<TopicRouteData> {
    let resp = call(
        &connect(ns).await,
        RemotingCommand::request(105).with_field("topic", topic),
    )
    .await;
    (resp.code == 0).then(|| serde_json::from_slice(&resp.body).unwrap())
}

async fn brokers_routing(ns: &str, topic: &str) -> Vec<String> {
    let mut names: Vec<String> = route(ns, topic)
        .await
        .map(|r| r.queue_datas.into_iter().map(|q| q.broker_name).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn count(logs: &str, needle: &str) -> usize {
    logs.lines().filter(|l| l.contains(needle)).count()
}

/// Waits up to `limit` for `f`; async checks, bounded.
async fn within(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

const WHOLE: &str = r#"carried="whole table""#;
const INCREMENT_OF_ONE: &str = r#"topics=1 carried="changed topics""#;

#[tokio::test]
async fn a_created_topic_travels_alone_and_a_deletion_sends_the_table() {
    let (ns_proc, ns) = logging_namesrv();
    let dir = tempfile::tempdir().unwrap();
    let conf = |name: &str| format!("brokerName={name}\nnamesrvAddr={ns}\n");
    let (_a, a) = broker(dir.path(), "a", &conf("broker-a"));
    let (_b, b) = broker(dir.path(), "b", &conf("broker-b"));
    within(
        Duration::from_secs(10),
        "both brokers' first registration",
        async || count(&ns_proc.logs(), WHOLE) >= 2,
    )
    .await;
    let wholes_before = count(&ns_proc.logs(), WHOLE);

    for i in 0..20 {
        create_topic(&a, &format!("reg-a-{i}"), 4).await;
    }
    create_topic(&a, "reg-shared", 4).await;
    create_topic(&b, "reg-shared", 4).await;
    // Each creation was registered before it was answered, as its one topic.
    for i in 0..20 {
        assert_eq!(
            brokers_routing(&ns, &format!("reg-a-{i}")).await,
            ["broker-a"]
        );
    }
    assert_eq!(
        brokers_routing(&ns, "reg-shared").await,
        ["broker-a", "broker-b"]
    );
    let logs = ns_proc.logs();
    assert_eq!(count(&logs, INCREMENT_OF_ONE), 22, "{logs}");
    assert_eq!(
        count(&logs, WHOLE),
        wholes_before,
        "no whole table for a creation:\n{logs}"
    );

    // A deletion on broker-a takes broker-a out of the route only.
    let delete = RemotingCommand::request(215).with_field("topic", "reg-shared");
    assert_eq!(call(&connect(&a).await, delete).await.code, 0);
    within(
        Duration::from_secs(10),
        "broker-a's deletion at the name server",
        async || brokers_routing(&ns, "reg-shared").await == ["broker-b"],
    )
    .await;
    assert_eq!(brokers_routing(&ns, "reg-a-7").await, ["broker-a"]);
    assert!(count(&ns_proc.logs(), WHOLE) > wholes_before);
}

#[tokio::test]
async fn a_topic_list_is_stored_and_registered_in_one_go() {
    let (ns_proc, ns) = logging_namesrv();
    let dir = tempfile::tempdir().unwrap();
    let (_broker, addr) = broker(
        dir.path(),
        "list",
        &format!("brokerName=broker-l\nnamesrvAddr={ns}\n"),
    );
    let list: Vec<serde_json::Value> = (0..500)
        .map(|i| serde_json::json!({"topicName": format!("list-{i}"), "readQueueNums": 8, "writeQueueNums": 8, "perm": 6}))
        .collect();
    let body = serde_json::json!({ "topicConfigList": list }).to_string();
    let resp = call(
        &connect(&addr).await,
        RemotingCommand::request(18).with_body(body.into_bytes()),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    for i in [0, 123, 499] {
        assert_eq!(
            brokers_routing(&ns, &format!("list-{i}")).await,
            ["broker-l"]
        );
    }
    let logs = ns_proc.logs();
    assert_eq!(
        count(&logs, r#"topics=500 carried="changed topics""#),
        1,
        "{logs}"
    );
}

fn table(topics: &[&str], counter: i64) -> RegisterBrokerBody {
    RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: topics
                .iter()
                .map(|t| (t.to_string(), TopicConfig::new(t, 4, 6)))
                .collect(),
            data_version: DataVersion {
                timestamp: 1,
                counter,
                state_version: 0,
            },
        },
        filter_server_list: vec![],
    }
}

async fn register(
    conn: &ferromq_remoting::Connection,
    whole: Option<bool>,
    body: &RegisterBrokerBody,
) {
    let mut req = RemotingCommand::request(103);
    RegisterBrokerRequestHeader {
        broker_name: "stand-in".into(),
        broker_addr: "127.0.0.1:1".into(),
        cluster_name: "StandIn".into(),
        ha_server_addr: Some("127.0.0.1:2".into()),
        broker_id: 0,
        whole_table: whole,
        ..Default::default()
    }
    .encode(&mut req.ext_fields);
    req.body = serde_json::to_vec(body).unwrap().into();
    assert_eq!(call(conn, req).await.code, 0);
}

async fn version_changed(conn: &ferromq_remoting::Connection, body: &RegisterBrokerBody) -> bool {
    let req = RemotingCommand::request(322)
        .with_field("brokerAddr", "127.0.0.1:1")
        .with_body(serde_json::to_vec(&body.topic_config_serialize_wrapper.data_version).unwrap());
    let resp = call(conn, req).await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    resp.field("changed") == Some("true")
}

#[tokio::test]
async fn the_name_server_adds_what_a_body_carries_and_replaces_only_from_a_whole_table() {
    let (_ns_proc, ns) = logging_namesrv();
    // The stand-in broker's registrations ride one connection (closing it unregisters).
    let conn = connect(&ns).await;
    // Apache's split registration: chunks, unmarked, each adding to the others.
    register(&conn, None, &table(&["s-1", "s-2"], 1)).await;
    register(&conn, None, &table(&["s-3"], 1)).await;
    for t in ["s-1", "s-2", "s-3"] {
        assert!(route(&ns, t).await.is_some(), "{t}");
    }
    // A FerroMQ whole table drops what it does not carry.
    let whole = table(&["s-1", "s-4"], 2);
    register(&conn, Some(true), &whole).await;
    assert!(route(&ns, "s-2").await.is_none() && route(&ns, "s-3").await.is_none());
    assert!(route(&ns, "s-4").await.is_some());
    assert!(!version_changed(&conn, &whole).await);
    // An increment adds, and records its version as Apache's registrations do.
    let increment = table(&["s-5"], 3);
    register(&conn, Some(false), &increment).await;
    assert!(route(&ns, "s-5").await.is_some() && route(&ns, "s-1").await.is_some());
    assert!(!version_changed(&conn, &increment).await);
    // The whole table of that version puts back a route deleted at the name server.
    let delete = RemotingCommand::request(216).with_field("topic", "s-4");
    assert_eq!(call(&conn, delete).await.code, 0);
    assert!(route(&ns, "s-4").await.is_none());
    register(&conn, Some(true), &table(&["s-1", "s-4", "s-5"], 3)).await;
    assert!(route(&ns, "s-4").await.is_some());
    assert!(route(&ns, "s-5").await.is_some());
    // Whatever its version, a whole table drops a topic the broker no longer has.
    register(&conn, Some(true), &table(&["s-1", "s-5"], 3)).await;
    assert!(route(&ns, "s-4").await.is_none());
}

#[tokio::test]
async fn without_force_register_the_periodic_registration_asks_before_sending() {
    let (ns_proc, ns) = logging_namesrv();
    let dir = tempfile::tempdir().unwrap();
    let (_broker, _addr) = broker(
        dir.path(),
        "lazy",
        &format!(
            "brokerName=broker-lazy\nnamesrvAddr={ns}\nforceRegister=false\nregisterNameServerPeriod=10000\n"
        ),
    );
    // The first table (at start) carries the auto-creation template, TBW102; no topic
    // changes after it, so the name server's copy stays current.
    within(
        Duration::from_secs(10),
        "the first registration",
        async || route(&ns, "TBW102").await.is_some(),
    )
    .await;
    let delete = RemotingCommand::request(216).with_field("topic", "TBW102");
    assert_eq!(call(&connect(&ns).await, delete).await.code, 0);
    let wholes = count(&ns_proc.logs(), WHOLE);
    within(
        Duration::from_secs(25),
        "the periodic QUERY_DATA_VERSION",
        async || {
            ns_proc
                .logs()
                .lines()
                .any(|l| l.contains("data version queried") && l.contains("changed=false"))
        },
    )
    .await;
    // Unchanged: no table was sent, so the route deleted at the name server stays deleted
    // (Apache's behaviour), and the broker stays alive there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&ns_proc.logs(), WHOLE), wholes, "{}", ns_proc.logs());
    assert!(route(&ns, "TBW102").await.is_none());
    let info = call(&connect(&ns).await, RemotingCommand::request(106)).await;
    assert!(String::from_utf8_lossy(&info.body).contains("broker-lazy"));
}
