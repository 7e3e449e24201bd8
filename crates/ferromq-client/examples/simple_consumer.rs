//! The tutorial's consumer: group `maxshop` on `imooc1`; prints what arrives and exits
//! after the first message (or fails after 30 s).
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example simple_consumer`

use std::time::Duration;

use ferromq_client::{ConsumeResult, PushConsumer, Selector};

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = PushConsumer::builder()
        .name_servers([namesrv])
        .group("maxshop")
        .subscribe("imooc1", Selector::All)
        .start(move |msgs| {
            let tx = tx.clone();
            async move {
                for m in msgs {
                    println!("获取到值: {}", String::from_utf8_lossy(&m.body));
                    let _ = tx.send(());
                }
                ConsumeResult::Success
            }
        })
        .await?;
    let got = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
    consumer.shutdown().await;
    if got.is_err() {
        eprintln!("no message within 30 s");
        std::process::exit(1);
    }
    Ok(())
}
