//! Consumers: a push consumer that pulls with long polling and hands messages to a
//! handler, and a pull consumer with manual offsets.

mod allocate;
mod pull;
mod push;

pub use allocate::allocate_averagely;
pub use pull::{PullConsumer, PullResult, PullStatus};
pub use push::{PushConsumer, PushConsumerBuilder};

use std::collections::HashSet;

use ferromq_protocol::body::SubscriptionData;
use ferromq_protocol::message::tag_hash;

/// Which messages of a topic a consumer wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every message (`*`).
    All,
    /// Tag expression: `TagA || TagB`.
    Tag(String),
    /// SQL92 over message properties (needs `enablePropertyFilter=true` on the broker).
    Sql(String),
}

impl Selector {
    pub(crate) fn expression_type(&self) -> &'static str {
        match self {
            Selector::Sql(_) => "SQL92",
            _ => "TAG",
        }
    }

    pub(crate) fn expression(&self) -> &str {
        match self {
            Selector::All => "*",
            Selector::Tag(e) | Selector::Sql(e) => e,
        }
    }

    fn tags(&self) -> Option<HashSet<String>> {
        match self {
            Selector::Tag(e) if e.trim() != "*" && !e.trim().is_empty() => Some(
                e.split("||")
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The exact client-side tag check (brokers filter by hash, which can collide).
    pub(crate) fn accepts(&self, tag: Option<&str>) -> bool {
        match self.tags() {
            None => true,
            Some(tags) => tag.is_some_and(|t| tags.contains(t)),
        }
    }

    pub(crate) fn subscription_data(&self, topic: &str, version: i64) -> SubscriptionData {
        let tags: Vec<String> = self
            .tags()
            .map(|t| t.into_iter().collect())
            .unwrap_or_default();
        SubscriptionData {
            topic: topic.into(),
            sub_string: self.expression().into(),
            code_set: tags
                .iter()
                .map(|t| serde_json::json!(tag_hash(t)))
                .collect(),
            tags_set: tags,
            sub_version: version,
            expression_type: self.expression_type().into(),
            class_filter_mode: false,
        }
    }
}

/// How a group's consumers share a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageModel {
    /// The group's consumers split the queues; the broker keeps the offsets.
    Clustering,
    /// Every consumer gets every message; offsets stay in the client.
    Broadcasting,
}

/// Where a new group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFrom {
    LastOffset,
    FirstOffset,
    /// The first message stored at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// A handler's verdict on a batch of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    Success,
    /// Concurrent consumers: deliver again later (through the retry topic).
    RetryLater,
    /// Orderly consumers: pause the queue and deliver the same messages again.
    SuspendCurrentQueue,
}
