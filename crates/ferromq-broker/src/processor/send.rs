//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320).

use ferromq_protocol::body::{perm, TopicConfig};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader,
};
use ferromq_protocol::message::{self, decode_batch, property, MessageExt, MAX_PROPERTIES_BYTES};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use rand::Rng;

use crate::store_service::PutError;
use crate::topic::{validate_topic_name, PendingWrite, RETRY_GROUP_TOPIC_PREFIX};
use crate::Broker;

/// A topic this send auto-created: in the table already, not yet on disk nor known to the
/// name servers. Announcing it overlaps the file write and the registration with the
/// message's append; a send refused before that still gets it written (on drop).
struct NewTopic<'a> {
    broker: &'a Broker,
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
        tokio::join!(persist, crate::register::register_all(self.broker));
    }
}

impl Drop for NewTopic<'_> {
    fn drop(&mut self) {
        if let Some(write) = self.write.take() {
            run_logged(write);
            self.broker.register_now.notify_one();
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
struct Outgoing {
    flag: i32,
    body: bytes::Bytes,
    properties: String,
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
        let illegal = |remark: String| {
            RemotingCommand::error_response(req, response::MESSAGE_ILLEGAL, remark)
        };
        if let Err(why) = validate_topic_name(&h.topic) {
            return RemotingCommand::error_response(req, response::INVALID_PARAMETER, why);
        }
        // One snapshot for the whole request: a run-time change applies from the next one.
        let config = self.config();
        // Apache refuses only orderly topics here and lets a stale client write to a broker
        // being drained; FerroMQ refuses every send, which clients retry on another broker.
        if config.broker_permission & perm::WRITE == 0 {
            return RemotingCommand::error_response(
                req,
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] sending message is forbidden",
                    config.advertised_addr()
                ),
            );
        }
        let (topic, new_topic) = match self.topic_for_send(req, &h).await {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        if topic.perm & perm::WRITE == 0 {
            return RemotingCommand::error_response(
                req,
                response::NO_PERMISSION,
                format!("the topic[{}] sending message is forbidden", h.topic),
            );
        }
        let queue_nums = topic.write_queue_nums.max(topic.read_queue_nums);
        let queue_id = if h.queue_id < 0 {
            rand::thread_rng().gen_range(0..topic.write_queue_nums.max(1))
        } else if h.queue_id >= queue_nums {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.writeQueueNums:[{}]",
                    h.queue_id, h.topic, topic.write_queue_nums
                ),
            );
        } else {
            h.queue_id
        };
        let header_props = h.properties.take().unwrap_or_default();
        if header_props.len() > MAX_PROPERTIES_BYTES {
            return illegal(format!(
                "the message properties length {} exceeds {MAX_PROPERTIES_BYTES}",
                header_props.len()
            ));
        }
        if req.body.len() > config.max_message_size {
            return illegal(format!(
                "the message body size over max value, MAX: {}",
                config.max_message_size
            ));
        }
        let batch = req.code == request::SEND_BATCH_MESSAGE;
        let wait_flush = property(&header_props, message::property::WAIT) != Some("false");
        let outgoing: Vec<Outgoing> = if batch {
            match decode_batch(&req.body) {
                Ok(entries) if !entries.is_empty() => entries
                    .into_iter()
                    .map(|e| Outgoing {
                        flag: e.flag,
                        body: e.body,
                        properties: e.properties,
                    })
                    .collect(),
                Ok(_) => return illegal("the batch is empty".into()),
                Err(e) => return illegal(format!("the batch body is malformed: {e}")),
            }
        } else {
            vec![Outgoing {
                flag: h.flag,
                body: req.body.clone(),
                properties: header_props,
            }]
        };
        let mut msgs = Vec::with_capacity(outgoing.len());
        let mut uniq_key = None;
        for out in outgoing {
            let mut props = out.properties;
            let prepared = property(&props, message::property::TRAN_MSG) == Some("true");
            if prepared && batch {
                return illegal("a batch cannot carry transaction messages".into());
            }
            if !batch && property(&props, message::property::UNIQ_KEY).is_none() {
                message::push_property(
                    &mut props,
                    message::property::UNIQ_KEY,
                    &self.next_uniq_key(),
                );
            }
            if !batch {
                uniq_key = property(&props, message::property::UNIQ_KEY).map(str::to_string);
            }
            message::push_property(&mut props, message::property::CLUSTER, &config.cluster_name);
            msgs.push(MessageExt {
                topic: h.topic.clone(),
                queue_id,
                flag: out.flag,
                sys_flag: h.sys_flag,
                born_timestamp: h.born_timestamp,
                born_host: conn.peer(),
                reconsume_times: h.reconsume_times.unwrap_or(0),
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
        let (put, ()) = tokio::join!(self.put_messages(msgs, wait_flush), announce);
        let (code, results) = match put {
            Ok(r) => (response::SUCCESS, r),
            Err(PutError::FlushTimeout(r)) => (response::FLUSH_DISK_TIMEOUT, r),
            Err(PutError::SlaveNotAvailable(r)) => (response::SLAVE_NOT_AVAILABLE, r),
            Err(PutError::SlaveTimeout(r)) => (response::FLUSH_SLAVE_TIMEOUT, r),
            Err(PutError::ShuttingDown) => {
                return RemotingCommand::error_response(
                    req,
                    response::SERVICE_NOT_AVAILABLE,
                    "the broker is shutting down",
                )
            }
            Err(PutError::Illegal(why)) => return illegal(why),
            Err(PutError::DiskFull(why)) => {
                return RemotingCommand::error_response(req, response::SERVICE_NOT_AVAILABLE, why)
            }
            Err(e @ PutError::InSyncReplicasNotEnough) => {
                return RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string())
            }
            Err(e @ PutError::LeaseExpired) => {
                return RemotingCommand::error_response(
                    req,
                    response::SERVICE_NOT_AVAILABLE,
                    e.to_string(),
                )
            }
            Err(e @ PutError::Slave) => {
                return RemotingCommand::error_response(
                    req,
                    response::SERVICE_NOT_AVAILABLE,
                    e.to_string(),
                )
            }
            Err(e) => {
                return RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string())
            }
        };
        self.stats.record_put(&h.topic, results.len() as u64);
        let msg_id = match results.as_slice() {
            [one] => message::offset_msg_id(self.store_host, one.phys_offset as i64),
            many => many
                .iter()
                .map(|r| message::offset_msg_id(self.store_host, r.phys_offset as i64))
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut resp = RemotingCommand::response_to(req, code);
        SendMessageResponseHeader {
            msg_id,
            queue_id,
            queue_offset: results.first().map_or(0, |r| r.queue_offset as i64),
            transaction_id: uniq_key,
        }
        .encode(&mut resp.ext_fields);
        resp.with_field("MSG_REGION", "DefaultRegion")
            .with_field("TRACE_ON", "true")
    }

    /// The topic's config, auto-creating it when allowed; otherwise the error reply. A
    /// topic created from a template comes with its announcement, which the send awaits.
    async fn topic_for_send(
        &self,
        req: &RemotingCommand,
        h: &SendMessageRequestHeader,
    ) -> Result<(TopicConfig, Option<NewTopic<'_>>), RemotingCommand> {
        if let Some(t) = self.topics.get(&h.topic) {
            return Ok((t, None));
        }
        if h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            return match self
                .topics
                .ensure_system_topic(&h.topic, 1, perm::READ | perm::WRITE)
            {
                Ok((t, _)) => {
                    crate::register::register_all(self).await;
                    Ok((t, None))
                }
                Err(e) => Err(RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("creating the topic failed: {e}"),
                )),
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
                    write,
                }),
            )),
            None => Err(RemotingCommand::error_response(
                req,
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            )),
        }
    }
}
