//! Separate name-server and broker processes.

use ferromq_protocol::body::{ClusterInfo, TopicRouteData};
use ferromq_protocol::RemotingCommand;

use crate::harness::{call, connect, free_port, send_request, Proc};

fn namesrv() -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    (
        Proc::spawn(&["namesrv".into(), "--listen".into(), addr.clone()]),
        addr,
    )
}

#[tokio::test]
async fn broker_registers_with_every_name_server_and_unregisters_on_shutdown() {
    let (_ns1, a) = namesrv();
    let (_ns2, b) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker.conf");
    std::fs::write(
        &conf,
        format!("brokerName=broker-x\nbrokerClusterName=ClusterX\nnamesrvAddr={a};{b}\n"),
    )
    .unwrap();
    let port = free_port();
    let mut broker = Proc::spawn(&[
        "broker".into(),
        "-c".into(),
        conf.display().to_string(),
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ]);
    let conn = connect(&format!("127.0.0.1:{port}")).await;
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
        assert_eq!(
            route.broker_datas[0].broker_addrs[&0],
            format!("127.0.0.1:{port}")
        );
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
