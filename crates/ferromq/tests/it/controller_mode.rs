//! Brokers in controller mode: three brokers of one group, a controller and a name server,
//! all processes. The controller makes one master; sends wait until every in-sync slave
//! holds them (`allAckInSyncStateSet`); SIGKILL of the master brings an in-sync slave up
//! with every acknowledged message, and the old master, restarted, follows it.

use std::time::{Duration, Instant};

use ferromq_protocol::RemotingCommand;

use crate::cluster::{broker, namesrv};
use crate::harness::{call, connect, free_port, pull_request, queue0_bodies, send_request, Proc};

struct Member {
    name: String,
    proc: Proc,
    addr: String,
}

fn start_member(dir: &std::path::Path, name: &str, ns: &str, ctl: &str) -> Member {
    start_member_with(dir, name, ns, ctl, "")
}

fn start_member_with(
    dir: &std::path::Path,
    name: &str,
    ns: &str,
    ctl: &str,
    extra_conf: &str,
) -> Member {
    // brokerRole=SLAVE and brokerId=-1 as in Apache's quick-start files: ignored in
    // controller mode, where any broker may become master.
    let conf = format!(
        "brokerName=group-f\nbrokerRole=SLAVE\nbrokerId=-1\nenableControllerMode=true\ncontrollerAddr={ctl}\nnamesrvAddr={ns}\nallAckInSyncStateSet=true\nhaListenPort={}\nsyncBrokerMetadataPeriod=1000\ncontrollerHeartBeatTimeoutMills=3000\n{extra_conf}",
        free_port()
    );
    let (proc, addr) = broker(dir, name, &conf);
    Member {
        name: name.into(),
        proc,
        addr,
    }
}

/// The controller's view of the group: (master address, master epoch, in-sync ids).
async fn group(ctl: &str) -> Option<(String, i64, Vec<i64>)> {
    let c = connect(ctl).await;
    let info = call(
        &c,
        RemotingCommand::request(1004).with_field("brokerName", "group-f"),
    )
    .await;
    if info.code != 0 {
        return None;
    }
    let master = info.field("masterAddress")?.to_string();
    let epoch = info.field("masterEpoch")?.parse().ok()?;
    let set: serde_json::Value = serde_json::from_slice(&info.body).ok()?;
    let ids = set["syncStateSet"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_i64())
        .collect();
    Some((master, epoch, ids))
}

async fn wait_group(
    ctl: &str,
    what: &str,
    f: impl Fn(&(String, i64, Vec<i64>)) -> bool,
) -> (String, i64, Vec<i64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        last = group(ctl).await;
        if let Some(g) = last.as_ref().filter(|g| f(g)) {
            return g.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}; the group is {last:?}");
}

async fn bodies(addr: &str, topic: &str) -> Vec<Vec<u8>> {
    queue0_bodies(&connect(addr).await, topic).await
}

fn start_controller(dir: &std::path::Path) -> (Proc, String) {
    let ctl = format!("127.0.0.1:{}", free_port());
    let conf = dir.join("controller.conf");
    std::fs::write(
        &conf,
        format!(
            "controllerDLegerPeers=n0-{ctl}\ncontrollerDLegerSelfId=n0\ncontrollerStorePath={}\nscanInactiveMasterInterval=500\n",
            dir.join("ctl").display()
        ),
    )
    .unwrap();
    let proc = Proc::spawn(&["controller".into(), "-c".into(), conf.display().to_string()]);
    (proc, ctl)
}

