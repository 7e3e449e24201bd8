//! The Rust client against a real broker: the scenarios of the Go interop suite.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_client::{
    ConsumeFrom, ConsumeResult, HashSelector, LocalTransactionState, Message, MessageExt,
    MessageExtExt, MessageModel, Producer, PullConsumer, PullStatus, PushConsumer, Selector,
    SendStatus, TransactionListener, TransactionProducer,
};

use crate::harness::Server;

type Seen = Arc<Mutex<Vec<MessageExt>>>;

fn producer(server: &Server, name: &str) -> Producer {
    Producer::builder()
        .name_servers([server.namesrv.clone()])
        .group(format!("pg-{name}"))
        .instance_name(name)
        .build()
        .unwrap()
}

async fn consumer(
    server: &Server,
    group: &str,
    instance: &str,
    topic: &str,
    selector: Selector,
    seen: Seen,
) -> PushConsumer {
    PushConsumer::builder()
        .name_servers([server.namesrv.clone()])
        .group(group)
        .instance_name(instance)
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe(topic, selector)
        .start(move |msgs| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().extend(msgs);
                ConsumeResult::Success
            }
        })
        .await
        .unwrap()
}

async fn wait_for(seen: &Seen, n: usize, within: Duration) -> Vec<MessageExt> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && seen.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.lock().unwrap().clone()
}

fn bodies(msgs: &[MessageExt]) -> BTreeSet<String> {
    msgs.iter()
        .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn sync_async_oneway_and_batch_sends_are_consumed() {
    let server = Server::start("");
    let p = producer(&server, "sends");
    let r = p
        .send(
            Message::new("sends", "sync-0")
                .with_tag("T")
                .with_keys(["k0"]),
        )
        .await
        .unwrap();
    assert_eq!(r.status, SendStatus::Ok);
    assert_eq!(r.msg_id.len(), 32);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..5 {
        let tx = tx.clone();
        p.send_with_callback(Message::new("sends", format!("async-{i}")), move |r| {
            let _ = tx.send(r.map(|r| r.status));
        });
    }
    for _ in 0..5 {
        assert_eq!(rx.recv().await.unwrap().unwrap(), SendStatus::Ok);
    }
    for i in 0..3 {
        p.send_oneway(Message::new("sends", format!("oneway-{i}")))
            .await
            .unwrap();
    }
    let batch: Vec<Message> = (0..4)
        .map(|i| Message::new("sends", format!("batch-{i}")))
        .collect();
    let r = p.send_batch(batch).await.unwrap();
    assert_eq!(r.offset_msg_id.split(',').count(), 4);
    let big = "x".repeat(10_000);
    p.send(Message::new("sends", big.clone())).await.unwrap();
    let seen: Seen = Default::default();
    let c = consumer(
        &server,
        "g-sends",
        "c1",
        "sends",
        Selector::All,
        seen.clone(),
    )
    .await;
    let got = wait_for(&seen, 14, Duration::from_secs(20)).await;
    let expected: BTreeSet<String> = ["sync-0"]
        .into_iter()
        .map(String::from)
        .chain((0..5).map(|i| format!("async-{i}")))
        .chain((0..3).map(|i| format!("oneway-{i}")))
        .chain((0..4).map(|i| format!("batch-{i}")))
        .chain([big])
        .collect();
    assert_eq!(bodies(&got), expected, "a compressed body is decompressed");
    let first = got.iter().find(|m| &m.body[..] == b"sync-0").unwrap();
    assert_eq!((first.tag(), first.keys()), (Some("T"), vec!["k0"]));
    c.shutdown().await;
    p.shutdown();
}

#[tokio::test]
async fn ordered_messages_keep_per_key_order() {
    let server = Server::start("");
    let p = Producer::builder()
        .name_servers([server.namesrv.clone()])
        .group("pg-ord")
        .selector(HashSelector)
        .build()
        .unwrap();
    for seq in 0..20 {
        for key in ["a", "b", "c", "d"] {
            p.send(Message::new("ordered", format!("{key}:{seq}")).with_sharding_key(key))
                .await
                .unwrap();
        }
    }
    let seen: Seen = Default::default();
    let s2 = seen.clone();
    let c = PushConsumer::builder()
        .name_servers([server.namesrv.clone()])
        .group("g-ord")
        .orderly(true)
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe("ordered", Selector::All)
        .start(move |msgs| {
            let seen = s2.clone();
            async move {
                seen.lock().unwrap().extend(msgs);
                ConsumeResult::Success
            }
        })
        .await
        .unwrap();
    let got = wait_for(&seen, 80, Duration::from_secs(20)).await;
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut queue_of: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for m in &got {
        let b = String::from_utf8(m.body.to_vec()).unwrap();
        let (k, s) = b.split_once(':').unwrap();
        per_key
            .entry(k.into())
            .or_default()
            .push(s.parse().unwrap());
        queue_of.entry(k.into()).or_default().insert(m.queue_id);
    }
    for (k, seqs) in &per_key {
        assert_eq!(seqs, &(0..20).collect::<Vec<u32>>(), "key {k}");
        assert_eq!(queue_of[k].len(), 1, "key {k} spread over queues");
    }
    c.shutdown().await;
    p.shutdown();
}

#[tokio::test]
async fn delayed_and_timer_messages_arrive_when_due() {
    let server = Server::start("messageDelayLevel=1s 2s\n");
    let p = producer(&server, "delay");
    p.send(Message::new("later", "warmup")).await.unwrap();
    let seen: Seen = Default::default();
    let c = consumer(
        &server,
        "g-delay",
        "c1",
        "later",
        Selector::All,
        seen.clone(),
    )
    .await;
    wait_for(&seen, 1, Duration::from_secs(10)).await;
    let sent = Instant::now();
    p.send(Message::new("later", "delayed").with_delay_level(1))
        .await
        .unwrap();
    let due = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1500;
    p.send(Message::new("later", "timer").with_deliver_time_ms(due))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing before it is due");
    let got = wait_for(&seen, 3, Duration::from_secs(10)).await;
    assert_eq!(
        bodies(&got[1..]),
        ["delayed", "timer"].map(String::from).into_iter().collect()
    );
    assert!(sent.elapsed() >= Duration::from_millis(1400));
    c.shutdown().await;
    p.shutdown();
}

struct Listener {
    local: LocalTransactionState,
    checked: Arc<Mutex<u32>>,
}

impl TransactionListener for Listener {
    fn execute_local_transaction(&self, _msg: &Message) -> LocalTransactionState {
        self.local
    }
    fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        *self.checked.lock().unwrap() += 1;
        LocalTransactionState::Commit
    }
}

