//! Master and slave over real sockets on 127.0.0.1, each with its own store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use ferromq_ha::{run_slave, HaMaster, MasterConfig, ReplicaWait, SlaveConfig, SlaveStatus};
use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_store::{GetStatus, MessageStore, PutMessage, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn store(dir: &std::path::Path) -> Arc<MessageStore> {
    let mut c = StoreConfig::new(dir);
    c.segment_bytes = 64 * 1024;
    c.index_slots = 1024;
    c.index_entries = 4096;
    Arc::new(MessageStore::open(c).unwrap())
}

fn put(store: &MessageStore, body: &[u8]) -> u64 {
    let props = encode_properties([("TAGS", "t")]);
    let m = MessageExt {
        topic: "T".into(),
        born_host: "127.0.0.1:5000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        body: bytes::Bytes::copy_from_slice(body),
        properties: props.clone(),
        ..Default::default()
    };
    let mut record = BytesMut::new();
    m.encode(&mut record);
    let r = store
        .append(&mut [PutMessage::new("T".into(), 0, &props, record)])
        .unwrap();
    r[0].end_offset
}

fn bodies(store: &MessageStore) -> Vec<Vec<u8>> {
    let r = store
        .get_messages("T", 0, 0, 10_000, usize::MAX, &|_| true)
        .unwrap();
    if r.status != GetStatus::Found {
        return vec![];
    }
    r.messages
        .iter()
        .map(|m| MessageExt::decode(m).unwrap().0.body.to_vec())
        .collect()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

struct Group {
    master: Arc<MessageStore>,
    ha: Arc<HaMaster>,
    log_end: watch::Sender<u64>,
    addr: String,
    shutdown: CancellationToken,
}

async fn start_master(dir: &std::path::Path, config: MasterConfig) -> Group {
    serve_master(store(dir), config).await
}

async fn serve_master(master: Arc<MessageStore>, config: MasterConfig) -> Group {
    let (log_end, log_end_rx) = watch::channel(master.write_offset());
    let ha = HaMaster::new(master.clone(), log_end_rx, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(ha.clone().serve(listener, shutdown.clone()));
    Group {
        master,
        ha,
        log_end,
        addr,
        shutdown,
    }
}

struct Slave {
    store: Arc<MessageStore>,
    status: Arc<Mutex<SlaveStatus>>,
    task: tokio::task::JoinHandle<()>,
    _master: watch::Sender<Option<String>>,
}

fn start_slave(dir: &std::path::Path, master_addr: &str, shutdown: &CancellationToken) -> Slave {
    follow(store(dir), master_addr, shutdown, None)
}

fn follow(
    slave: Arc<MessageStore>,
    master_addr: &str,
    shutdown: &CancellationToken,
    auto_switch: Option<i64>,
) -> Slave {
    let status = Arc::new(Mutex::new(SlaveStatus::default()));
    let (tx, rx) = watch::channel(Some(master_addr.to_string()));
    let task = tokio::spawn(run_slave(
        slave.clone(),
        rx,
        Arc::new(|| {}),
        status.clone(),
        SlaveConfig {
            reconnect: Duration::from_millis(100),
            auto_switch,
            ..SlaveConfig::default()
        },
        shutdown.clone(),
    ));
    Slave {
        store: slave,
        status,
        task,
        _master: tx,
    }
}

#[tokio::test]
async fn a_slave_copies_history_and_live_appends_and_acknowledges_them() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let g = start_master(m_dir.path(), MasterConfig::default()).await;
    for i in 0..150u32 {
        put(&g.master, &[i as u8; 900]);
    }
    g.log_end.send_replace(g.master.write_offset());
    assert_eq!(
        g.ha.wait_replicated(g.master.write_offset(), Duration::from_millis(100))
            .await,
        Err(ReplicaWait::NotAvailable),
        "no slave yet"
    );
    let Slave {
        store: slave,
        status,
        ..
    } = start_slave(s_dir.path(), &g.addr, &g.shutdown);
    wait_until("history copied", || {
        slave.replica_offset() == g.master.write_offset()
    })
    .await;
    assert_eq!(bodies(&slave), bodies(&g.master));
    assert!(status.lock().unwrap().connected);

    // Live: each append is acknowledged by the slave's report.
    for i in 0..20u32 {
        let end = put(&g.master, format!("live {i}").as_bytes());
        g.log_end.send_replace(end);
        g.ha.wait_replicated(end, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(slave.replica_offset() >= end);
    }
    assert_eq!(bodies(&slave), bodies(&g.master));
    let slaves = g.ha.slaves();
    assert_eq!(slaves.len(), 1);
    assert_eq!(slaves[0].ack_offset, Some(g.master.write_offset()));
    g.shutdown.cancel();
}

#[tokio::test]
async fn a_sync_wait_times_out_when_the_slave_cannot_keep_up() {
    let m_dir = tempfile::tempdir().unwrap();
    let g = start_master(m_dir.path(), MasterConfig::default()).await;
    put(&g.master, b"first");
    // A "slave" that reports once and then never again.
    let mut fake = tokio::net::TcpStream::connect(&g.addr).await.unwrap();
    fake.write_all(&0i64.to_be_bytes()).await.unwrap();
    wait_until("the report counted", || {
        g.ha.slaves()
            .first()
            .is_some_and(|s| s.ack_offset.is_some())
    })
    .await;
    let end = put(&g.master, b"second");
    g.log_end.send_replace(end);
    assert_eq!(
        g.ha.wait_replicated(end, Duration::from_millis(300)).await,
        Err(ReplicaWait::Timeout)
    );
    g.shutdown.cancel();
}

#[tokio::test]
async fn a_master_drops_a_slave_sending_garbage_and_keeps_serving_others() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let g = start_master(m_dir.path(), MasterConfig::default()).await;
    put(&g.master, b"kept");
    let mut bad = tokio::net::TcpStream::connect(&g.addr).await.unwrap();
    bad.write_all(&(-5i64).to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the master closes the connection"
    );
    // A slave claiming more than the master has is refused too.
    let mut ahead = tokio::net::TcpStream::connect(&g.addr).await.unwrap();
    ahead.write_all(&(1i64 << 40).to_be_bytes()).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), ahead.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the master closes the connection");
    let slave = start_slave(s_dir.path(), &g.addr, &g.shutdown).store;
    wait_until("a good slave still copies", || {
        slave.replica_offset() == g.master.write_offset()
    })
    .await;
    assert_eq!(bodies(&slave), vec![b"kept".to_vec()]);
    g.shutdown.cancel();
}

#[tokio::test]
async fn a_slave_refuses_bad_frames_from_a_master_and_keeps_its_copy() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // First a real copy of one message.
    let g = start_master(m_dir.path(), MasterConfig::default()).await;
    put(&g.master, b"kept");
    let shutdown = CancellationToken::new();
    let first = start_slave(s_dir.path(), &g.addr, &shutdown);
    wait_until("copied", || {
        first.store.replica_offset() == g.master.write_offset()
    })
    .await;
    shutdown.cancel();
    g.shutdown.cancel();
    let end = first.store.replica_offset();
    first.task.await.unwrap();
    drop(first.store);

    // Then a "master" that answers with frames no master sends.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let slave = start_slave(s_dir.path(), &addr, &shutdown).store;
    let frames: Vec<Vec<u8>> = vec![
        // a body over the 4 MiB limit
        [
            end.to_be_bytes().to_vec(),
            (5i32 << 20).to_be_bytes().to_vec(),
        ]
        .concat(),
        // a negative size
        [end.to_be_bytes().to_vec(), (-1i32).to_be_bytes().to_vec()].concat(),
        // another offset than the copy's end
        [
            (end + 7).to_be_bytes().to_vec(),
            4i32.to_be_bytes().to_vec(),
            vec![1, 2, 3, 4],
        ]
        .concat(),
        // bytes that are not records
        [
            end.to_be_bytes().to_vec(),
            200i32.to_be_bytes().to_vec(),
            vec![0xAB; 200],
        ]
        .concat(),
    ];
    for frame in frames {
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut report = [0u8; 8];
        conn.read_exact(&mut report).await.unwrap();
        assert_eq!(
            u64::from_be_bytes(report),
            end,
            "the slave reports its copy's end"
        );
        conn.write_all(&frame).await.unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the slave drops the connection");
        assert_eq!(slave.replica_offset(), end, "nothing of a bad frame stays");
    }
    assert_eq!(bodies(&slave), vec![b"kept".to_vec()]);
    shutdown.cancel();
}

