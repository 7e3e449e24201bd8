//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320).

use ferromq_protocol::body::{perm, TopicConfig};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, RecallMessageRequestHeader, SendMessageRequestHeader, SendMessageResponseHeader,
};
use ferromq_protocol::message::{self, decode_batch, property, MessageExt, MAX_PROPERTIES_BYTES};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use rand::Rng;

use crate::store_service::PutError;
use crate::topic::{validate_topic_name, PendingWrite, RETRY_GROUP_TOPIC_PREFIX};
use crate::{Broker, BrokerError};

/// A topic this send auto-created: in the table already, not yet on disk nor known to the
/// name servers. Announcing it overlaps the file write and the registration with the
/// message's append; a send refused before that still gets it written (on drop).
struct NewTopic<'a> {
    broker: &'a Broker,
    topic: String,
    write: Option<PendingWrite>,
}

impl NewTopic<'_> {
    async fn announce(mut self) {
        let Some(write) = self.write.take() else {
            return;
        };
        let persist = async {
            if let Err(e) = tokio::task::spawn_blocking(move || run_logged(write)).await {
                tracing::error!(error = %e, "writing an auto-created topic panicked");
            }
        };
        tokio::join!(
            persist,
            crate::register::register_topics(self.broker, std::slice::from_ref(&self.topic))
        );
    }
}

impl Drop for NewTopic<'_> {
    fn drop(&mut self) {
        if let Some(write) = self.write.take() {
            run_logged(write);
            self.broker.announce_topics([self.topic.clone()]);
        }
    }
}

/// The message is stored either way, so a failed write is logged rather than answered:
/// the topic stays in the table, and the next change to the table writes the file again.
fn run_logged(write: PendingWrite) {
    if let Err(e) = write.run() {
        tracing::error!(error = %e, "writing an auto-created topic failed");
    }
}

/// One message to store, before encoding.
pub struct OutgoingMessage {
    pub flag: i32,
    pub body: bytes::Bytes,
    /// Apache's property string (`name\u0001value\u0002…`).
    pub properties: String,
}

/// One send, as either front asks it.
pub struct SendRequest {
    pub topic: String,
    /// A queue, or `None` for a random writable one.
    pub queue_id: Option<i32>,
    pub messages: Vec<OutgoingMessage>,
    pub born_host: std::net::SocketAddr,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub reconsume_times: i32,
    /// Remoting's auto-creation template: the topic is created from it when missing.
    pub default_topic: Option<String>,
    pub default_topic_queue_nums: Option<i32>,
    /// A batch keeps its clients' ids and carries no transaction messages.
    pub batch: bool,
    /// Under SYNC_FLUSH, wait for the disk (the `WAIT` property).
    pub wait_flush: bool,
}

/// Stored, but not as durably as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    FlushTimeout,
    SlaveNotAvailable,
    SlaveTimeout,
}

/// What a send stored.
pub struct SendOutcome {
    pub queue_id: i32,
    pub results: Vec<ferromq_store::AppendResult>,
    /// Apache's offset message ids, one per message.
    pub offset_msg_ids: Vec<String>,
    /// The single message's `UNIQ_KEY` (its client-facing id).
    pub uniq_key: Option<String>,
    /// A single timer message's recall handle (RecallMessage withdraws it before it is due).
    pub recall_handle: Option<String>,
    pub shortfall: Option<Shortfall>,
}

