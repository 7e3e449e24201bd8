//! A batch of messages in one request.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example batch`

use ferromq_client::{Message, Producer};

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let producer = Producer::builder()
        .name_servers([namesrv])
        .group("batch-example")
        .build()?;
    let batch: Vec<Message> = (0..10)
        .map(|i| Message::new("batch-example", format!("message {i}")))
        .collect();
    let result = producer.send_batch(batch).await?;
    println!(
        "{} messages stored from queue offset {}",
        result.offset_msg_id.split(',').count(),
        result.queue_offset
    );
    producer.shutdown();
    Ok(())
}
