//! Delay level 2 (5 s with the default table), the tutorial's order-timeout case: the
//! message arrives only when due.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example delay`

use std::time::{Duration, Instant};

use ferromq_client::{ConsumeFrom, ConsumeResult, Message, Producer, PushConsumer, Selector};

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let topic = format!("order-timeout-{}", std::process::id());
    let producer = Producer::builder()
        .name_servers([namesrv.clone()])
        .group("delay-example")
        .build()?;
    producer.send(Message::new(&topic, "create topic")).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = PushConsumer::builder()
        .name_servers([namesrv])
        .group("delay-example")
        .consume_from(ConsumeFrom::LastOffset)
        .subscribe(&topic, Selector::All)
        .start(move |msgs| {
            let tx = tx.clone();
            async move {
                for m in msgs {
                    let _ = tx.send(String::from_utf8_lossy(&m.body).to_string());
                }
                ConsumeResult::Success
            }
        })
        .await?;
    let sent = Instant::now();
    producer
        .send(Message::new(&topic, "order 42: return stock").with_delay_level(2))
        .await?;
    let mut ok = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(body)) = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        rx.recv(),
    )
    .await
    {
        if body.starts_with("order 42") {
            println!("{body} after {:.1} s", sent.elapsed().as_secs_f64());
            ok = sent.elapsed() >= Duration::from_millis(4500);
            break;
        }
    }
    consumer.shutdown().await;
    producer.shutdown();
    if !ok {
        eprintln!("the delayed message did not arrive when due");
        std::process::exit(1);
    }
    Ok(())
}
