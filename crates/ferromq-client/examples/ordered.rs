//! Ordered messages: the same key goes to one queue and is consumed in order.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example ordered`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_client::{
    ConsumeFrom, ConsumeResult, HashSelector, Message, Producer, PushConsumer, Selector,
};

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let topic = format!("orders-{}", std::process::id());
    let producer = Producer::builder()
        .name_servers([namesrv.clone()])
        .group("ordered-example")
        .selector(HashSelector)
        .build()?;
    let keys = ["order-1", "order-2", "order-3"];
    for step in 0..10 {
        for key in keys {
            producer
                .send(Message::new(&topic, format!("{key}:{step}")).with_sharding_key(key))
                .await?;
        }
    }
    let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Default::default();
    let s = seen.clone();
    let consumer = PushConsumer::builder()
        .name_servers([namesrv])
        .group("ordered-example")
        .orderly(true)
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe(&topic, Selector::All)
        .start(move |msgs| {
            let s = s.clone();
            async move {
                for m in msgs {
                    let body = String::from_utf8_lossy(&m.body).to_string();
                    let (key, step) = body.split_once(':').expect("key:step");
                    s.lock()
                        .unwrap()
                        .entry(key.into())
                        .or_default()
                        .push(step.parse().expect("step"));
                }
                ConsumeResult::Success
            }
        })
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && seen.lock().unwrap().values().map(Vec::len).sum::<usize>() < 30
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.shutdown().await;
    producer.shutdown();
    let seen = seen.lock().unwrap();
    for key in keys {
        let steps = seen.get(key).cloned().unwrap_or_default();
        println!("{key}: {steps:?}");
        if steps != (0..10).collect::<Vec<u32>>() {
            eprintln!("{key} was not consumed in order");
            std::process::exit(1);
        }
    }
    Ok(())
}
