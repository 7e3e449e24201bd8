//! Broadcasting: every consumer of the group gets every message.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example broadcast`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_client::{
    ConsumeFrom, ConsumeResult, Message, MessageModel, Producer, PushConsumer, Selector,
};

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let topic = format!("news-{}", std::process::id());
    let producer = Producer::builder()
        .name_servers([namesrv.clone()])
        .group("broadcast-example")
        .build()?;
    producer.send(Message::new(&topic, "create topic")).await?;
    let mut counts = Vec::new();
    let mut consumers = Vec::new();
    for i in 0..2 {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        consumers.push(
            PushConsumer::builder()
                .name_servers([namesrv.clone()])
                .group("broadcast-example")
                .instance_name(format!("listener-{i}"))
                .message_model(MessageModel::Broadcasting)
                .consume_from(ConsumeFrom::FirstOffset)
                .subscribe(&topic, Selector::All)
                .start(move |msgs| {
                    let c = c.clone();
                    async move {
                        c.fetch_add(msgs.len(), Ordering::Relaxed);
                        ConsumeResult::Success
                    }
                })
                .await?,
        );
        counts.push(count);
    }
    for i in 0..10 {
        producer
            .send(Message::new(&topic, format!("news {i}")))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && counts.iter().any(|c| c.load(Ordering::Relaxed) < 11) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    println!("each listener got {got:?} of 11");
    for c in consumers {
        c.shutdown().await;
    }
    producer.shutdown();
    if got.iter().any(|n| *n < 11) {
        std::process::exit(1);
    }
    Ok(())
}
