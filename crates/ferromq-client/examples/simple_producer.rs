//! The tutorial's producer: one message to `imooc1`, print the result.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example simple_producer`

use ferromq_client::{Message, Producer};

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let producer = Producer::builder().name_servers([namesrv]).build()?;
    let result = producer
        .send(Message::new("imooc1", "this is imooc1"))
        .await?;
    println!("发送成功: {result:?}");
    producer.shutdown();
    Ok(())
}