impl Broker {
    pub(crate) async fn send_message(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let mut h = match SendMessageRequestHeader::decode_request(req) {
            Ok(h) => h,
            Err(e) => {
                return RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string())
            }
        };
        let header_props = h.properties.take().unwrap_or_default();
        if let Some(requester) = property(&header_props, message::property::REPLY_TO_CLIENT) {
            // A request message (request-reply): its reply comes back over this connection.
            self.clients.note_requester(requester, conn);
        }
        let batch = req.code == request::SEND_BATCH_MESSAGE;
        let messages = if batch {
            match decode_batch(&req.body) {
                Ok(entries) => entries
                    .into_iter()
                    .map(|e| OutgoingMessage {
                        flag: e.flag,
                        body: e.body,
                        properties: e.properties,
                    })
                    .collect(),
                Err(e) => {
                    return RemotingCommand::error_response(
                        req,
                        response::MESSAGE_ILLEGAL,
                        format!("the batch body is malformed: {e}"),
                    )
                }
            }
        } else {
            vec![OutgoingMessage {
                flag: h.flag,
                body: req.body.clone(),
                properties: header_props.clone(),
            }]
        };
        let send = SendRequest {
            topic: std::mem::take(&mut h.topic),
            queue_id: (h.queue_id >= 0).then_some(h.queue_id),
            messages,
            born_host: conn.peer(),
            sys_flag: h.sys_flag,
            born_timestamp: h.born_timestamp,
            reconsume_times: h.reconsume_times.unwrap_or(0),
            default_topic: h.default_topic.take(),
            default_topic_queue_nums: h.default_topic_queue_nums,
            batch,
            wait_flush: property(&header_props, message::property::WAIT) != Some("false"),
        };
        let outcome = match self.send(send).await {
            Ok(o) => o,
            Err(e) => return e.to_response(req),
        };
        let code = match outcome.shortfall {
            None => response::SUCCESS,
            Some(Shortfall::FlushTimeout) => response::FLUSH_DISK_TIMEOUT,
            Some(Shortfall::SlaveNotAvailable) => response::SLAVE_NOT_AVAILABLE,
            Some(Shortfall::SlaveTimeout) => response::FLUSH_SLAVE_TIMEOUT,
        };
        let mut resp = RemotingCommand::response_to(req, code);
        SendMessageResponseHeader {
            msg_id: outcome.offset_msg_ids.join(","),
            queue_id: outcome.queue_id,
            queue_offset: outcome.results.first().map_or(0, |r| r.queue_offset as i64),
            transaction_id: outcome.uniq_key,
            recall_handle: outcome.recall_handle,
        }
        .encode(&mut resp.ext_fields);
        let config = self.config();
        resp.with_field(message::property::MSG_REGION, &config.region_id)
            .with_field(message::property::TRACE_ON, config.trace_on)
    }

    /// Stores messages a producer sent: checks the broker, topic and messages, auto-creates
    /// the topic from a template when asked, assigns ids, and stores them.
    ///
    /// # Errors
    /// Why nothing was stored.
    pub async fn send(&self, h: SendRequest) -> Result<SendOutcome, BrokerError> {
        validate_topic_name(&h.topic).map_err(BrokerError::InvalidParameter)?;
        // One snapshot for the whole request: a run-time change applies from the next one.
        let config = self.config();
        // Apache refuses only orderly topics here and lets a stale client write to a broker
        // being drained; FerroMQ refuses every send, which clients retry on another broker.
        if config.broker_permission & perm::WRITE == 0 {
            return Err(BrokerError::NoPermission(format!(
                "the broker[{}] sending message is forbidden",
                config.advertised_addr()
            )));
        }
        let (topic, new_topic) = self.topic_for_send(&h).await?;
        if topic.perm & perm::WRITE == 0 {
            return Err(BrokerError::NoPermission(format!(
                "the topic[{}] sending message is forbidden",
                h.topic
            )));
        }
        let queue_nums = topic.write_queue_nums.max(topic.read_queue_nums);
        let queue_id = match h.queue_id {
            None => rand::thread_rng().gen_range(0..topic.write_queue_nums.max(1)),
            Some(q) if q < 0 || q >= queue_nums => {
                return Err(BrokerError::QueueIllegal(format!(
                    "queueId[{q}] is illegal, topic:[{}] topicConfig.writeQueueNums:[{}]",
                    h.topic, topic.write_queue_nums
                )))
            }
            Some(q) => q,
        };
        if h.messages.is_empty() {
            return Err(BrokerError::MessageIllegal("the batch is empty".into()));
        }
        let mut h = h;
        // Apache reads the type off the request's (first) message. Apache 5.4's priority
        // messages: the priority picks the queue (at most the last), and a message that is
        // not a priority one (also delayed, ordered or transactional) loses the property.
        let (message_type, priority) = {
            let first = SendProps::of(&h.messages[0].properties);
            (
                first.message_type(),
                (!h.batch).then(|| first.priority()).flatten(),
            )
        };
        let queue_id = match priority {
            Some(Ok(p)) => p.min(topic.write_queue_nums.max(1) - 1),
            Some(Err(())) => {
                let props = &mut h.messages[0].properties;
                *props = message::without_properties(props, &[message::property::PRIORITY]);
                queue_id
            }
            None => queue_id,
        };
        let mut msgs = Vec::with_capacity(h.messages.len());
        let mut uniq_key = None;
        let mut due_ms = None;
        let now = crate::now_ms();
        for out in h.messages {
            let mut props = out.properties;
            if props.len() > MAX_PROPERTIES_BYTES {
                return Err(BrokerError::MessageIllegal(format!(
                    "the message properties length {} exceeds {MAX_PROPERTIES_BYTES}",
                    props.len()
                )));
            }
            if out.body.len() > config.max_message_size {
                return Err(BrokerError::MessageIllegal(format!(
                    "the message body size over max value, MAX: {}",
                    config.max_message_size
                )));
            }
            // One pass over the properties for everything below (the string grows after).
            let (prepared, given_uniq_key, has_region, has_trace_on) = {
                let found = SendProps::of(&props);
                if found.lite_topic.is_some() {
                    return Err(BrokerError::MessageIllegal(
                        "lite topics (RIP-83, Apache 5.5) are not supported by FerroMQ; send to an ordinary topic".into(),
                    ));
                }
                if !h.batch {
                    due_ms = found.due(now);
                }
                (
                    found.tran_msg == Some("true"),
                    found.uniq_key.map(str::to_string),
                    found.msg_region.is_some(),
                    found.trace_on.is_some(),
                )
            };
            if prepared && h.batch {
                return Err(BrokerError::MessageIllegal(
                    "a batch cannot carry transaction messages".into(),
                ));
            }
            if !h.batch {
                let key = given_uniq_key.unwrap_or_else(|| {
                    let key = self.next_uniq_key();
                    message::push_property(&mut props, message::property::UNIQ_KEY, &key);
                    key
                });
                uniq_key = Some(key);
            }
            message::push_property(&mut props, message::property::CLUSTER, &config.cluster_name);
            // As Apache's broker: consumers' traces take the region from the message, and
            // a Java consumer drops its trace records without one.
            // (A message sent again as it was consumed carries them already.)
            if !has_region {
                message::push_property(
                    &mut props,
                    message::property::MSG_REGION,
                    &config.region_id,
                );
            }
            if !has_trace_on {
                message::push_property(
                    &mut props,
                    message::property::TRACE_ON,
                    if config.trace_on { "true" } else { "false" },
                );
            }
            msgs.push(MessageExt {
                topic: h.topic.clone(),
                queue_id,
                flag: out.flag,
                sys_flag: h.sys_flag,
                born_timestamp: h.born_timestamp,
                born_host: h.born_host,
                reconsume_times: h.reconsume_times,
                body: out.body,
                properties: props,
                ..Default::default()
            });
            if prepared {
                if let Some(m) = msgs.last_mut() {
                    crate::transaction::to_half(m);
                }
            }
        }
        // A consumer started right after the first send must find the new topic's route,
        // so the answer waits for the announcement too.
        let announce = async {
            if let Some(new_topic) = new_topic {
                new_topic.announce().await
            }
        };
        let (put, ()) = tokio::join!(self.put_messages(msgs, h.wait_flush), announce);
        let (shortfall, results) = match put {
            Ok(r) => (None, r),
            Err(PutError::FlushTimeout(r)) => (Some(Shortfall::FlushTimeout), r),
            Err(PutError::SlaveNotAvailable(r)) => (Some(Shortfall::SlaveNotAvailable), r),
            Err(PutError::SlaveTimeout(r)) => (Some(Shortfall::SlaveTimeout), r),
            Err(e) => return Err(e.into()),
        };
        self.stats.record_put(&h.topic, results.len() as u64);
        self.metrics.sent(
            &h.topic,
            message_type,
            results.len() as u64,
            results.iter().map(|r| u64::from(r.record_bytes)).sum(),
        );
        let offset_msg_ids = results
            .iter()
            .map(|r| message::offset_msg_id(self.store_host, r.phys_offset as i64))
            .collect();
        let recall_handle = match (&uniq_key, due_ms) {
            (Some(uniq), Some(due)) if !h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) => Some(
                ferromq_protocol::recall::RecallHandle {
                    topic: h.topic.clone(),
                    broker_name: config.broker_name.clone(),
                    due_ms: due.saturating_add(1),
                    uniq_key: uniq.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(SendOutcome {
            queue_id,
            results,
            offset_msg_ids,
            uniq_key,
            recall_handle,
            shortfall,
        })
    }

    /// RECALL_MESSAGE (370): withdraws a timer message by the handle its send returned.
    pub(crate) fn recall(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match super::header::<RecallMessageRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        match self.recall_message(&h.topic, &h.recall_handle) {
            Ok(id) => RemotingCommand::response_to(req, response::SUCCESS).with_field("msgId", id),
            Err(e) => e.to_response(req),
        }
    }

    /// The topic's config, auto-creating it when allowed; otherwise the error reply. A
    /// topic created from a template comes with its announcement, which the send awaits.
    async fn topic_for_send(
        &self,
        h: &SendRequest,
    ) -> Result<(TopicConfig, Option<NewTopic<'_>>), BrokerError> {
        if let Some(t) = self.topics.get(&h.topic) {
            return Ok((t, None));
        }
        if h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            return match self
                .topics
                .ensure_system_topic(&h.topic, 1, perm::READ | perm::WRITE)
            {
                Ok((t, created)) => {
                    if created {
                        crate::register::register_topics(self, std::slice::from_ref(&h.topic))
                            .await;
                    }
                    Ok((t, None))
                }
                Err(e) => Err(BrokerError::Internal(format!(
                    "creating the topic failed: {e}"
                ))),
            };
        }
        let template = h.default_topic.as_deref().filter(|t| !t.is_empty());
        let queues = h
            .default_topic_queue_nums
            .unwrap_or(self.config().default_topic_queue_nums);
        match template.and_then(|tpl| self.topics.create_from_template(&h.topic, tpl, queues)) {
            Some((t, write)) => Ok((
                t,
                Some(NewTopic {
                    broker: self,
                    topic: h.topic.clone(),
                    write,
                }),
            )),
            None => Err(BrokerError::TopicNotFound(h.topic.clone())),
        }
    }
}