fn log_bytes(store: &MessageStore) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = store.min_commit_log_offset();
    while at < store.write_offset() {
        let chunk = store.read_log(at, 1 << 20).unwrap();
        assert!(!chunk.is_empty());
        at += chunk.len() as u64;
        out.extend_from_slice(&chunk);
    }
    out
}

/// Controller mode: epochs travel with the data; after a failover the old master, rejoining
/// as a slave of the new one, cuts what it wrote that the new master never had, then copies
/// the new epoch, so both logs end up byte for byte the same.
#[tokio::test]
async fn a_rejoining_old_master_cuts_its_unreplicated_tail_and_follows_the_new_epoch() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let auto = MasterConfig {
        auto_switch: true,
        ..MasterConfig::default()
    };
    // A is master in epoch 1; B copies it.
    let a = store(a_dir.path());
    a.begin_epoch(1).unwrap();
    for i in 0..30u32 {
        put(&a, format!("epoch1 {i}").as_bytes());
    }
    let g = serve_master(a.clone(), auto.clone()).await;
    let b = store(b_dir.path());
    let b_follow = follow(b.clone(), &g.addr, &g.shutdown, Some(2));
    wait_until("B copied epoch 1", || {
        b.replica_offset() == a.write_offset()
    })
    .await;
    assert_eq!(b.epochs(), a.epochs());
    // B stops following; A goes on writing what B never gets (unacknowledged under a
    // synchronous setup), then dies.
    g.shutdown.cancel();
    b_follow.task.await.unwrap();
    let shared_end = a.write_offset();
    for i in 0..10u32 {
        put(&a, format!("lost {i}").as_bytes());
    }
    drop(g);
    // B becomes master of epoch 2 and writes on.
    b.begin_epoch(2).unwrap();
    for i in 0..20u32 {
        put(&b, format!("epoch2 {i}").as_bytes());
    }
    // B is alone in its in-sync set: all it writes is confirmed (the broker's confirm loop
    // does this), and A, following, may show it.
    b.set_read_limit(u64::MAX);
    let g2 = serve_master(b.clone(), auto).await;
    g2.log_end.send_replace(b.write_offset());
    // A rejoins as B's slave.
    let a_follow = follow(a.clone(), &g2.addr, &g2.shutdown, Some(1));
    wait_until("A follows B", || a.replica_offset() == b.write_offset()).await;
    assert_eq!(
        log_bytes(&a),
        log_bytes(&b),
        "the logs are the same, byte for byte"
    );
    assert_eq!(a.epochs(), b.epochs());
    assert_eq!(
        b.epochs()
            .iter()
            .map(|e| (e.epoch, e.start))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, shared_end)]
    );
    let bodies_a = bodies(&a);
    assert!(
        bodies_a.iter().all(|m| !m.starts_with(b"lost")),
        "A's unreplicated tail is gone"
    );
    assert_eq!(bodies_a.len(), 50);
    // B's slaves list the broker id A gave in its handshake.
    assert_eq!(g2.ha.slaves()[0].broker_id, Some(1));
    g2.shutdown.cancel();
    a_follow.task.await.unwrap();
}

/// A master that stops being one (controller mode) closes its slaves' connections and
/// refuses new ones, so no slave copies a log that is about to be cut back.
#[tokio::test]
async fn a_master_that_steps_down_drops_its_slaves_and_refuses_new_ones() {
    let m_dir = tempfile::tempdir().unwrap();
    let g = start_master(m_dir.path(), MasterConfig::default()).await;
    put(&g.master, b"one");
    let mut slave = tokio::net::TcpStream::connect(&g.addr).await.unwrap();
    slave.write_all(&0i64.to_be_bytes()).await.unwrap();
    wait_until("the slave is listed", || g.ha.slaves().len() == 1).await;
    g.ha.set_serving(false);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slave.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is closed");
    wait_until("the slave is gone", || g.ha.slaves().is_empty()).await;
    let mut late = tokio::net::TcpStream::connect(&g.addr).await.unwrap();
    late.write_all(&0i64.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let refused = tokio::time::timeout(Duration::from_secs(5), late.read_to_end(&mut rest)).await;
    assert!(refused.is_ok(), "a new slave is turned away");
    assert!(g.ha.slaves().is_empty());
    g.shutdown.cancel();
}
