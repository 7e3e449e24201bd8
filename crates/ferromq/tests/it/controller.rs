//! Controller processes (`ferromq controller`): three nodes replicate the broker groups'
//! masters, epochs and in-sync sets with raft, answer Apache's controller requests, and
//! replace a master that stops heartbeating. The brokers here are played by the test, with
//! the requests an Apache broker in controller mode sends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;

use crate::harness::{call, connect, free_port, Proc};

struct Node {
    proc: Proc,
    addr: String,
}

fn start_nodes(dir: &std::path::Path, count: usize) -> (Vec<Node>, String) {
    let addrs: Vec<String> = (0..count)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let peers: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("n{i}-{a}"))
        .collect();
    let peers = peers.join(";");
    let nodes = (0..count)
        .map(|i| start_node(dir, &peers, i, &addrs[i]))
        .collect();
    (nodes, peers)
}

fn start_node(dir: &std::path::Path, peers: &str, i: usize, addr: &str) -> Node {
    let conf = dir.join(format!("n{i}.conf"));
    std::fs::write(
        &conf,
        format!(
            "controllerDLegerGroup=g\ncontrollerDLegerPeers={peers}\ncontrollerDLegerSelfId=n{i}\ncontrollerStorePath={}\nscanInactiveMasterInterval=500\n",
            dir.join(format!("n{i}")).display()
        ),
    )
    .unwrap();
    Node {
        proc: Proc::spawn(&["controller".into(), "-c".into(), conf.display().to_string()]),
        addr: addr.to_string(),
    }
}