/// A master paused (SIGSTOP) past the heartbeat timeout is replaced; resumed, it takes no
/// write (its lease with the controllers ran out), steps down, and follows the new master.
#[tokio::test]
async fn a_paused_master_is_replaced_and_steps_down_without_writing_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (_ns, ns) = namesrv();
    let (_controller, ctl) = start_controller(dir.path());
    let members: Vec<Member> = ["p1", "p2", "p3"]
        .iter()
        .map(|n| start_member(dir.path(), n, &ns, &ctl))
        .collect();
    let (master, epoch, _) = wait_group(&ctl, "all three in sync", |g| g.2.len() == 3).await;
    let old = members.iter().find(|m| m.addr == master).unwrap();
    let old_conn = connect(&master).await;
    let create = RemotingCommand::request(17)
        .with_field("topic", "ha-p")
        .with_field("readQueueNums", 1)
        .with_field("writeQueueNums", 1)
        .with_field("perm", 6);
    assert_eq!(call(&old_conn, create).await.code, 0);
    for i in 0..20 {
        let r = call(
            &old_conn,
            send_request(
                "ha-p",
                format!("before {i}").as_bytes(),
                "WAIT\u{1}true\u{2}",
            ),
        )
        .await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    old.proc.signal("STOP");
    let (new_master, _, _) =
        wait_group(&ctl, "a new master", |g| g.0 != master && g.1 > epoch).await;
    let new_conn = connect(&new_master).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(
        &new_conn,
        send_request("ha-p", b"on the new master", "WAIT\u{1}true\u{2}"),
    )
    .await
    .code
        != 0
    {
        assert!(Instant::now() < deadline, "the new master takes no writes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    old.proc.signal("CONT");
    // The resumed old master must not take a write, whatever it has yet learned.
    for _ in 0..20 {
        let r = call(
            &old_conn,
            send_request("ha-p", b"to the old master", "WAIT\u{1}true\u{2}"),
        )
        .await;
        // 14: refused before storing (lease out, or already a slave); 12 would mean stored
        // and left unreplicated.
        assert_eq!(
            r.code, 14,
            "the resumed old master took a write: {:?}",
            r.remark
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = bodies(&new_master, "ha-p").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while bodies(&master, "ha-p").await != expected {
        assert!(
            Instant::now() < deadline,
            "the old master did not follow the new one"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(expected.iter().all(|b| b != b"to the old master"));
}

#[tokio::test]
async fn a_killed_master_is_replaced_by_an_in_sync_slave_that_has_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_ns, ns) = namesrv();
    let (_controller, ctl) = start_controller(dir.path());
    let mut members: Vec<Member> = ["b1", "b2", "b3"]
        .iter()
        .map(|n| start_member(dir.path(), n, &ns, &ctl))
        .collect();

    let (master, epoch, _) = wait_group(&ctl, "all three in sync", |g| g.2.len() == 3).await;
    let master_conn = connect(&master).await;
    let create = RemotingCommand::request(17)
        .with_field("topic", "ha-f")
        .with_field("readQueueNums", 1)
        .with_field("writeQueueNums", 1)
        .with_field("perm", 6);
    assert_eq!(call(&master_conn, create).await.code, 0);
    let mut acknowledged = Vec::new();
    for i in 0..100 {
        let body = format!("m{i}");
        let r = call(
            &master_conn,
            send_request("ha-f", body.as_bytes(), "WAIT\u{1}true\u{2}"),
        )
        .await;
        assert_eq!(r.code, 0, "send {i}: {:?}", r.remark);
        acknowledged.push(body.into_bytes());
    }
    // A slave refuses sends: they belong to the master.
    let slave = members.iter().find(|m| m.addr != master).unwrap();
    let refused = call(&connect(&slave.addr).await, send_request("ha-f", b"x", "")).await;
    assert_eq!(refused.code, 14, "{:?}", refused.remark);

    // A topic created by its first send moments before the master dies: its messages
    // reach the slaves by replication, its config (copied every 10 s) does not.
    let young = call(
        &master_conn,
        send_request("ha-young", b"just created", "WAIT\u{1}true\u{2}"),
    )
    .await;
    assert_eq!(young.code, 0, "{:?}", young.remark);

    let old = members.iter().position(|m| m.addr == master).unwrap();
    let killed_at = Instant::now();
    members[old].proc.kill();
    let (new_master, new_epoch, set) =
        wait_group(&ctl, "a new master", |g| g.0 != master && g.1 > epoch).await;
    let elected_in = killed_at.elapsed();
    assert_eq!(set.len(), 1, "an election resets the in-sync set");
    let new_conn = connect(&new_master).await;
    // The new master takes writes (once it has started its epoch and knows it leads).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call(
            &new_conn,
            send_request("ha-f", b"after failover", "WAIT\u{1}true\u{2}"),
        )
        .await;
        if r.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new master refuses sends: {} {:?}",
            r.code,
            r.remark
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "failover: new master elected {elected_in:?} after the kill, first send at {:?}",
        killed_at.elapsed()
    );
    let held = bodies(&new_master, "ha-f").await;
    for m in &acknowledged {
        assert!(
            held.contains(m),
            "acknowledged message {:?} lost",
            String::from_utf8_lossy(m)
        );
    }
    assert_eq!(held.last().unwrap(), b"after failover");
    assert_eq!(
        bodies(&new_master, "ha-young").await,
        vec![b"just created".to_vec()],
        "the new master serves the topic created just before the failover"
    );

    // The old master comes back, follows the new one, and catches up.
    let old_name = members[old].name.clone();
    let restarted = start_member(dir.path(), &old_name, &ns, &ctl);
    wait_group(&ctl, "the old master back in sync", |g| {
        g.0 == new_master && g.2.len() == 3 && g.1 == new_epoch
    })
    .await;
    let expected = bodies(&new_master, "ha-f").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while bodies(&restarted.addr, "ha-f").await != expected {
        assert!(Instant::now() < deadline, "the old master did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = call(
        &connect(&restarted.addr).await,
        send_request("ha-f", b"x", ""),
    )
    .await;
    assert_eq!(refused.code, 14, "the old master is a slave now");

    // `ferromq admin`: the group as the controllers see it, the brokers' replication, and
    // handing the master role over by hand.
    let sets = admin(&["getSyncStateSet", "-a", &ctl, "-b", "group-f", "--json"]);
    let group_info = &sets["replicasInfoTable"]["group-f"];
    assert_eq!(group_info["masterAddress"], new_master.as_str(), "{sets}");
    let in_sync = group_info["inSyncReplicas"].as_array().unwrap();
    assert_eq!(in_sync.len(), 3, "{sets}");
    let ha = admin(&["-n", &ns, "haStatus", "-b", &new_master, "--json"]);
    let slaves = ha[0]["status"]["haConnectionInfo"].as_array().unwrap();
    assert_eq!(slaves.len(), 2, "{ha}");
    assert!(slaves.iter().all(|s| s["inSync"] == true), "{ha}");
    let target = in_sync
        .iter()
        .find(|r| r["brokerAddress"] != new_master.as_str())
        .unwrap();
    let target_id = target["brokerId"].as_i64().unwrap().to_string();
    let target_addr = target["brokerAddress"].as_str().unwrap().to_string();
    let elected = admin(&[
        "electMaster",
        "-a",
        &ctl,
        "-c",
        "DefaultCluster",
        "-bn",
        "group-f",
        "-b",
        &target_id,
        "--json",
    ]);
    assert_eq!(elected["masterAddress"], target_addr.as_str(), "{elected}");
    let target_conn = connect(&target_addr).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call(
            &target_conn,
            send_request("ha-f", b"after handover", "WAIT\u{1}true\u{2}"),
        )
        .await;
        if r.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the designated master refuses sends: {} {:?}",
            r.code,
            r.remark
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = bodies(&target_addr, "ha-f").await;
    assert_eq!(
        &held[..expected.len()],
        &expected[..],
        "nothing lost in the handover"
    );
    assert_eq!(held.last().unwrap(), b"after handover");
}

fn admin(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferromq"))
        .arg("admin")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ferromq admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A group of two whose slave was paused (SIGSTOP) before a send, which the master stored
/// but could not confirm: what its queue showed then, and the processes (the caller
/// resumes the slave).
struct PausedSlave {
    _controller: Proc,
    _ns: Proc,
    members: Vec<Member>,
    master: String,
    confirmed: Vec<Vec<u8>>,
    seen_while_paused: Vec<Vec<u8>>,
    _dir: tempfile::TempDir,
}

async fn send_while_the_slave_is_paused(extra_conf: &str) -> PausedSlave {
    let dir = tempfile::tempdir().unwrap();
    let (ns_proc, ns) = namesrv();
    let (controller, ctl) = start_controller(dir.path());
    // The paused slave must stay in the set for the whole check.
    let conf = format!("haMaxTimeSlaveNotCatchup=120000\n{extra_conf}");
    let members: Vec<Member> = ["c1", "c2"]
        .iter()
        .map(|n| start_member_with(dir.path(), n, &ns, &ctl, &conf))
        .collect();
    let (master, _, _) = wait_group(&ctl, "both in sync", |g| g.2.len() == 2).await;
    let slave = members.iter().find(|m| m.addr != master).unwrap();
    let conn = connect(&master).await;
    let create = RemotingCommand::request(17)
        .with_field("topic", "confirm")
        .with_field("readQueueNums", 1)
        .with_field("writeQueueNums", 1)
        .with_field("perm", 6);
    assert_eq!(call(&conn, create).await.code, 0);
    for i in 0..5 {
        let r = call(
            &conn,
            send_request("confirm", format!("m{i}").as_bytes(), "WAIT\u{1}true\u{2}"),
        )
        .await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    // A send is answered once the master holds it; it becomes readable once the in-sync
    // slave holds it too, which may take a moment more (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut confirmed = bodies(&master, "confirm").await;
    while confirmed.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "the master never showed the 5 acknowledged messages: {}",
            confirmed.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        confirmed = bodies(&master, "confirm").await;
    }
    assert_eq!(confirmed.len(), 5);
    while bodies(&slave.addr, "confirm").await != confirmed {
        assert!(
            Instant::now() < deadline,
            "the slave never served the confirmed messages"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    slave.proc.signal("STOP");
    let r = call(
        &conn,
        send_request("confirm", b"unconfirmed", "WAIT\u{1}true\u{2}"),
    )
    .await;
    if r.code != 12 {
        // Say what each broker saw: the in-sync set it kept and its connections.
        let logs: Vec<String> = members
            .iter()
            .map(|m| {
                format!(
                    "--- {} ({}):\n{}",
                    m.name,
                    m.addr,
                    m.proc.output.lock().unwrap()
                )
            })
            .collect();
        panic!(
            "stored, but the in-sync slave did not answer: code {} {:?}; controller: {:?}\n{}",
            r.code,
            r.remark,
            group(&ctl).await,
            logs.join("\n")
        );
    }
    let max = call(
        &conn,
        RemotingCommand::request(30)
            .with_field("topic", "confirm")
            .with_field("queueId", 0),
    )
    .await;
    assert_eq!(max.field("offset"), Some("6"), "the master stored it");
    let seen_while_paused = bodies(&master, "confirm").await;
    PausedSlave {
        _controller: controller,
        _ns: ns_proc,
        members,
        master,
        confirmed,
        seen_while_paused,
        _dir: dir,
    }
}

/// Consumers read only what every in-sync broker holds (Apache's confirm offset): a message
/// the master stored while its in-sync slave was paused stays unreadable, on the master and
/// on the slave, until the slave holds it, so no consumer sees a record that an election
/// could still cut away.
#[tokio::test]
async fn consumers_read_only_what_every_in_sync_broker_holds() {
    let g = send_while_the_slave_is_paused("").await;
    assert_eq!(
        g.seen_while_paused, g.confirmed,
        "stored, but shown to nobody yet"
    );
    // A pull parked meanwhile is woken by the confirmation: one that ran out its hold
    // would answer with what it read before parking, which is nothing.
    let parked = tokio::spawn({
        let master = g.master.clone();
        async move {
            let conn = connect(&master).await;
            conn.invoke(
                pull_request("confirm", 0, 5, 20_000),
                Duration::from_secs(40),
            )
            .await
            .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slave = g.members.iter().find(|m| m.addr != g.master).unwrap();
    slave.proc.signal("CONT");
    let woken = parked.await.unwrap();
    assert_eq!(
        woken.code, 0,
        "the parked pull found the message: {:?}",
        woken.remark
    );
    let found = ferromq_protocol::message::MessageExt::decode_all(&woken.body).unwrap();
    assert_eq!(&found[0].body[..], b"unconfirmed");
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in [&g.master, &slave.addr] {
        while bodies(addr, "confirm").await.len() != 6 {
            assert!(
                Instant::now() < deadline,
                "{addr} never showed the message once both held it"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `readUnCommitted=true` (Apache's key) lifts the limit: the unconfirmed message is read
/// at once.
#[tokio::test]
async fn read_uncommitted_shows_what_the_slaves_do_not_hold_yet() {
    let g = send_while_the_slave_is_paused("readUnCommitted=true\n").await;
    assert_eq!(g.seen_while_paused.len(), 6);
    assert_eq!(g.seen_while_paused.last().unwrap(), b"unconfirmed");
    let slave = g.members.iter().find(|m| m.addr != g.master).unwrap();
    slave.proc.signal("CONT");
}