#[tokio::test]
async fn transactions_commit_roll_back_and_are_checked() {
    let server = Server::start("transactionCheckInterval=300\ntransactionTimeOut=500\n");
    let seen: Seen = Default::default();
    // The topic exists before the consumer starts.
    producer(&server, "tx-setup")
        .send(Message::new("tx", "setup"))
        .await
        .unwrap();
    let c = consumer(&server, "g-tx", "c1", "tx", Selector::All, seen.clone()).await;
    for (local, body) in [
        (LocalTransactionState::Commit, "committed"),
        (LocalTransactionState::Rollback, "rolled-back"),
        (LocalTransactionState::Unknown, "checked"),
    ] {
        let checked = Arc::new(Mutex::new(0));
        let tp = TransactionProducer::new(
            Producer::builder()
                .name_servers([server.namesrv.clone()])
                .group(format!("tx-{body}")),
            Listener {
                local,
                checked: checked.clone(),
            },
        )
        .unwrap();
        let r = tp
            .send_in_transaction(Message::new("tx", body))
            .await
            .unwrap();
        assert_eq!(r.state, local);
        if local == LocalTransactionState::Unknown {
            let deadline = Instant::now() + Duration::from_secs(10);
            while *checked.lock().unwrap() == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(*checked.lock().unwrap() >= 1, "the broker asked back");
        }
        let _keep = tp;
    }
    let got = wait_for(&seen, 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bodies(&got),
        ["setup", "committed", "checked"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    c.shutdown().await;
}

#[tokio::test]
async fn broadcasting_consumers_each_get_everything_and_clustering_ones_split() {
    let server = Server::start("");
    let p = producer(&server, "share");
    p.send(Message::new("share", "warmup")).await.unwrap();
    let mut seen = Vec::new();
    let mut consumers = Vec::new();
    for (group, model) in [
        ("bc", MessageModel::Broadcasting),
        ("bc", MessageModel::Broadcasting),
        ("cl", MessageModel::Clustering),
        ("cl", MessageModel::Clustering),
    ] {
        let s: Seen = Default::default();
        let s2 = s.clone();
        let c = PushConsumer::builder()
            .name_servers([server.namesrv.clone()])
            .group(group)
            .instance_name(format!("{group}-{}", consumers.len()))
            .message_model(model)
            .consume_from(ConsumeFrom::FirstOffset)
            .subscribe("share", Selector::All)
            .start(move |msgs| {
                let s = s2.clone();
                async move {
                    s.lock().unwrap().extend(msgs);
                    ConsumeResult::Success
                }
            })
            .await
            .unwrap();
        seen.push(s);
        consumers.push(c);
    }
    // Clustering members rebalance when they see each other.
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline
        && (consumers[2].assigned_queues().len() + consumers[3].assigned_queues().len() != 5
            || consumers[3].assigned_queues().is_empty())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..40 {
        p.send(Message::new("share", format!("m{i}")))
            .await
            .unwrap();
    }
    let all: BTreeSet<String> = (0..40)
        .map(|i| format!("m{i}"))
        .chain(["warmup".to_string()])
        .collect();
    for s in &seen[..2] {
        assert_eq!(bodies(&wait_for(s, 41, Duration::from_secs(15)).await), all);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline
        && seen[2].lock().unwrap().len() + seen[3].lock().unwrap().len() < 41
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = seen[2].lock().unwrap().clone();
    let b = seen[3].lock().unwrap().clone();
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both clustering consumers got a share"
    );
    let union: BTreeSet<String> = bodies(&a).union(&bodies(&b)).cloned().collect();
    assert_eq!(union, all);
    for c in consumers {
        c.shutdown().await;
    }
}

#[tokio::test]
async fn retry_later_redelivers_through_the_retry_topic() {
    let server = Server::start("messageDelayLevel=1s 1s 1s\n");
    let p = producer(&server, "retry");
    p.send(Message::new("retry", "flaky")).await.unwrap();
    let attempts: Arc<Mutex<Vec<(i32, String)>>> = Default::default();
    let a2 = attempts.clone();
    let c = PushConsumer::builder()
        .name_servers([server.namesrv.clone()])
        .group("g-retry")
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe("retry", Selector::All)
        .start(move |msgs| {
            let attempts = a2.clone();
            async move {
                let m = &msgs[0];
                attempts
                    .lock()
                    .unwrap()
                    .push((m.reconsume_times, m.topic.clone()));
                if m.reconsume_times == 0 {
                    ConsumeResult::RetryLater
                } else {
                    ConsumeResult::Success
                }
            }
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && attempts.lock().unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = attempts.lock().unwrap().clone();
    assert_eq!(
        a,
        vec![(0, "retry".to_string()), (1, "retry".to_string())],
        "retried once, shown with its own topic"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn tag_and_sql_selectors_filter() {
    let server = Server::start("enablePropertyFilter=true\n");
    let p = producer(&server, "filters");
    for (tag, a) in [("TagA", "7"), ("TagB", "3"), ("TagC", "9")] {
        p.send(
            Message::new("filtered", tag)
                .with_tag(tag)
                .with_property("a", a),
        )
        .await
        .unwrap();
    }
    let tags: Seen = Default::default();
    let sql: Seen = Default::default();
    let c1 = consumer(
        &server,
        "g-tags",
        "c1",
        "filtered",
        Selector::Tag("TagA || TagB".into()),
        tags.clone(),
    )
    .await;
    let c2 = consumer(
        &server,
        "g-sql",
        "c2",
        "filtered",
        Selector::Sql("a > 5".into()),
        sql.clone(),
    )
    .await;
    let t = wait_for(&tags, 2, Duration::from_secs(10)).await;
    let s = wait_for(&sql, 2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bodies(&t),
        ["TagA", "TagB"].map(String::from).into_iter().collect()
    );
    assert_eq!(
        bodies(&s),
        ["TagA", "TagC"].map(String::from).into_iter().collect()
    );
    c1.shutdown().await;
    c2.shutdown().await;
}

#[tokio::test]
async fn pull_consumer_reads_with_manual_offsets() {
    let server = Server::start("");
    let p = producer(&server, "pull");
    for i in 0..5 {
        p.send_to_queue(
            Message::new("pulled", format!("p{i}")),
            &ferromq_client::MessageQueue {
                topic: "pulled".into(),
                broker_name: "broker-a".into(),
                queue_id: 0,
            },
        )
        .await
        .unwrap_or_else(|_| panic!("send {i}"));
    }
    let pc = PullConsumer::new([server.namesrv.clone()], "g-pull").unwrap();
    let queues = pc.fetch_queues("pulled").await.unwrap();
    assert_eq!(queues.len(), 4);
    let q0 = &queues[0];
    let r = pc
        .pull(q0, &Selector::All, 0, 3, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.next_offset, r.messages.len()),
        (PullStatus::Found, 3, 3)
    );
    pc.commit_offset(q0, r.next_offset).await.unwrap();
    assert_eq!(pc.committed_offset(q0).await.unwrap(), Some(3));
    let r = pc
        .pull(q0, &Selector::All, 3, 32, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        bodies(&r.messages),
        ["p3", "p4"].map(String::from).into_iter().collect()
    );
    let r = pc
        .pull(q0, &Selector::All, 5, 32, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(r.status, PullStatus::NoNewMessage);
    assert_eq!(pc.max_offset(q0).await.unwrap(), 5);
}

/// Request-reply with the Rust client on both ends: the replier's answer (SEND_REPLY_MESSAGE_V2)
/// is pushed back to the requester and stored in the cluster's reply topic; a request nobody
/// answers ends in RequestTimeout; a non-request cannot be replied to.
#[tokio::test]
async fn requests_are_answered_through_the_reply_topic() {
    let server = Server::start("");
    let requester = producer(&server, "requester");
    let replier = producer(&server, "replier");
    requester
        .send(Message::new("asks", "creates the topic"))
        .await
        .unwrap();
    let answering = replier.clone();
    let _c = PushConsumer::builder()
        .name_servers([server.namesrv.clone()])
        .group("g-replier")
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe("asks", Selector::All)
        .start(move |msgs| {
            let replier = answering.clone();
            async move {
                for m in msgs {
                    let body = format!("re:{}", String::from_utf8_lossy(&m.body));
                    if m.body.as_ref() != b"creates the topic" {
                        replier.reply(&m, body).await.unwrap();
                    } else {
                        assert!(
                            replier.reply(&m, body).await.is_err(),
                            "a non-request was answered"
                        );
                    }
                }
                ConsumeResult::Success
            }
        })
        .await
        .unwrap();
    for ask in ["ping", "pong"] {
        let reply = requester
            .request(Message::new("asks", ask), Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(reply.body.as_ref(), format!("re:{ask}").as_bytes());
        assert_eq!(reply.topic, "DefaultCluster_REPLY_TOPIC");
        assert!(reply.property("CORRELATION_ID").is_some());
    }
    // Stored as well as pushed.
    let seen: Seen = Arc::default();
    let _r = consumer(
        &server,
        "g-replies",
        "r",
        "DefaultCluster_REPLY_TOPIC",
        Selector::All,
        seen.clone(),
    )
    .await;
    let stored = bodies(&wait_for(&seen, 2, Duration::from_secs(20)).await);
    assert_eq!(
        stored,
        BTreeSet::from(["re:ping".to_string(), "re:pong".to_string()])
    );

    let err = requester
        .request(
            Message::new("unanswered", "anyone?"),
            Duration::from_millis(800),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ferromq_client::ClientError::RequestTimeout { .. }),
        "{err}"
    );
}

/// What a running push consumer has consumed is committed on the broker within a persist
/// interval, whether the next pull carried the offset or the periodic commit sent it; a
/// group restarted after a graceful stop resumes there, with nothing again and nothing lost.
#[tokio::test]
async fn consumed_offsets_reach_the_broker_and_a_restarted_group_resumes_there() {
    let server = Server::start("");
    let p = producer(&server, "resume");
    let queue = |queue_id| ferromq_client::MessageQueue {
        topic: "resumed".into(),
        broker_name: "broker-a".into(),
        queue_id,
    };
    // `count` messages `<prefix><i>`, spread over the topic's four queues.
    let send = |prefix: &'static str, count: i32| {
        let (p, queue) = (&p, &queue);
        async move {
            for i in 0..count {
                p.send_to_queue(
                    Message::new("resumed", format!("{prefix}{i}")),
                    &queue(i % 4),
                )
                .await
                .unwrap_or_else(|e| panic!("send {prefix}{i}: {e}"));
            }
        }
    };
    let start = |instance: &'static str, seen: Seen| {
        consumer(
            &server,
            "g-resume",
            instance,
            "resumed",
            Selector::All,
            seen,
        )
    };
    send("a", 8).await;
    let seen = Seen::default();
    let first = start("resume-1", seen.clone()).await;
    assert_eq!(
        bodies(&wait_for(&seen, 8, Duration::from_secs(20)).await).len(),
        8
    );

    // Read as another client would (no heartbeat: it does not join the group).
    let reader = PullConsumer::new([server.namesrv.clone()], "g-resume").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut committed = Vec::new();
    while Instant::now() < deadline {
        committed.clear();
        for id in 0..4 {
            committed.push(reader.committed_offset(&queue(id)).await.unwrap());
        }
        if committed.iter().all(|c| *c == Some(2)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        committed,
        vec![Some(2); 4],
        "offsets on the broker while the consumer runs"
    );

    first.shutdown().await;
    send("b", 4).await;
    let again = Seen::default();
    let second = start("resume-2", again.clone()).await;
    wait_for(&again, 4, Duration::from_secs(20)).await;
    // Anything consumed twice would arrive with the rest; give it a moment to.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = again.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "only the new messages: {:?}", bodies(&got));
    assert_eq!(bodies(&got), (0..4).map(|i| format!("b{i}")).collect());
    second.shutdown().await;
}