/// Waits (bounded) until one of `addrs` says it leads; returns its address.
async fn leader_of(addrs: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for a in addrs {
            let Ok(c) = ferromq_remoting::connect(
                a,
                Arc::new(ferromq_remoting::NoInbound),
                Duration::from_secs(2),
            )
            .await
            else {
                continue;
            };
            let Ok(r) = c
                .invoke(RemotingCommand::request(1005), Duration::from_secs(2))
                .await
            else {
                continue;
            };
            // Only a node that says it leads counts: others may still name an old leader.
            if r.field("isLeader") == Some("true") {
                return a.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no controller leader within 30 s");
}

fn heartbeat(broker_id: i64, addr: &str, timeout_ms: u64) -> RemotingCommand {
    RemotingCommand::request(904)
        .with_field("clusterName", "C")
        .with_field("brokerName", "group-a")
        .with_field("brokerAddr", addr)
        .with_field("brokerId", broker_id)
        .with_field("epoch", 1)
        .with_field("maxOffset", 100 * broker_id)
        .with_field("heartbeatTimeoutMills", timeout_ms)
}

/// Sends a leader-only request to the leader among `addrs`; while leadership is still
/// settling (the answer is NOT_LEADER, 2007) finds the leader again and retries, as a
/// broker does. Bounded.
async fn ask(addrs: &[&str], req: RemotingCommand) -> RemotingCommand {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = leader_of(addrs).await;
        let resp = call(&connect(&leader).await, req.clone()).await;
        if resp.code != 2007 || Instant::now() > deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies for an id and registers, as a broker starting in controller mode does.
async fn join(leader: &[&str], id: i64, addr: &str) {
    let next = ask(
        leader,
        RemotingCommand::request(1012)
            .with_field("clusterName", "C")
            .with_field("brokerName", "group-a"),
    )
    .await;
    assert_eq!(next.code, 0, "{:?}", next.remark);
    assert_eq!(next.field("nextBrokerId"), Some(id.to_string().as_str()));
    let apply = ask(
        leader,
        RemotingCommand::request(1013)
            .with_field("clusterName", "C")
            .with_field("brokerName", "group-a")
            .with_field("appliedBrokerId", id)
            .with_field("registerCheckCode", format!("{addr};1")),
    )
    .await;
    assert_eq!(apply.code, 0, "{:?}", apply.remark);
    let register = ask(
        leader,
        RemotingCommand::request(1003)
            .with_field("clusterName", "C")
            .with_field("brokerName", "group-a")
            .with_field("brokerId", id)
            .with_field("brokerAddress", addr),
    )
    .await;
    assert_eq!(register.code, 0, "{:?}", register.remark);
}

/// CONTROLLER_ELECT_MASTER as broker `id` of group-a sends it.
fn elect_request(id: i64) -> RemotingCommand {
    RemotingCommand::request(1002)
        .with_field("clusterName", "C")
        .with_field("brokerName", "group-a")
        .with_field("brokerId", id)
}

fn replica_info() -> RemotingCommand {
    RemotingCommand::request(1004).with_field("brokerName", "group-a")
}

/// A stand-in broker that records the controller's notices to it.
#[derive(Default, Clone)]
struct NoticeBox(Arc<Mutex<Vec<RemotingCommand>>>);

impl ferromq_remoting::InboundHandler for NoticeBox {
    async fn on_request(&self, _conn: Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        self.0.lock().unwrap().push(req.clone());
        Some(RemotingCommand::response_to(&req, 0))
    }
}

#[tokio::test]
async fn three_controllers_keep_the_groups_state_through_a_leader_loss_and_replace_a_dead_master() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, peers) = start_nodes(dir.path(), 3);
    let owned: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let addrs: Vec<&str> = owned.iter().map(String::as_str).collect();

    // Broker 2 listens for the controller's notice of a new role.
    let notices = NoticeBox::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker2 = listener.local_addr().unwrap().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ferromq_remoting::serve(
        listener,
        Arc::new(notices.clone()),
        Default::default(),
        stop.clone(),
    ));
    let broker1 = format!("127.0.0.1:{}", free_port());

    join(&addrs, 1, &broker1).await;
    join(&addrs, 2, &broker2).await;
    // Heartbeats go to every controller, as brokers send them.
    for a in &addrs {
        let c = connect(a).await;
        assert_eq!(call(&c, heartbeat(1, &broker1, 3000)).await.code, 0);
        assert_eq!(call(&c, heartbeat(2, &broker2, 3000)).await.code, 0);
    }
    let elect = ask(&addrs, elect_request(1)).await;
    assert_eq!(elect.code, 0, "{:?}", elect.remark);
    assert_eq!(
        (elect.field("masterBrokerId"), elect.field("masterEpoch")),
        (Some("1"), Some("1"))
    );
    let alter = ask(
        &addrs,
        RemotingCommand::request(1001)
            .with_field("brokerName", "group-a")
            .with_field("masterBrokerId", 1)
            .with_field("masterEpoch", 1)
            .with_body(br#"{"syncStateSet":[1,2],"syncStateSetEpoch":1}"#.to_vec()),
    )
    .await;
    assert_eq!(alter.code, 0, "{:?}", alter.remark);
    assert_eq!(alter.field("newSyncStateSetEpoch"), Some("2"));

    // A follower refuses what only the leader may answer, and says who leads.
    let leader_addr = leader_of(&addrs).await;
    let leader = connect(&leader_addr).await;
    let follower_addr = addrs.iter().find(|a| **a != leader_addr).unwrap();
    let follower = connect(follower_addr).await;
    let refused = call(&follower, replica_info()).await;
    assert_eq!(refused.code, 2007, "{:?}", refused.remark);
    assert!(refused.remark.unwrap().contains(&leader_addr));
    // Malformed requests get clear errors and take nothing down.
    let bad = call(
        &leader,
        RemotingCommand::request(1001)
            .with_field("brokerName", "group-a")
            .with_field("masterBrokerId", 1)
            .with_field("masterEpoch", 1)
            .with_body(b"{nope".to_vec()),
    )
    .await;
    assert_eq!(bad.code, 2005, "{:?}", bad.remark);
    let bad = call(
        &follower,
        RemotingCommand::request(9101).with_body(b"\x00garbage".to_vec()),
    )
    .await;
    assert_ne!(bad.code, 0);
    assert!(bad.remark.unwrap().contains("malformed"));
    let bad = call(
        &leader,
        RemotingCommand::request(904)
            .with_field("brokerName", "group-a")
            .with_field("brokerAddr", "x:1"),
    )
    .await;
    assert_eq!(bad.code, 2005);

    // The leader dies: another takes over with the state intact.
    let leader_index = nodes.iter().position(|n| n.addr == leader_addr).unwrap();
    nodes[leader_index].proc.kill();
    let alive: Vec<&str> = addrs
        .iter()
        .copied()
        .filter(|a| *a != leader_addr)
        .collect();
    let info = ask(&alive, replica_info()).await;
    assert_eq!(info.code, 0, "{:?}", info.remark);
    assert_eq!(
        (info.field("masterBrokerId"), info.field("masterEpoch")),
        (Some("1"), Some("1"))
    );
    let set: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(set["syncStateSet"], serde_json::json!([1, 2]));
    assert_eq!(set["syncStateSetEpoch"], 2);

    // Broker 1 (the master) goes silent; broker 2 keeps heartbeating. The leader elects 2
    // and tells it.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut elected = None;
    while Instant::now() < deadline {
        for a in &alive {
            if let Ok(c) = ferromq_remoting::connect(
                a,
                Arc::new(ferromq_remoting::NoInbound),
                Duration::from_secs(2),
            )
            .await
            {
                let _ = c
                    .invoke(heartbeat(2, &broker2, 3000), Duration::from_secs(2))
                    .await;
            }
        }
        let info = ask(&alive, replica_info()).await;
        if info.field("masterBrokerId") == Some("2") {
            elected = Some(info);
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let info = elected.expect("broker 2 elected within 40 s of broker 1 going silent");
    assert_eq!(info.field("masterEpoch"), Some("2"));
    assert_eq!(info.field("masterAddress"), Some(broker2.as_str()));
    let set: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(
        set["syncStateSet"],
        serde_json::json!([2]),
        "an election resets the in-sync set"
    );
    // Every election is announced to the live brokers: first broker 1's, then broker 2's.
    let promoted = |n: &RemotingCommand| n.code == 1008 && n.field("masterBrokerId") == Some("2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !notices.0.lock().unwrap().iter().any(promoted) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = notices.0.lock().unwrap().clone();
    assert_eq!(
        seen.first().and_then(|n| n.field("masterBrokerId")),
        Some("1")
    );
    let notice = seen
        .iter()
        .find(|n| promoted(n))
        .expect("broker 2 was told of its new role");
    assert_eq!(notice.field("masterEpoch"), Some("2"));
    assert_eq!(notice.field("masterAddress"), Some(broker2.as_str()));

    // The killed node comes back and catches up from the others.
    let restarted = start_node(dir.path(), &peers, leader_index, &leader_addr);
    let _ = restarted;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut caught_up = false;
    while Instant::now() < deadline && !caught_up {
        let leader_now = leader_of(&addrs).await;
        let info = ask(&[leader_now.as_str()], replica_info()).await;
        caught_up = info.field("masterEpoch") == Some("2");
        if leader_now == leader_addr {
            // The restarted node leads: it must hold the state the others agreed on.
            assert!(
                caught_up,
                "a restarted leader serves the latest state: {:?}",
                info.field("masterEpoch")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(caught_up);
    stop.cancel();
}

#[tokio::test]
async fn a_single_controller_inside_the_name_server_answers_and_keeps_its_state_over_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = format!("127.0.0.1:{}", free_port());
    let ns = format!("127.0.0.1:{}", free_port());
    let conf = dir.path().join("namesrv.conf");
    std::fs::write(
        &conf,
        format!(
            "enableControllerInNamesrv=true\ncontrollerDLegerPeers=n0-{ctl}\ncontrollerDLegerSelfId=n0\ncontrollerStorePath={}\n",
            dir.path().join("ctl").display()
        ),
    )
    .unwrap();
    let start = || {
        Proc::spawn(&[
            "namesrv".into(),
            "-c".into(),
            conf.display().to_string(),
            "--listen".into(),
            ns.clone(),
        ])
    };
    let mut proc = start();
    let leader = leader_of(&[ctl.as_str()]).await;
    let c = connect(&leader).await;
    join(&[ctl.as_str()], 1, "127.0.0.1:1").await;
    assert_eq!(call(&c, heartbeat(1, "127.0.0.1:1", 10_000)).await.code, 0);
    let elect = call(&c, elect_request(1)).await;
    assert_eq!(elect.code, 0, "{:?}", elect.remark);
    // The name server beside it still serves.
    let routes = call(&connect(&ns).await, RemotingCommand::request(106)).await;
    assert_eq!(routes.code, 0);
    proc.terminate();
    let _proc = start();
    let leader = leader_of(&[ctl.as_str()]).await;
    // The master keeps heartbeating, as a live broker does: a restarted controller that
    // hears nothing from a master for its timeout rightly replaces it (slow machines take
    // that long to get here).
    let hb = connect(&leader).await;
    assert_eq!(call(&hb, heartbeat(1, "127.0.0.1:1", 60_000)).await.code, 0);
    let info = call(&connect(&leader).await, replica_info()).await;
    assert_eq!(info.code, 0, "{:?}", info.remark);
    assert_eq!(
        (info.field("masterBrokerId"), info.field("masterEpoch")),
        (Some("1"), Some("1"))
    );
    // Apache's getSyncStateSet reads this.
    let data = call(
        &connect(&leader).await,
        RemotingCommand::request(1006).with_body(br#"["group-a"]"#.to_vec()),
    )
    .await;
    assert_eq!(data.code, 0, "{:?}", data.remark);
    let data: serde_json::Value = serde_json::from_slice(&data.body).unwrap();
    assert_eq!(
        data["replicasInfoTable"]["group-a"]["inSyncReplicas"][0]["brokerId"],
        1
    );
}

#[tokio::test]
async fn controller_config_is_shown_not_changed_at_run_time_and_dead_brokers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _) = start_nodes(dir.path(), 1);
    let addrs = [nodes[0].addr.as_str()];
    let conn = connect(&leader_of(&addrs).await).await;
    // GET_CONTROLLER_CONFIG (1010): the node's keys as controller.conf spells them.
    let config = call(&conn, RemotingCommand::request(1010)).await;
    assert_eq!(config.code, 0, "{:?}", config.remark);
    let text = String::from_utf8_lossy(&config.body).into_owned();
    assert!(
        text.contains("scanInactiveMasterInterval=500")
            && text.contains("controllerDLegerSelfId=n0"),
        "{text}"
    );
    // UPDATE_CONTROLLER_CONFIG (1009): refused, saying how to change it.
    let update = call(
        &conn,
        RemotingCommand::request(1009).with_body(b"scanInactiveMasterInterval=1000\n".to_vec()),
    )
    .await;
    assert_eq!(update.code, 16, "{:?}", update.remark);
    assert!(update.remark.unwrap_or_default().contains("restart"));

    // CLEAN_BROKER_DATA (1011): broker 2 never heartbeated, so it may be cleaned; its id is
    // then free for another broker to apply for.
    join(&addrs, 1, "127.0.0.1:30911").await;
    join(&addrs, 2, "127.0.0.1:30912").await;
    // Broker 1 heartbeats and is elected: the group has a master and an in-sync set.
    assert_eq!(
        ask(&addrs, heartbeat(1, "127.0.0.1:30911", 60_000))
            .await
            .code,
        0
    );
    let elected = ask(&addrs, elect_request(1)).await;
    assert_eq!(elected.code, 0, "{:?}", elected.remark);
    let apply_2_elsewhere = || {
        RemotingCommand::request(1013)
            .with_field("clusterName", "C")
            .with_field("brokerName", "group-a")
            .with_field("appliedBrokerId", 2)
            .with_field("registerCheckCode", "127.0.0.1:30913;2")
    };
    let taken = ask(&addrs, apply_2_elsewhere()).await;
    assert_ne!(taken.code, 0, "id 2 is another broker's before the clean");
    let clean = |ids: &str| {
        RemotingCommand::request(1011)
            .with_field("clusterName", "C")
            .with_field("brokerName", "group-a")
            .with_field("brokerControllerIdsToClean", ids)
    };
    let bad = ask(&addrs, clean("2;two")).await;
    assert_ne!(bad.code, 0, "malformed ids must be refused");
    let done = ask(&addrs, clean("2")).await;
    assert_eq!(done.code, 0, "{:?}", done.remark);
    let free = ask(&addrs, apply_2_elsewhere()).await;
    assert_eq!(
        free.code, 0,
        "id 2 is free after the clean: {:?}",
        free.remark
    );
}
