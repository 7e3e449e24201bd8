//! Producers: sync (with retries on another queue or broker), async, one-way and batch
//! sends, queue selectors, compression, and latency-based fault avoidance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader,
};
use ferromq_protocol::message::{self, sys_flag, BatchEntry};
use ferromq_protocol::RemotingCommand;

use crate::error::{ClientError, Result};
use crate::instance::{route_queues, unique_id, ClientInstance, Credentials};
use crate::message::{Message, MessageQueue, SendResult, SendStatus, SHARDING_KEY};

/// Chooses the queue of a message among a topic's writable queues.
pub trait QueueSelector: Send + Sync + 'static {
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> usize;
}

/// One queue after another.
#[derive(Default)]
pub struct RoundRobinSelector(AtomicUsize);

impl QueueSelector for RoundRobinSelector {
    fn select(&self, queues: &[MessageQueue], _msg: &Message) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed) % queues.len()
    }
}

/// Messages with the same sharding key go to the same queue (ordered messages). Uses the
/// Go client's FNV-1a, so Rust and Go producers agree on the queue of a key.
pub struct HashSelector;

impl QueueSelector for HashSelector {
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> usize {
        match msg.property(SHARDING_KEY) {
            Some(key) => {
                let mut h: u32 = 0x811c9dc5;
                for b in key.bytes() {
                    h ^= b as u32;
                    h = h.wrapping_mul(0x01000193);
                }
                h as usize % queues.len()
            }
            None => rand::random::<usize>() % queues.len(),
        }
    }
}

impl<F: Fn(&[MessageQueue], &Message) -> usize + Send + Sync + 'static> QueueSelector for F {
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> usize {
        self(queues, msg)
    }
}

/// Builds a [`Producer`].
pub struct ProducerBuilder {
    namesrv: Vec<String>,
    group: String,
    instance: String,
    send_timeout: Duration,
    retries: u32,
    compress_over: usize,
    max_message_size: usize,
    default_topic_queues: i32,
    selector: Arc<dyn QueueSelector>,
    pub(crate) credentials: Option<Credentials>,
}

impl ProducerBuilder {
    /// Name servers, `host:port` each.
    pub fn name_servers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, addrs: I) -> Self {
        self.namesrv = addrs.into_iter().map(Into::into).collect();
        self
    }
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }
    /// Distinguishes several producers of one group in one process.
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.instance = name.into();
        self
    }
    /// Budget of one send including retries (default 3 s).
    pub fn send_timeout(mut self, t: Duration) -> Self {
        self.send_timeout = t;
        self
    }
    /// Extra attempts of a sync send (default 2), each on another broker when possible.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }
    /// Bodies larger than this are zlib-compressed (default 4096).
    pub fn compress_over(mut self, bytes: usize) -> Self {
        self.compress_over = bytes;
        self
    }
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
    pub fn selector(mut self, s: impl QueueSelector) -> Self {
        self.selector = Arc::new(s);
        self
    }
    /// Signs every request, for brokers with ACL on.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::new(access_key, secret_key));
        self
    }

    /// Starts the producer: no network I/O until the first send.
    ///
    /// # Errors
    /// No name server given.
    pub fn build(self) -> Result<Producer> {
        if self.namesrv.is_empty() {
            return Err(ClientError::InvalidArgument(
                "at least one name server is required".into(),
            ));
        }
        let instance = ClientInstance::new(
            self.namesrv.clone(),
            &format!("{}-{}", self.group, self.instance),
            self.send_timeout,
        );
        instance.set_producer(&self.group);
        if let Some(c) = &self.credentials {
            instance.set_credentials(c.clone());
        }
        let replies = Arc::new(crate::request_reply::Replies::default());
        instance.add_handler(replies.clone());
        Ok(Producer {
            inner: Arc::new(ProducerInner {
                config: self,
                instance,
                faults: Mutex::new(HashMap::new()),
                replies,
            }),
        })
    }
}

pub(crate) struct ProducerInner {
    config: ProducerBuilder,
    pub(crate) instance: Arc<ClientInstance>,
    /// Broker name → avoided until.
    faults: Mutex<HashMap<String, Instant>>,
    /// Requests waiting for their replies.
    pub(crate) replies: Arc<crate::request_reply::Replies>,
}

/// A producer. Cheap to clone; all clones share connections.
#[derive(Clone)]
pub struct Producer {
    pub(crate) inner: Arc<ProducerInner>,
}

/// How a send is attempted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sync,
    Once,
}

