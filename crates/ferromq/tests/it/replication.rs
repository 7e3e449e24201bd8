//! Master and slave processes replicating the commit log over Apache's classic HA stream.

use std::time::{Duration, Instant};

use ferromq_protocol::RemotingCommand;

use crate::cluster::{broker, namesrv};
use crate::harness::{call, connect, free_port, pull_request, queue0_bodies, send_request};

async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn send_to_queue_0(topic: &str, body: &[u8]) -> RemotingCommand {
    send_request(topic, body, "WAIT\u{1}true\u{2}")
}

/// A SYNC_MASTER answers SLAVE_NOT_AVAILABLE (the message stored) while no slave follows
/// it, then SEND_OK only once its slave holds the message; the slave serves every
/// acknowledged message, with the master's message ids, after the master is killed.
#[tokio::test]
async fn a_sync_master_answers_once_its_slave_holds_the_message() {
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let (mut master_proc, master_addr) = broker(
        dir.path(),
        "master",
        &format!(
            "brokerName=broker-h\nbrokerRole=SYNC_MASTER\nhaListenPort={ha_port}\nnamesrvAddr={ns}\n"
        ),
    );
    let master = connect(&master_addr).await;
    let alone = call(&master, send_to_queue_0("ha", b"before the slave")).await;
    assert_eq!(alone.code, 11, "SLAVE_NOT_AVAILABLE: {:?}", alone.remark);
    assert!(
        alone.field("msgId").is_some(),
        "the message is stored all the same"
    );

    let (_slave_proc, slave_addr) = broker(
        dir.path(),
        "slave",
        &format!("brokerName=broker-h\nbrokerId=1\nbrokerRole=SLAVE\nnamesrvAddr={ns}\n"),
    );
    // The slave learns the master's HA address when it registers, then connects.
    let mut first_ok = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while first_ok.is_none() && Instant::now() < deadline {
        let r = call(&master, send_to_queue_0("ha", b"until replicated")).await;
        match r.code {
            0 => first_ok = r.field("msgId").map(str::to_string),
            11 | 12 => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected answer {other}: {:?}", r.remark),
        }
    }
    let mut ids = vec![first_ok.expect("SEND_OK within 30 s of the slave starting")];
    for i in 0..50 {
        let r = call(&master, send_to_queue_0("ha", format!("m{i}").as_bytes())).await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
        ids.push(r.field("msgId").unwrap().to_string());
    }
    let expected = queue0_bodies(&master, "ha").await;
    assert!(
        expected.len() >= 52,
        "every send was stored, whatever its answer"
    );
    assert_eq!(expected.last().unwrap(), b"m49");

    master_proc.kill();
    let slave = connect(&slave_addr).await;
    // The slave knows the topic once it has copied the master's topic table.
    until(
        "the slave serves the topic",
        Duration::from_secs(30),
        || {
            let slave = slave.clone();
            async move { call(&slave, pull_request("ha", 0, 0, 0)).await.code == 0 }
        },
    )
    .await;
    assert_eq!(
        queue0_bodies(&slave, "ha").await,
        expected,
        "every stored message is on the slave"
    );
    for id in ids.iter().rev().take(3) {
        let viewed = call(
            &slave,
            RemotingCommand::request(33).with_field(
                "offset",
                ferromq_protocol::message::decode_offset_msg_id(id)
                    .unwrap()
                    .1,
            ),
        )
        .await;
        assert_eq!(
            viewed.code, 0,
            "the slave finds {id} by its master-given id"
        );
    }
}

/// An ASYNC_MASTER answers at once; a slave started later copies the whole log, including
/// what was written before it existed, and follows live appends.
#[tokio::test]
async fn a_late_slave_copies_the_whole_log_and_follows() {
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let (_master_proc, master_addr) = broker(
        dir.path(),
        "master",
        &format!("brokerName=broker-l\nhaListenPort={ha_port}\nnamesrvAddr={ns}\n"),
    );
    let master = connect(&master_addr).await;
    for i in 0..200 {
        let r = call(
            &master,
            send_to_queue_0("late", format!("early {i}").as_bytes()),
        )
        .await;
        assert_eq!(
            r.code, 0,
            "ASYNC_MASTER answers without a slave: {:?}",
            r.remark
        );
    }
    let (_slave_proc, slave_addr) = broker(
        dir.path(),
        "slave",
        &format!(
            "brokerName=broker-l\nbrokerId=1\nbrokerRole=SLAVE\nhaMasterAddress=127.0.0.1:{ha_port}\nnamesrvAddr={ns}\n"
        ),
    );
    for i in 0..20 {
        let r = call(
            &master,
            send_to_queue_0("late", format!("live {i}").as_bytes()),
        )
        .await;
        assert_eq!(r.code, 0);
    }
    let expected = queue0_bodies(&master, "late").await;
    assert_eq!(expected.len(), 220);
    let slave = connect(&slave_addr).await;
    until(
        "the slave holds everything",
        Duration::from_secs(30),
        || {
            let slave = slave.clone();
            let expected = expected.clone();
            async move { queue0_bodies(&slave, "late").await == expected }
        },
    )
    .await;
}
