//! A pull consumer reading a queue from its committed offset and committing as it goes.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example pull`

use std::time::Duration;

use ferromq_client::{Message, Producer, PullConsumer, PullStatus, Selector};

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let topic = format!("pull-example-{}", std::process::id());
    let producer = Producer::builder()
        .name_servers([namesrv.clone()])
        .group("pull-example")
        .build()?;
    for i in 0..8 {
        producer
            .send(Message::new(&topic, format!("item {i}")))
            .await?;
    }
    let consumer = PullConsumer::new([namesrv], "pull-example")?;
    let mut total = 0;
    for mq in consumer.fetch_queues(&topic).await? {
        let mut offset = consumer.committed_offset(&mq).await?.unwrap_or(0);
        loop {
            let r = consumer
                .pull(&mq, &Selector::All, offset, 32, Duration::ZERO)
                .await?;
            if r.status != PullStatus::Found {
                break;
            }
            for m in &r.messages {
                println!(
                    "queue {} offset {}: {}",
                    mq.queue_id,
                    m.queue_offset,
                    String::from_utf8_lossy(&m.body)
                );
            }
            total += r.messages.len();
            offset = r.next_offset;
            consumer.commit_offset(&mq, offset).await?;
        }
    }
    producer.shutdown();
    consumer.shutdown();
    if total != 8 {
        eprintln!("pulled {total} of 8");
        std::process::exit(1);
    }
    Ok(())
}
