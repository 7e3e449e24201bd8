//! Separate name-server and broker processes.

use ferromq_protocol::body::{ClusterInfo, TopicRouteData};
use ferromq_protocol::RemotingCommand;

use crate::harness::{call, commit_request, connect, free_port, send_request, Proc};

pub fn namesrv() -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    (
        Proc::spawn(&["namesrv".into(), "--listen".into(), addr.clone()]),
        addr,
    )
}

/// `ferromq broker` with these broker.conf lines on a free port, its files under `dir/name`.
pub fn broker(dir: &std::path::Path, name: &str, conf: &str) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    (broker_at(dir, name, conf, &addr), addr)
}

/// broker.conf of a master of `broker_name` taking slaves on `ha_port`, plus `extra` lines.
pub fn master_conf(broker_name: &str, ns: &str, ha_port: u16, extra: &str) -> String {
    format!("brokerName={broker_name}\nhaListenPort={ha_port}\nnamesrvAddr={ns}\n{extra}")
}

/// broker.conf of slave 1 of `broker_name`, copying from the master's `ha_port`, plus
/// `extra` lines.
pub fn slave_conf(broker_name: &str, ns: &str, ha_port: u16, extra: &str) -> String {
    format!(
        "brokerName={broker_name}\nbrokerId=1\nbrokerRole=SLAVE\nhaMasterAddress=127.0.0.1:{ha_port}\nnamesrvAddr={ns}\n{extra}"
    )
}

/// A broker on `addr` with its data in `dir/name`: a restart of the same broker.
pub fn broker_at(dir: &std::path::Path, name: &str, conf: &str, addr: &str) -> Proc {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf).unwrap();
    Proc::spawn(&[
        "broker".into(),
        "-c".into(),
        path.display().to_string(),
        "--data-dir".into(),
        dir.join(name).display().to_string(),
        "--listen".into(),
        addr.to_string(),
    ])
}

#[tokio::test]
async fn broker_registers_with_every_name_server_and_unregisters_on_shutdown() {
    let (_ns1, a) = namesrv();
    let (_ns2, b) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, addr) = broker(
        dir.path(),
        "broker",
        &format!("brokerName=broker-x\nbrokerClusterName=ClusterX\nnamesrvAddr={a};{b}\n"),
    );
    let conn = connect(&addr).await;
    assert_eq!(call(&conn, send_request("multi", b"x", "")).await.code, 0);
    for ns in [&a, &b] {
        let c = connect(ns).await;
        let route = call(
            &c,
            RemotingCommand::request(105).with_field("topic", "multi"),
        )
        .await;
        assert_eq!(route.code, 0, "{ns}: {:?}", route.remark);
        let route: TopicRouteData = serde_json::from_slice(&route.body).unwrap();
        assert_eq!(route.broker_datas[0].broker_addrs[&0], addr);
        let info = call(&c, RemotingCommand::request(106)).await;
        let info: ClusterInfo = serde_json::from_slice(&info.body).unwrap();
        assert_eq!(
            info.cluster_addr_table["ClusterX"],
            vec!["broker-x".to_string()]
        );
    }
    broker.terminate();
    for ns in [&a, &b] {
        let c = connect(ns).await;
        let route = call(
            &c,
            RemotingCommand::request(105).with_field("topic", "multi"),
        )
        .await;
        assert_eq!(route.code, 17, "{ns} still routes to a stopped broker");
    }
}

#[test]
fn broker_without_a_name_server_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferromq"))
        .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("namesrvAddr"));
}

