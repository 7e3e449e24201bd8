//! The tutorial's transaction: the local transaction's outcome is unknown, the broker
//! asks back, and the check answers commit; only then is the message delivered.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p ferromq-client --example transaction`
//! (the broker checks after `transactionTimeOut`, every `transactionCheckInterval`).

use std::time::Duration;

use ferromq_client::{
    ConsumeFrom, ConsumeResult, LocalTransactionState, Message, MessageExt, Producer, PushConsumer,
    Selector, TransactionListener, TransactionProducer,
};

struct OrderListener;

impl TransactionListener for OrderListener {
    fn execute_local_transaction(&self, _msg: &Message) -> LocalTransactionState {
        println!("开始执行本地逻辑 … 结果未知");
        LocalTransactionState::Unknown
    }
    fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        println!("rocketmq的消息回查");
        LocalTransactionState::Commit
    }
}

#[tokio::main]
async fn main() -> ferromq_client::Result<()> {
    let namesrv = std::env::var("NAMESRV_ADDR").unwrap_or_else(|_| "127.0.0.1:9876".into());
    let topic = format!("transTopic-{}", std::process::id());
    let setup = Producer::builder()
        .name_servers([namesrv.clone()])
        .group("tx-setup")
        .build()?;
    setup.send(Message::new(&topic, "create topic")).await?;
    setup.shutdown();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = PushConsumer::builder()
        .name_servers([namesrv.clone()])
        .group("tx-example")
        .consume_from(ConsumeFrom::FirstOffset)
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
    let producer = TransactionProducer::new(
        Producer::builder()
            .name_servers([namesrv])
            .group("tx-example"),
        OrderListener,
    )?;
    let result = producer
        .send_in_transaction(Message::new(&topic, "this is transaction message"))
        .await?;
    println!("发送成功: {:?}", result.send.status);
    let mut delivered = false;
    while let Ok(Some(body)) = tokio::time::timeout(Duration::from_secs(90), rx.recv()).await {
        if body == "this is transaction message" {
            println!("delivered after the check: {body}");
            delivered = true;
            break;
        }
    }
    consumer.shutdown().await;
    producer.shutdown();
    if !delivered {
        eprintln!("the transaction was not committed by the check");
        std::process::exit(1);
    }
    Ok(())
}
