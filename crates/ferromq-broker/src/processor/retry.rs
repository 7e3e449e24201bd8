//! CONSUMER_SEND_MSG_BACK (36): a message its consumer failed goes to `%RETRY%<group>`
//! with delay level 3 + reconsume times (10 s, 30 s, 1 m, …), or to `%DLQ%<group>` once
//! it has been retried `maxReconsumeTimes` times or the client asks for it (level < 0).
//! Mirrors `AbstractSendMessageProcessor.consumerSendMsgBack`.

use ferromq_protocol::body::perm;
use ferromq_protocol::code::response;
use ferromq_protocol::header::ConsumerSendMsgBackRequestHeader;
use ferromq_protocol::message::{self, property, MessageExt};
use ferromq_protocol::RemotingCommand;
use rand::Rng;

use super::header;
use crate::store_service::PutError;
use crate::topic::{DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};
use crate::{Broker, BrokerError};

/// Retries before a message is dead-lettered when the client does not say.
pub const DEFAULT_MAX_RECONSUME_TIMES: i32 = 16;
/// Client version from which the header's maxReconsumeTimes is honoured (V3_4_9).
const MAX_RECONSUME_HEADER_SINCE_VERSION: i32 = 121;

impl Broker {
    pub(crate) async fn consumer_send_msg_back(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ConsumerSendMsgBackRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let original = match (h.offset >= 0)
            .then(|| self.store.store().read_message(h.offset as u64))
        {
            Some(Ok(Some(record))) => match MessageExt::decode(&record) {
                Ok((m, _)) => m,
                Err(e) => {
                    return RemotingCommand::error_response(
                        req,
                        response::SYSTEM_ERROR,
                        e.to_string(),
                    )
                }
            },
            Some(Err(e)) => {
                return RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string())
            }
            _ => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("look message by offset failed, {}", h.offset),
                )
            }
        };
        let max = match h.max_reconsume_times {
            Some(m) if req.version >= MAX_RECONSUME_HEADER_SINCE_VERSION => m,
            _ => DEFAULT_MAX_RECONSUME_TIMES,
        };
        let to_dlq = original.reconsume_times >= max || h.delay_level < 0;
        let (topic, delay_level) = if to_dlq {
            (format!("{DLQ_GROUP_TOPIC_PREFIX}{}", h.group), 0)
        } else {
            let level = if h.delay_level == 0 {
                3 + original.reconsume_times
            } else {
                h.delay_level
            };
            (format!("{RETRY_GROUP_TOPIC_PREFIX}{}", h.group), level)
        };
        // Where the message came from, for the dead-letter count.
        let origin_topic = original
            .property(message::property::RETRY_TOPIC)
            .unwrap_or(&original.topic)
            .to_string();
        match self.resend_to(original, topic, delay_level).await {
            Ok(()) => {
                if to_dlq {
                    self.metrics.dead_lettered(&h.group, &origin_topic);
                }
                RemotingCommand::response_to(req, response::SUCCESS)
            }
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    /// Stores `original` again on a group's retry or dead-letter topic (created when
    /// missing), one reconsume later, waiting `delay_level` when above 0. It keeps its
    /// first topic (`RETRY_TOPIC`) and first id (`ORIGIN_MESSAGE_ID`).
    pub(crate) async fn resend_to(
        &self,
        original: MessageExt,
        topic: String,
        delay_level: i32,
    ) -> Result<(), BrokerError> {
        let config = match self
            .topics
            .ensure_system_topic(&topic, 1, perm::READ | perm::WRITE)
        {
            Ok((config, created)) => {
                if created {
                    crate::register::register_topics(self, std::slice::from_ref(&topic)).await;
                }
                config
            }
            Err(e) => {
                return Err(BrokerError::Internal(format!(
                    "creating {topic} failed: {e}"
                )))
            }
        };
        // A retry waits for its own delay level, never again for the original's timer.
        let mut props = message::without_properties(
            &original.properties,
            &[
                message::property::DELAY,
                message::property::REAL_TOPIC,
                message::property::REAL_QID,
                message::property::TIMER_OUT_MS,
            ],
        );
        props = message::without_properties(&props, &crate::timer::TIMER_PROPERTIES);
        if property(&props, message::property::RETRY_TOPIC).is_none() {
            message::push_property(&mut props, message::property::RETRY_TOPIC, &original.topic);
        }
        // As Apache's `consumerSendMsgBack`: the stored message's own ORIGIN_MESSAGE_ID, else
        // its offset message id; the id a client puts in the header is not used.
        if property(&props, message::property::ORIGIN_MESSAGE_ID).is_none() {
            let origin = original.offset_msg_id();
            message::push_property(&mut props, message::property::ORIGIN_MESSAGE_ID, &origin);
        }
        if delay_level > 0 {
            message::push_property(
                &mut props,
                message::property::DELAY,
                &delay_level.to_string(),
            );
        }
        let again = MessageExt {
            topic,
            queue_id: rand::thread_rng().gen_range(0..config.write_queue_nums.max(1)),
            reconsume_times: original.reconsume_times + 1,
            properties: props,
            ..original
        };
        self.put_messages(vec![again], true)
            .await
            .or_else(PutError::accept_stored)
            .map(drop)
            .map_err(BrokerError::from)
    }
}