/// The properties a send reads, found in one pass over the string (a send used to scan it
/// a dozen times). The first of a repeated name counts, as [`property`] finds it.
#[derive(Default)]
struct SendProps<'a> {
    tran_msg: Option<&'a str>,
    uniq_key: Option<&'a str>,
    msg_region: Option<&'a str>,
    trace_on: Option<&'a str>,
    lite_topic: Option<&'a str>,
    priority: Option<&'a str>,
    sharding_key: Option<&'a str>,
    delay: Option<&'a str>,
    timer_deliver_ms: Option<&'a str>,
    timer_delay_sec: Option<&'a str>,
    timer_delay_ms: Option<&'a str>,
    start_deliver_time: Option<&'a str>,
}

impl<'a> SendProps<'a> {
    fn of(props: &'a str) -> Self {
        use message::property as p;
        let mut found = SendProps::default();
        for (name, value) in message::properties_iter(props) {
            let slot = match name {
                p::TRAN_MSG => &mut found.tran_msg,
                p::UNIQ_KEY => &mut found.uniq_key,
                p::MSG_REGION => &mut found.msg_region,
                p::TRACE_ON => &mut found.trace_on,
                p::LITE_TOPIC => &mut found.lite_topic,
                p::PRIORITY => &mut found.priority,
                p::SHARDING_KEY => &mut found.sharding_key,
                p::DELAY => &mut found.delay,
                p::TIMER_DELIVER_MS => &mut found.timer_deliver_ms,
                p::TIMER_DELAY_SEC => &mut found.timer_delay_sec,
                p::TIMER_DELAY_MS => &mut found.timer_delay_ms,
                p::START_DELIVER_TIME => &mut found.start_deliver_time,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        found
    }

    /// Apache's `message_type` metric label.
    fn message_type(&self) -> &'static str {
        if self.tran_msg == Some("true") {
            "transaction"
        } else if self.sharding_key.is_some() {
            "fifo"
        } else if self.start_deliver_time.is_some() || self.delays() {
            "delay"
        } else {
            "normal"
        }
    }

    fn delays(&self) -> bool {
        self.delay.is_some()
            || self.timer_deliver_ms.is_some()
            || self.timer_delay_sec.is_some()
            || self.timer_delay_ms.is_some()
    }

    /// `Ok` for a priority message (Apache's `TopicMessageType` of its properties is
    /// PRIORITY), `Err` when it carries the property but is of another type or the value
    /// is not a number of 0 and up, `None` without one.
    fn priority(&self) -> Option<Result<i32, ()>> {
        let value = self.priority?;
        let other_type =
            self.tran_msg == Some("true") || self.delays() || self.sharding_key.is_some();
        match value.trim().parse::<i32>() {
            Ok(n) if n >= 0 && !other_type => Some(Ok(n)),
            _ => Some(Err(())),
        }
    }

    /// When a timer message is due, if its properties ask for a time still ahead (in the
    /// order Apache reads them).
    fn due(&self, now: i64) -> Option<i64> {
        let parse = |v: Option<&str>| v.and_then(|v| v.trim().parse::<i64>().ok());
        parse(self.timer_deliver_ms)
            .or_else(|| {
                parse(self.timer_delay_sec).map(|s| now.saturating_add(s.saturating_mul(1000)))
            })
            .or_else(|| parse(self.timer_delay_ms).map(|ms| now.saturating_add(ms)))
            .or_else(|| parse(self.start_deliver_time))
            .filter(|due| *due > now)
    }
}

#[cfg(test)]
mod send_props_tests {
    use super::*;