/// A slave (brokerId 1, brokerRole=SLAVE) learns its master from the name server and copies
/// its topics, consumer offsets and subscription groups, as Apache's `SlaveSynchronize`;
/// it refuses sends, which belong to the master.
#[tokio::test]
async fn slave_copies_its_masters_metadata_and_refuses_sends() {
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let (_master, master_addr) = broker(
        dir.path(),
        "master",
        &format!("brokerName=broker-r\nnamesrvAddr={ns}\n"),
    );
    let (_slave, slave_addr) = broker(
        dir.path(),
        "slave",
        &format!("brokerName=broker-r\nbrokerId=1\nbrokerRole=SLAVE\nnamesrvAddr={ns}\n"),
    );
    let master = connect(&master_addr).await;
    let create = RemotingCommand::request(17)
        .with_field("topic", "replicated")
        .with_field("readQueueNums", "3")
        .with_field("writeQueueNums", "3")
        .with_field("perm", "6");
    assert_eq!(call(&master, create).await.code, 0);
    let group = RemotingCommand::request(200)
        .with_body(r#"{"groupName":"rg","retryMaxTimes":5}"#.as_bytes().to_vec());
    assert_eq!(call(&master, group).await.code, 0);
    let commit = commit_request("rg", "replicated", 2, 7);
    assert_eq!(call(&master, commit).await.code, 0);

    let slave = connect(&slave_addr).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (mut topics, mut offset, mut groups) = (String::new(), None, String::new());
    // Bounded: the slave copies every 10 s, and retries every second until it knows its master.
    while std::time::Instant::now() < deadline {
        topics = String::from_utf8_lossy(&call(&slave, RemotingCommand::request(21)).await.body)
            .into_owned();
        let q = call(
            &slave,
            RemotingCommand::request(14)
                .with_field("consumerGroup", "rg")
                .with_field("topic", "replicated")
                .with_field("queueId", "2"),
        )
        .await;
        offset = (q.code == 0)
            .then(|| q.field("offset").map(str::to_string))
            .flatten();
        groups = String::from_utf8_lossy(&call(&slave, RemotingCommand::request(201)).await.body)
            .into_owned();
        let copied = |text: &str, pointer: &str, want: i64| {
            serde_json::from_str::<serde_json::Value>(text)
                .is_ok_and(|v| v.pointer(pointer).and_then(|x| x.as_i64()) == Some(want))
        };
        if copied(&topics, "/topicConfigTable/replicated/writeQueueNums", 3)
            && offset.as_deref() == Some("7")
            && copied(&groups, "/subscriptionGroupTable/rg/retryMaxTimes", 5)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let topics: serde_json::Value = serde_json::from_str(&topics).unwrap();
    assert_eq!(
        topics["topicConfigTable"]["replicated"]["writeQueueNums"], 3,
        "the slave has the master's topic: {topics}"
    );
    assert_eq!(
        offset.as_deref(),
        Some("7"),
        "the slave has the master's offset"
    );
    let groups: serde_json::Value = serde_json::from_str(&groups).unwrap();
    assert_eq!(groups["subscriptionGroupTable"]["rg"]["retryMaxTimes"], 5);

    let sent = call(&slave, send_request("replicated", b"x", "")).await;
    assert_eq!(sent.code, 14, "{:?}", sent.remark);
    assert!(sent.remark.unwrap().contains("slave"));

    // The name server lists both under the broker name; routes go to the master.
    let c = connect(&ns).await;
    let route = call(
        &c,
        RemotingCommand::request(105).with_field("topic", "replicated"),
    )
    .await;
    let route: TopicRouteData = serde_json::from_slice(&route.body).unwrap();
    let addrs = &route.broker_datas[0].broker_addrs;
    assert_eq!(addrs[&0], master_addr);
    assert_eq!(addrs[&1], slave_addr);
    // GET_BROKER_MEMBER_GROUP (901): the group's members by id.
    let members = call(
        &c,
        RemotingCommand::request(901)
            .with_field("clusterName", "DefaultCluster")
            .with_field("brokerName", "broker-r"),
    )
    .await;
    assert_eq!(members.code, 0, "{:?}", members.remark);
    let members: serde_json::Value = serde_json::from_slice(&members.body).unwrap();
    assert_eq!(
        members["brokerMemberGroup"]["brokerAddrs"],
        serde_json::json!({"0": master_addr, "1": slave_addr}),
        "{members}"
    );
}

/// A "master" that answers every request with success and a body that is not JSON.
struct GarbageMaster;

impl ferromq_remoting::InboundHandler for GarbageMaster {
    async fn on_request(
        &self,
        _conn: ferromq_remoting::Connection,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        Some(RemotingCommand::response_to(&req, 0).with_body(b"\x00{not json".to_vec()))
    }
}

/// A slave whose master answers garbage says so in its log, keeps serving, and copies nothing.
#[tokio::test]
async fn slave_survives_a_master_that_answers_garbage() {
    let (_ns, ns) = namesrv();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = listener.local_addr().unwrap().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ferromq_remoting::serve(
        listener,
        std::sync::Arc::new(GarbageMaster),
        Default::default(),
        stop.clone(),
    ));
    // Register the fake as broker-g's master, so the name server points the slave at it.
    let c = connect(&ns).await;
    let body = r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{},"dataVersion":{"timestamp":1,"counter":1}}}"#;
    let register = RemotingCommand::request(103)
        .with_field("brokerName", "broker-g")
        .with_field("brokerAddr", &fake_addr)
        .with_field("clusterName", "DefaultCluster")
        .with_field("brokerId", "0")
        .with_body(body.as_bytes().to_vec());
    assert_eq!(call(&c, register).await.code, 0);

    let dir = tempfile::tempdir().unwrap();
    let (slave_proc, slave_addr) = broker(
        dir.path(),
        "slave",
        &format!("brokerName=broker-g\nbrokerId=1\nbrokerRole=SLAVE\nnamesrvAddr={ns}\n"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !slave_proc.logs().contains("bad body") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logs = slave_proc.logs();
    assert!(
        logs.contains("copying the master's metadata failed") && logs.contains(&fake_addr),
        "{logs}"
    );
    // Still serving, and it took nothing from the garbage.
    let slave = connect(&slave_addr).await;
    let topics = call(&slave, RemotingCommand::request(21)).await;
    assert_eq!(topics.code, 0);
    let topics: serde_json::Value = serde_json::from_slice(&topics.body).unwrap();
    assert!(topics["topicConfigTable"]["TBW102"].is_object());
    stop.cancel();
}
