//! Messages as producers build them, and send results.

use std::collections::BTreeMap;

use bytes::Bytes;
use ferromq_protocol::message::{self, property};

pub use ferromq_protocol::body::MessageQueue;
pub use ferromq_protocol::message::MessageExt;

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub topic: String,
    pub body: Bytes,
    pub flag: i32,
    /// User and system properties (`TAGS`, `KEYS`, `DELAY`, …).
    pub properties: BTreeMap<String, String>,
}

/// Property of the ordering key that the hash selector uses.
pub const SHARDING_KEY: &str = "SHARDING_KEY";

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            ..Default::default()
        }
    }

    /// The tag consumers filter on.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.properties
            .insert(message::property::TAGS.into(), tag.into());
        self
    }

    /// Business keys, indexed by the broker for queries.
    pub fn with_keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        self.properties
            .insert(message::property::KEYS.into(), keys.join(" "));
        self
    }

    /// A delay level (1 = 1 s, 2 = 5 s, 3 = 10 s … with the default table).
    pub fn with_delay_level(mut self, level: u32) -> Self {
        self.properties
            .insert(message::property::DELAY.into(), level.to_string());
        self
    }

    /// Delivery at an absolute time (ms since the epoch): a timer message.
    pub fn with_deliver_time_ms(mut self, at_ms: i64) -> Self {
        self.properties.insert(
            message::property::TIMER_DELIVER_MS.into(),
            at_ms.to_string(),
        );
        self
    }

    /// The key the hash selector keeps in one queue (ordered messages).
    pub fn with_sharding_key(mut self, key: impl Into<String>) -> Self {
        self.properties.insert(SHARDING_KEY.into(), key.into());
        self
    }

    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    pub(crate) fn encoded_properties(&self) -> String {
        message::encode_properties(
            self.properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

/// Whether a sent message is stored as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    Ok,
    /// Stored, but not flushed in time under SYNC_FLUSH.
    FlushDiskTimeout,
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

/// What the broker said about a sent message.
#[derive(Debug, Clone, PartialEq)]
pub struct SendResult {
    pub status: SendStatus,
    /// The client-side unique id (`UNIQ_KEY`); empty for batches.
    pub msg_id: String,
    /// The broker's offset message id(s), comma-separated for batches.
    pub offset_msg_id: String,
    pub queue: MessageQueue,
    pub queue_offset: i64,
    pub transaction_id: Option<String>,
}

/// Topic, tags and the like of a received message.
pub trait MessageExtExt {
    fn tag(&self) -> Option<&str>;
    fn keys(&self) -> Vec<&str>;
    /// The client-side unique id, or the offset id.
    fn msg_id(&self) -> String;
}

impl MessageExtExt for MessageExt {
    fn tag(&self) -> Option<&str> {
        property(&self.properties, message::property::TAGS)
    }
    fn keys(&self) -> Vec<&str> {
        property(&self.properties, message::property::KEYS)
            .map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
    fn msg_id(&self) -> String {
        property(&self.properties, message::property::UNIQ_KEY)
            .map(str::to_string)
            .unwrap_or_else(|| self.offset_msg_id())
    }
}

/// Inflates a body the sender zlib-compressed (sysFlag `COMPRESSED`).
pub(crate) fn inflate(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(body), &mut out)?;
    Ok(out)
}
