//! Master and slave processes replicating the commit log over Apache's classic HA stream.

use std::time::{Duration, Instant};

use ferromq_protocol::RemotingCommand;

use crate::cluster::{broker, broker_at, master_conf, namesrv, slave_conf};
use crate::harness::{
    call, commit_request, connect, free_port, pull_request, queue0_bodies, send_request,
};

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
        &master_conf("broker-h", &ns, ha_port, "brokerRole=SYNC_MASTER\n"),
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
        &master_conf("broker-l", &ns, ha_port, ""),
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
        &slave_conf("broker-l", &ns, ha_port, ""),
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

fn query_offset(topic: &str, queue: i32) -> RemotingCommand {
    RemotingCommand::request(14)
        .with_field("consumerGroup", "CG")
        .with_field("topic", topic)
        .with_field("queueId", queue)
}

async fn committed(conn: &ferromq_remoting::Connection, topic: &str, queue: i32) -> Option<i64> {
    let r = call(conn, query_offset(topic, queue)).await;
    (r.code == 0).then(|| r.field("offset").unwrap().parse().unwrap())
}

/// While the master is away its slave serves reads and takes the consumers' commits, by the
/// pull's commit flag (the Go client's only way then) and by UPDATE_CONSUMER_OFFSET; when
/// the master returns the slave hands those commits over, and the master's older copy does
/// not overwrite them on the slave meanwhile.
#[tokio::test]
async fn a_slave_serves_reads_while_its_master_is_away_and_hands_back_the_offsets() {
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let conf = master_conf("broker-r", &ns, ha_port, "");
    let master_addr = format!("127.0.0.1:{}", free_port());
    let mut master_proc = broker_at(dir.path(), "master", &conf, &master_addr);
    let (_slave_proc, slave_addr) = broker(
        dir.path(),
        "slave",
        &slave_conf("broker-r", &ns, ha_port, ""),
    );
    let master = connect(&master_addr).await;
    for i in 0..20 {
        let r = call(&master, send_to_queue_0("away", format!("m{i}").as_bytes())).await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    assert_eq!(
        call(&master, commit_request("CG", "away", 0, 5)).await.code,
        0
    );
    let slave = connect(&slave_addr).await;
    until(
        "the slave holds the messages and the master's offsets",
        Duration::from_secs(30),
        || {
            let slave = slave.clone();
            async move {
                queue0_bodies(&slave, "away").await.len() == 20
                    && committed(&slave, "away", 0).await == Some(5)
            }
        },
    )
    .await;

    master_proc.kill();
    let pull = pull_request("away", 0, 12, 0)
        .with_field("sysFlag", 1)
        .with_field("commitOffset", 12);
    let r = call(&slave, pull).await;
    assert_eq!(r.code, 0, "the slave serves reads: {:?}", r.remark);
    let bodies: Vec<_> = ferromq_protocol::message::MessageExt::decode_all(&r.body)
        .unwrap()
        .into_iter()
        .map(|m| m.body.to_vec())
        .collect();
    assert_eq!(bodies.first().map(Vec::as_slice), Some(&b"m12"[..]));
    assert_eq!(bodies.len(), 8);
    assert_eq!(
        r.field("suggestWhichBrokerId"),
        Some("0"),
        "a slave sends clients back to the master"
    );
    assert_eq!(
        call(&slave, commit_request("CG", "away", 1, 3)).await.code,
        0
    );
    assert_eq!(committed(&slave, "away", 0).await, Some(12));

    // mqadmin-style reads of the topic go to the slave too (Apache's pull consumer falls
    // back to a slave), once the name server has seen the master's connection close
    until(
        "admin consumeMessage reads all 20 from the slave",
        Duration::from_secs(30),
        || {
            let ns = ns.clone();
            async move {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferromq"))
                    .args(["admin", "consumeMessage", "-n", &ns, "-t", "away"])
                    .args(["--json", "--seconds", "5", "--log-level", "error"])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                out.status.success() && (0..20).all(|i| text.contains(&format!("\"m{i}\"")))
            }
        },
    )
    .await;

    let _master_proc = broker_at(dir.path(), "master", &conf, &master_addr);
    let master = connect(&master_addr).await;
    until(
        "the returned master holds the commits taken while it was away",
        Duration::from_secs(30),
        || {
            let master = master.clone();
            async move {
                committed(&master, "away", 0).await == Some(12)
                    && committed(&master, "away", 1).await == Some(3)
            }
        },
    )
    .await;
    // A later copy from the master must not take the slave back to the old offset.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(committed(&slave, "away", 0).await, Some(12));
}

/// With `slaveReadEnable`, a master sends a consumer reading further behind than
/// `accessMessageInMemoryMaxRatio` of memory to `whichBrokerWhenConsumeSlowly` (1); one
/// keeping up stays on the master; without it, every answer names the master.
#[tokio::test]
async fn a_master_with_slave_reads_sends_lagging_consumers_to_the_slave() {
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let (_master_proc, master_addr) = broker(
        dir.path(),
        "master",
        &format!(
            "brokerName=broker-s\nslaveReadEnable=true\naccessMessageInMemoryMaxRatio=0\nnamesrvAddr={ns}\n"
        ),
    );
    let master = connect(&master_addr).await;
    for i in 0..5 {
        let r = call(&master, send_to_queue_0("lag", format!("m{i}").as_bytes())).await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    let suggestion = |conn: ferromq_remoting::Connection| async move {
        let r = call(&conn, pull_request("lag", 0, 0, 0)).await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
        r.field("suggestWhichBrokerId").unwrap().to_string()
    };
    assert_eq!(
        suggestion(master.clone()).await,
        "1",
        "behind by more than 0% of memory"
    );
    let set = |body: &'static str| RemotingCommand::request(25).with_body(body.as_bytes().to_vec());
    assert_eq!(
        call(&master, set("accessMessageInMemoryMaxRatio=40"))
            .await
            .code,
        0
    );
    assert_eq!(
        suggestion(master.clone()).await,
        "0",
        "a consumer keeping up stays"
    );
    assert_eq!(
        call(
            &master,
            set("accessMessageInMemoryMaxRatio=0\nslaveReadEnable=false")
        )
        .await
        .code,
        0
    );
    assert_eq!(
        suggestion(master.clone()).await,
        "0",
        "no slave reads: always the master"
    );
}

/// A slave hands back offsets with `onlyIfAhead`: the master never moves an offset back
/// for it (a consumer may have committed there since); a plain commit still does.
#[tokio::test]
async fn a_hand_back_never_moves_the_masters_offset_back() {
    let server = crate::harness::Server::start("");
    let master = connect(&server.broker).await;
    assert_eq!(
        call(&master, commit_request("CG", "back", 0, 50))
            .await
            .code,
        0
    );
    let behind = commit_request("CG", "back", 0, 40).with_field("onlyIfAhead", "true");
    assert_eq!(call(&master, behind).await.code, 0);
    assert_eq!(committed(&master, "back", 0).await, Some(50));
    let ahead = commit_request("CG", "back", 0, 60).with_field("onlyIfAhead", "true");
    assert_eq!(call(&master, ahead).await.code, 0);
    assert_eq!(committed(&master, "back", 0).await, Some(60));
    assert_eq!(
        call(&master, commit_request("CG", "back", 0, 10))
            .await
            .code,
        0
    );
    assert_eq!(
        committed(&master, "back", 0).await,
        Some(10),
        "a reset still goes back"
    );
}
