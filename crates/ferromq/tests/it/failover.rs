//! Two brokers in one cluster; one stops mid-run and sends carry on at the other.

use std::collections::BTreeSet;
use std::time::Duration;

use ferromq_client::{Message, Producer, PullConsumer, PullStatus, Selector};

use crate::harness::{create_topic, free_port, Proc};

fn broker(name: &str, namesrv: &str, dir: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(&conf, format!("brokerName={name}\nnamesrvAddr={namesrv}\n")).unwrap();
    let args: Vec<String> = vec![
        "broker".into(),
        "-c".into(),
        conf.display().to_string(),
        "--data-dir".into(),
        dir.join(name).display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    (Proc::spawn(&args), format!("127.0.0.1:{port}"))
}

#[tokio::test]
async fn sends_fail_over_to_the_other_broker_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ns_addr = format!("127.0.0.1:{}", free_port());
    let _ns = Proc::spawn(&["namesrv".into(), "--listen".into(), ns_addr.clone()]);
    let (mut a, a_addr) = broker("broker-a", &ns_addr, dir.path());
    let (_b, b_addr) = broker("broker-b", &ns_addr, dir.path());
    create_topic(&a_addr, "fo", 2).await;
    create_topic(&b_addr, "fo", 2).await;
    let producer = Producer::builder()
        .name_servers([ns_addr.clone()])
        .group("pg-fo")
        .retries(2)
        .build()
        .unwrap();
    let mut acked = BTreeSet::new();
    for i in 0..200 {
        if i == 60 {
            a.terminate();
        }
        let r = producer.send(Message::new("fo", format!("m{i}"))).await;
        let r = r.unwrap_or_else(|e| panic!("send {i} surfaced an error despite retries: {e}"));
        acked.insert((format!("m{i}"), r.queue.broker_name.clone()));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        acked.iter().any(|(_, b)| b == "broker-a"),
        "broker-a took sends before it stopped"
    );
    assert!(acked
        .iter()
        .filter(|(m, _)| m[1..].parse::<u32>().unwrap() > 70)
        .all(|(_, b)| b == "broker-b"));
    producer.shutdown();
    // Bring broker-a back on its data and read everything from both.
    let (_a2, _) = broker("broker-a", &ns_addr, dir.path());
    let consumer = PullConsumer::new([ns_addr.clone()], "g-fo").unwrap();
    let mut got = BTreeSet::new();
    let mut queues = Vec::new();
    for _ in 0..50 {
        queues = consumer.fetch_queues("fo").await.unwrap();
        if queues.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(queues.len(), 4, "both brokers serve the topic");
    for mq in &queues {
        let mut offset = 0;
        loop {
            let r = consumer
                .pull(mq, &Selector::All, offset, 32, Duration::ZERO)
                .await
                .unwrap();
            if r.status != PullStatus::Found {
                break;
            }
            got.extend(r.messages.iter().map(|m| {
                (
                    String::from_utf8(m.body.to_vec()).unwrap(),
                    mq.broker_name.clone(),
                )
            }));
            offset = r.next_offset;
        }
    }
    let missing: Vec<_> = acked.difference(&got).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}
