//! An async Rust client for FerroMQ and Apache RocketMQ (remoting protocol).
//!
//! ```no_run
//! # async fn demo() -> ferromq_client::Result<()> {
//! use ferromq_client::{Message, Producer};
//! let producer = Producer::builder().name_servers(["127.0.0.1:9876"]).group("demo").build()?;
//! let result = producer.send(Message::new("imooc1", "this is imooc1")).await?;
//! println!("{:?} {}", result.status, result.msg_id);
//! # Ok(()) }
//! ```
//!
//! - [`Producer`]: sync sends retried on another broker, async sends with a callback,
//!   one-way and batch sends, queue selectors (round robin, hash on a sharding key,
//!   closures), compression, fault avoidance.
//! - [`TransactionProducer`] with a [`TransactionListener`].
//! - [`PushConsumer`]: clustering or broadcasting, concurrent or orderly, tag and SQL92
//!   selectors, retries through the broker, periodic offset commits, graceful shutdown.
//! - [`PullConsumer`]: queues and offsets chosen by the application.
//! - [`admin::AdminClient`]: clusters, topics, groups, offsets and messages.

pub mod admin;
mod admin_auth;
pub mod consumer;
mod error;
mod instance;
mod message;
mod producer;
mod request_reply;
pub mod trace;
mod transaction;

pub use consumer::{
    ConsumeFrom, ConsumeResult, MessageModel, PullConsumer, PullResult, PullStatus, PushConsumer,
    PushConsumerBuilder, Selector,
};
pub use error::{ClientError, Result};
pub use instance::Credentials;
pub use message::{
    Message, MessageExt, MessageExtExt, MessageQueue, SendResult, SendStatus, SHARDING_KEY,
};
pub use producer::{HashSelector, Producer, ProducerBuilder, QueueSelector, RoundRobinSelector};
pub use transaction::{
    LocalTransactionState, TransactionListener, TransactionProducer, TransactionSendResult,
};
