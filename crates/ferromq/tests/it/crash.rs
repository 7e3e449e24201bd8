//! Crash safety under load: the broker is killed (SIGKILL) at random moments while several
//! producers and consumers run, 20 times in a row, restarting on the same data each time.
//! Every send acknowledged under SYNC_FLUSH is consumed in the end, no delivered record
//! fails its body CRC, and consumers resume from offsets no older than the offset-flush
//! interval allows.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_protocol::message::{body_crc, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use rand::{Rng, SeedableRng};

use crate::harness::*;

const TOPIC: &str = "crash-loop";
const GROUP: &str = "crash-loop-group";
const QUEUES: i32 = 4;
const PRODUCERS: usize = 3;
const CRASHES: usize = 20;
const OFFSET_FLUSH_MS: u64 = 200;
const CONF: &str =
    "flushDiskType=SYNC_FLUSH\nflushConsumerOffsetInterval=200\ndefaultTopicQueueNums=4\n";
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Per queue: (when, offset) of each commit.
type Commits = HashMap<i32, Vec<(Instant, i64)>>;

#[derive(Default)]
struct Ledger {
    acked: HashSet<String>,
    /// Every delivery, duplicates included.
    delivered: Vec<String>,
    bad_crc: usize,
    /// Per queue: when each consumed-up-to offset was committed, this run.
    commits: Commits,
}

async fn invoke(conn: &Connection, cmd: RemotingCommand) -> Option<RemotingCommand> {
    conn.invoke(cmd, CALL_TIMEOUT).await.ok()
}

async fn produce(
    broker: String,
    run: usize,
    id: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let Ok(conn) =
        ferromq_remoting::connect(&broker, Arc::new(ferromq_remoting::NoInbound), CALL_TIMEOUT)
            .await
    else {
        return;
    };
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let body = format!("run{run}-p{id}-{seq}");
        let req = send_request(TOPIC, body.as_bytes(), "")
            .with_field("queueId", (seq % QUEUES as u64) as i32);
        seq += 1;
        match invoke(&conn, req).await {
            Some(resp) if resp.code == 0 => {
                ledger.lock().unwrap().acked.insert(body);
            }
            Some(_) => {}
            None => return,
        }
    }
}

/// The committed offset of a queue, or 0 when the group has none.
async fn committed(conn: &Connection, queue: i32) -> Option<i64> {
    let req = RemotingCommand::request(14)
        .with_field("consumerGroup", GROUP)
        .with_field("topic", TOPIC)
        .with_field("queueId", queue);
    let resp = invoke(conn, req).await?;
    match resp.code {
        0 => resp.field("offset")?.parse().ok(),
        22 => Some(0), // QUERY_NOT_FOUND
        _ => None,
    }
}