impl Producer {
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder {
            namesrv: Vec::new(),
            group: "DEFAULT_PRODUCER".into(),
            instance: "DEFAULT".into(),
            send_timeout: Duration::from_secs(3),
            retries: 2,
            compress_over: 4096,
            max_message_size: 4 * 1024 * 1024,
            default_topic_queues: 4,
            selector: Arc::new(RoundRobinSelector::default()),
            credentials: None,
        }
    }

    pub fn group(&self) -> &str {
        &self.inner.config.group
    }

    /// Sends and waits for the broker's answer; retries up to `retries` times on another
    /// queue (another broker when there is one) within the send timeout.
    ///
    /// # Errors
    /// Every attempt failed, or the message is invalid.
    pub async fn send(&self, msg: Message) -> Result<SendResult> {
        self.send_with(msg, None, Mode::Sync, 0).await
    }

    /// Sends to one queue, without retries elsewhere.
    pub async fn send_to_queue(&self, msg: Message, queue: &MessageQueue) -> Result<SendResult> {
        self.send_with(msg, Some(queue.clone()), Mode::Once, 0)
            .await
    }

    /// Sends in the background and calls `callback` with the result (no retries, as the
    /// official clients' async sends).
    pub fn send_with_callback<F>(&self, msg: Message, callback: F)
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move { callback(me.send_with(msg, None, Mode::Once, 0).await) });
    }

    /// Fire and forget: the broker's answer is not awaited.
    pub async fn send_oneway(&self, msg: Message) -> Result<()> {
        let (req, addr) = self.prepare(msg, None, 0).await?;
        self.inner.instance.oneway(&addr, req).await
    }

    /// Sends messages of one topic as one batch to one queue.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult> {
        let Some(first) = msgs.first() else {
            return Err(ClientError::InvalidArgument("an empty batch".into()));
        };
        let topic = first.topic.clone();
        if msgs.iter().any(|m| m.topic != topic) {
            return Err(ClientError::InvalidArgument(
                "a batch must have one topic".into(),
            ));
        }
        let mut body = BytesMut::new();
        for m in &msgs {
            let mut props = m.properties.clone();
            props
                .entry(message::property::UNIQ_KEY.into())
                .or_insert_with(unique_id);
            let entry = BatchEntry {
                flag: m.flag,
                body: m.body.clone(),
                properties: message::encode_properties(
                    props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            };
            message::encode_batch_entry(&entry, &mut body);
        }
        let batch = Message {
            topic,
            body: body.freeze(),
            ..Default::default()
        };
        self.send_with(batch, None, Mode::Sync, 1).await
    }

    async fn queues(
        &self,
        topic: &str,
    ) -> Result<(Vec<MessageQueue>, ferromq_protocol::body::TopicRouteData)> {
        let (route, _) = self
            .inner
            .instance
            .publish_route(topic, self.inner.config.default_topic_queues)
            .await?;
        let queues = route_queues(topic, &route, true);
        if queues.is_empty() {
            return Err(ClientError::NoRoute {
                topic: topic.into(),
            });
        }
        Ok((queues, route))
    }

    fn pick(&self, queues: &[MessageQueue], msg: &Message, avoid: Option<&str>) -> MessageQueue {
        let now = Instant::now();
        let faults = self.inner.faults.lock().expect("fault table lock");
        let healthy: Vec<MessageQueue> = queues
            .iter()
            .filter(|q| {
                Some(q.broker_name.as_str()) != avoid
                    && faults.get(&q.broker_name).is_none_or(|until| *until <= now)
            })
            .cloned()
            .collect();
        let pool = if healthy.is_empty() {
            queues
        } else {
            &healthy[..]
        };
        pool[self.inner.config.selector.select(pool, msg) % pool.len()].clone()
    }

    /// Builds the request for one attempt (batch: 0 = single message, 1 = batch body).
    async fn prepare(
        &self,
        mut msg: Message,
        queue: Option<MessageQueue>,
        batch: u8,
    ) -> Result<(RemotingCommand, String)> {
        let (queues, route) = self.queues(&msg.topic).await?;
        let queue = match queue {
            Some(q) => q,
            None => self.pick(&queues, &msg, None),
        };
        let addr = ClientInstance::master_addr(&route, &queue.broker_name).ok_or_else(|| {
            ClientError::NoRoute {
                topic: msg.topic.clone(),
            }
        })?;
        Ok((self.encode(&mut msg, &queue, batch)?, addr))
    }

    fn encode(
        &self,
        msg: &mut Message,
        queue: &MessageQueue,
        batch: u8,
    ) -> Result<RemotingCommand> {
        let mut sys = 0;
        if batch == 0 {
            msg.properties
                .entry(message::property::UNIQ_KEY.into())
                .or_insert_with(unique_id);
            if msg.property(message::property::TRAN_MSG) == Some("true") {
                sys |= sys_flag::TRANSACTION_PREPARED;
            }
            if msg.body.len() > self.inner.config.compress_over {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(5));
                std::io::Write::write_all(&mut enc, &msg.body).expect("writing to memory");
                msg.body = Bytes::from(enc.finish().expect("compressing to memory"));
                sys |= sys_flag::COMPRESSED;
            }
        }
        if msg.body.len() > self.inner.config.max_message_size {
            return Err(ClientError::InvalidArgument(format!(
                "message body of {} bytes exceeds {}",
                msg.body.len(),
                self.inner.config.max_message_size
            )));
        }
        let header = SendMessageRequestHeader {
            producer_group: self.inner.config.group.clone(),
            topic: msg.topic.clone(),
            default_topic: Some("TBW102".into()),
            default_topic_queue_nums: Some(self.inner.config.default_topic_queues),
            queue_id: queue.queue_id,
            sys_flag: sys,
            born_timestamp: now_ms(),
            flag: msg.flag,
            properties: Some(if batch == 0 {
                msg.encoded_properties()
            } else {
                String::new()
            }),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: Some(batch == 1),
        };
        let code = if batch == 1 {
            request::SEND_BATCH_MESSAGE
        } else if crate::request_reply::is_reply(msg) {
            request::SEND_REPLY_MESSAGE_V2
        } else {
            request::SEND_MESSAGE_V2
        };
        let mut req = RemotingCommand::request(code).with_body(msg.body.clone());
        header.encode_v2(&mut req.ext_fields);
        Ok(req)
    }

    async fn send_with(
        &self,
        msg: Message,
        fixed: Option<MessageQueue>,
        mode: Mode,
        batch: u8,
    ) -> Result<SendResult> {
        let started = Instant::now();
        let budget = self.inner.config.send_timeout;
        let attempts = if mode == Mode::Sync && fixed.is_none() {
            self.inner.config.retries + 1
        } else {
            1
        };
        let uniq = msg
            .property(message::property::UNIQ_KEY)
            .map(str::to_string)
            .unwrap_or_else(unique_id);
        let mut msg = msg;
        if batch == 0 {
            msg.properties
                .insert(message::property::UNIQ_KEY.into(), uniq.clone());
        }
        let mut last_err = None;
        let mut avoid: Option<String> = None;
        for attempt in 0..attempts {
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let (queues, route) = match self.queues(&msg.topic).await {
                Ok(q) => q,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let queue = fixed
                .clone()
                .unwrap_or_else(|| self.pick(&queues, &msg, avoid.as_deref()));
            let Some(addr) = ClientInstance::master_addr(&route, &queue.broker_name) else {
                last_err = Some(ClientError::NoRoute {
                    topic: msg.topic.clone(),
                });
                continue;
            };
            let mut m = msg.clone();
            let req = self.encode(&mut m, &queue, batch)?;
            let outcome = self.inner.instance.invoke_timeout(&addr, req, left).await;
            match outcome.and_then(|resp| {
                self.result(resp, &queue, &addr, if batch == 0 { &uniq } else { "" })
            }) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.mark_fault(&queue.broker_name);
                    if !retryable(&e) || attempt + 1 == attempts {
                        return Err(wrap(msg.topic.clone(), attempt + 1, e));
                    }
                    avoid = Some(queue.broker_name.clone());
                    last_err = Some(e);
                }
            }
        }
        Err(wrap(
            msg.topic.clone(),
            attempts,
            last_err.unwrap_or(ClientError::Remoting(
                ferromq_remoting::RemotingError::Timeout {
                    peer: String::new(),
                    code: request::SEND_MESSAGE_V2,
                    timeout_ms: budget.as_millis() as u64,
                },
            )),
        ))
    }

    /// Avoids a broker that failed: for 30 s, as the Java client's fault strategy does for
    /// errors.
    fn mark_fault(&self, broker: &str) {
        self.inner
            .faults
            .lock()
            .expect("fault table lock")
            .insert(broker.into(), Instant::now() + Duration::from_secs(30));
    }

    fn result(
        &self,
        resp: RemotingCommand,
        queue: &MessageQueue,
        addr: &str,
        uniq: &str,
    ) -> Result<SendResult> {
        let status = match resp.code {
            response::SUCCESS => SendStatus::Ok,
            response::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
            11 => SendStatus::SlaveNotAvailable,
            12 => SendStatus::FlushSlaveTimeout,
            code => {
                return Err(ClientError::Broker {
                    operation: "SEND_MESSAGE",
                    addr: addr.into(),
                    code,
                    remark: resp.remark.unwrap_or_default(),
                })
            }
        };
        let h = SendMessageResponseHeader::decode(&resp.ext_fields).map_err(|e| {
            ClientError::Malformed {
                operation: "SEND_MESSAGE",
                reason: e.to_string(),
            }
        })?;
        Ok(SendResult {
            status,
            msg_id: uniq.to_string(),
            offset_msg_id: h.msg_id,
            queue: MessageQueue {
                queue_id: h.queue_id,
                ..queue.clone()
            },
            queue_offset: h.queue_offset,
            transaction_id: h.transaction_id,
        })
    }

    /// Stops the producer and closes its connections.
    pub fn shutdown(&self) {
        self.inner.instance.close();
    }
}

/// Errors worth another attempt elsewhere (the official clients retry these codes).
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Broker { code, .. } => matches!(*code, 1 | 2 | 14 | 16 | 17),
        ClientError::Remoting(_) | ClientError::NoRoute { .. } => true,
        _ => false,
    }
}

fn wrap(topic: String, attempts: u32, e: ClientError) -> ClientError {
    if attempts <= 1 {
        return e;
    }
    ClientError::SendFailed {
        topic,
        attempts,
        last: Box::new(e),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