    #[test]
    fn one_pass_finds_type_due_time_and_keys() {
        let now = 1_000_000;
        // properties, message type, due time
        let cases: [(&str, &str, Option<i64>); 8] = [
            ("", "normal", None),
            ("TAGS\u{1}a\u{2}", "normal", None),
            (
                "TRAN_MSG\u{1}true\u{2}UNIQ_KEY\u{1}u1\u{2}",
                "transaction",
                None,
            ),
            ("__SHARDINGKEY\u{1}g\u{2}TRACE_ON\u{1}false", "fifo", None),
            ("DELAY\u{1}3\u{2}MSG_REGION\u{1}r\u{2}", "delay", None),
            // TIMER_DELIVER_MS is read before TIMER_DELAY_SEC, as Apache reads them.
            (
                "TIMER_DELAY_SEC\u{1}5\u{2}TIMER_DELIVER_MS\u{1}2000000\u{2}",
                "delay",
                Some(2_000_000),
            ),
            ("TIMER_DELAY_MS\u{1}700\u{2}", "delay", Some(1_000_700)),
            // A time already past is no due time.
            ("__STARTDELIVERTIME\u{1}999\u{2}", "delay", None),
        ];
        for (props, kind, due) in cases {
            let found = SendProps::of(props);
            assert_eq!(
                (found.message_type(), found.due(now)),
                (kind, due),
                "{props:?}"
            );
            assert_eq!(
                found.uniq_key,
                property(props, message::property::UNIQ_KEY),
                "{props:?}"
            );
            assert_eq!(
                found.msg_region,
                property(props, message::property::MSG_REGION),
                "{props:?}"
            );
        }
        let repeated = SendProps::of("UNIQ_KEY\u{1}first\u{2}UNIQ_KEY\u{1}second\u{2}");
        assert_eq!(repeated.uniq_key, Some("first"));
        let p = |s: &str| SendProps::of(s).priority();
        assert_eq!(p("_SYS_MSG_PRIORITY_\u{1}2\u{2}"), Some(Ok(2)));
        assert_eq!(
            p("_SYS_MSG_PRIORITY_\u{1}2\u{2}DELAY\u{1}1\u{2}"),
            Some(Err(()))
        );
        assert_eq!(p("_SYS_MSG_PRIORITY_\u{1}-1\u{2}"), Some(Err(())));
        assert_eq!(p("TAGS\u{1}x\u{2}"), None);
    }
}