/// Consumes one queue from its committed offset, committing after every batch. Returns the
/// offset it resumed from.
async fn consume(
    broker: String,
    queue: i32,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    resumed: Arc<Mutex<HashMap<i32, i64>>>,
) {
    let Ok(conn) =
        ferromq_remoting::connect(&broker, Arc::new(ferromq_remoting::NoInbound), CALL_TIMEOUT)
            .await
    else {
        return;
    };
    let Some(mut offset) = committed(&conn, queue).await else {
        return;
    };
    resumed.lock().unwrap().insert(queue, offset);
    while !stop.load(Ordering::Relaxed) {
        let pull = pull_request(TOPIC, queue, offset, 100).with_field("consumerGroup", GROUP);
        let Some(resp) = invoke(&conn, pull).await else {
            return;
        };
        if resp.code != 0 {
            continue;
        }
        let msgs = MessageExt::decode_all(&resp.body).expect("delivered records decode");
        {
            let mut l = ledger.lock().unwrap();
            for m in &msgs {
                if body_crc(&m.body) != m.body_crc {
                    l.bad_crc += 1;
                }
                l.delivered
                    .push(String::from_utf8_lossy(&m.body).into_owned());
            }
        }
        offset = resp
            .field("nextBeginOffset")
            .and_then(|v| v.parse().ok())
            .expect("nextBeginOffset");
        let commit = commit_request(GROUP, TOPIC, queue, offset);
        match invoke(&conn, commit).await {
            Some(r) if r.code == 0 => ledger
                .lock()
                .unwrap()
                .commits
                .entry(queue)
                .or_default()
                .push((Instant::now(), offset)),
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_across_twenty_kills_under_load() {
    let seed: u64 = rand::random();
    eprintln!("crash loop seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut server = Server::start(CONF);
    let mut late_resumes = Vec::new();
    let mut previous: Option<(Instant, Commits)> = None;
    for crash in 0..=CRASHES {
        let stop = Arc::new(AtomicBool::new(false));
        let resumed = Arc::new(Mutex::new(HashMap::new()));
        let mut tasks = Vec::new();
        for id in 0..PRODUCERS {
            tasks.push(tokio::spawn(produce(
                server.broker.clone(),
                crash,
                id,
                stop.clone(),
                ledger.clone(),
            )));
        }
        // Consumers start after a first message has created the topic.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for queue in 0..QUEUES {
            tasks.push(tokio::spawn(consume(
                server.broker.clone(),
                queue,
                stop.clone(),
                ledger.clone(),
                resumed.clone(),
            )));
        }
        let run_for = Duration::from_millis(rng.gen_range(300..1500));
        tokio::time::sleep(run_for).await;
        if crash == CRASHES {
            stop.store(true, Ordering::Relaxed);
        }
        // Consumers resume no further back than what was committed one offset flush (plus
        // scheduling slack: 1.5 s, as a 2-core machine busy with builds was seen to need)
        // before the previous kill.
        if let Some((killed_at, commits)) = previous.take() {
            let slack = Duration::from_millis(OFFSET_FLUSH_MS + 1500);
            for (queue, from) in resumed.lock().unwrap().iter() {
                let persisted_by = commits
                    .get(queue)
                    .into_iter()
                    .flatten()
                    .filter(|(at, _)| *at + slack <= killed_at)
                    .map(|(_, off)| *off)
                    .max()
                    .unwrap_or(0);
                if *from < persisted_by {
                    late_resumes.push((crash, *queue, *from, persisted_by));
                }
            }
        }
        if crash < CRASHES {
            let killed_at = Instant::now();
            server = server.crash_and_restart(CONF);
            stop.store(true, Ordering::Relaxed);
            let commits = std::mem::take(&mut ledger.lock().unwrap().commits);
            previous = Some((killed_at, commits));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    // Drain what is left from the committed offsets.
    let conn = connect(&server.broker).await;
    for queue in 0..QUEUES {
        let mut offset = committed(&conn, queue).await.expect("committed offset");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let resp = call(
                &conn,
                pull_request(TOPIC, queue, offset, 0).with_field("consumerGroup", GROUP),
            )
            .await;
            if resp.code != 0 {
                break;
            }
            let mut l = ledger.lock().unwrap();
            for m in MessageExt::decode_all(&resp.body).unwrap() {
                if body_crc(&m.body) != m.body_crc {
                    l.bad_crc += 1;
                }
                l.delivered
                    .push(String::from_utf8_lossy(&m.body).into_owned());
            }
            offset = resp.field("nextBeginOffset").unwrap().parse().unwrap();
        }
    }
    let l = ledger.lock().unwrap();
    let unique: HashSet<&String> = l.delivered.iter().collect();
    let lost: Vec<&String> = l.acked.iter().filter(|b| !unique.contains(b)).collect();
    let duplicates = l.delivered.len() - unique.len();
    eprintln!(
        "crash loop: {CRASHES} kills, {} acknowledged, {} delivered ({} unique), lost {}, duplicates {duplicates}, bad CRC {}",
        l.acked.len(),
        l.delivered.len(),
        unique.len(),
        lost.len(),
        l.bad_crc
    );
    assert!(
        l.acked.len() > 1000,
        "the load was too light to mean anything: {}",
        l.acked.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(l.bad_crc, 0, "records with a bad body CRC were delivered");
    assert!(late_resumes.is_empty(), "consumers resumed from offsets older than the flush interval allows (run, queue, from, committed in time): {late_resumes:?}");
}
