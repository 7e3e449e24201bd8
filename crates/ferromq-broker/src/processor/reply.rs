//! Request-reply (Apache's `ReplyMessageProcessor`): SEND_REPLY_MESSAGE (324, V1 header keys)
//! and SEND_REPLY_MESSAGE_V2 (325) carry a consumer's reply to a request message. The broker
//! pushes the reply to the requester with PUSH_REPLY_MESSAGE_TO_CLIENT (326) over the
//! connection of the client named by its `REPLY_TO_CLIENT` property, then stores it in the
//! reply topic (`storeReplyMessageEnable`). The answer's code is the push's, as Apache's.

use std::time::Duration;

use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader,
};
use ferromq_protocol::message::{self, property, MAX_PROPERTIES_BYTES};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use tracing::warn;

use super::send::{OutgoingMessage, SendRequest};
use crate::Broker;

/// How long the requester has to take its reply (Apache's broker-to-client call).
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

impl Broker {
    pub(crate) async fn send_reply(
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
        let props = h.properties.take().unwrap_or_default();
        let config = self.config();
        if props.len() > MAX_PROPERTIES_BYTES || req.body.len() > config.max_message_size {
            return RemotingCommand::error_response(
                req,
                response::MESSAGE_ILLEGAL,
                format!(
                    "the reply is too large: body {} B (at most {}), properties {} B (at most {MAX_PROPERTIES_BYTES})",
                    req.body.len(),
                    config.max_message_size,
                    props.len()
                ),
            );
        }
        // As Apache's msgCheck: the reply topic must be there before anything is pushed.
        let Some(topic) = self.topics.get(&h.topic) else {
            return RemotingCommand::error_response(
                req,
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            );
        };
        let queue_id = if h.queue_id >= 0 && h.queue_id < topic.write_queue_nums {
            h.queue_id
        } else {
            rand::Rng::gen_range(&mut rand::thread_rng(), 0..topic.write_queue_nums.max(1))
        };
        let pushed = self.push_reply(conn, &h, queue_id, &props, req).await;
        let mut resp = match &pushed {
            Ok(()) => RemotingCommand::response_to(req, response::SUCCESS),
            Err(remark) => {
                warn!(peer = %conn.peer(), topic = %h.topic, "{remark}");
                RemotingCommand::error_response(req, response::SYSTEM_ERROR, remark.clone())
            }
        };
        // Apache's answer when nothing else fills it in: ids a client can decode.
        let mut answer = SendMessageResponseHeader {
            msg_id: "0".into(),
            queue_id,
            queue_offset: 0,
            transaction_id: None,
            recall_handle: None,
        };
        if config.store_reply_message_enable {
            let store = SendRequest {
                topic: h.topic.clone(),
                queue_id: Some(queue_id),
                messages: vec![OutgoingMessage {
                    flag: h.flag,
                    body: req.body.clone(),
                    properties: props,
                }],
                born_host: conn.peer(),
                sys_flag: h.sys_flag,
                born_timestamp: h.born_timestamp,
                reconsume_times: h.reconsume_times.unwrap_or(0),
                default_topic: None,
                default_topic_queue_nums: None,
                batch: false,
                wait_flush: false,
            };
            match self.send(store).await {
                Ok(outcome) => {
                    answer.msg_id = outcome.offset_msg_ids.join(",");
                    answer.queue_offset =
                        outcome.results.first().map_or(0, |r| r.queue_offset as i64);
                }
                // Pushed is what the requester waits for; storing is a record of it.
                Err(e) => warn!(topic = %h.topic, error = %e, "storing a reply failed"),
            }
        }
        answer.encode(&mut resp.ext_fields);
        resp.with_field(property::MSG_REGION, &config.region_id)
            .with_field(property::TRACE_ON, config.trace_on)
    }

    /// Pushes a reply to its requester; the remark on failure says why.
    async fn push_reply(
        &self,
        conn: &Connection,
        h: &SendMessageRequestHeader,
        queue_id: i32,
        props: &str,
        req: &RemotingCommand,
    ) -> Result<(), String> {
        let Some(client_id) = message::property(props, property::REPLY_TO_CLIENT) else {
            return Err(format!(
                "reply message properties[{}] is null",
                property::REPLY_TO_CLIENT
            ));
        };
        let Some(requester) = self.clients.find_producer(client_id) else {
            return Err(format!(
                "push reply message fail, channel of <{client_id}> not found: the requester \
                 has gone, or has neither sent a request nor a heartbeat to this broker"
            ));
        };
        let mut pushed_props = props.to_string();
        message::push_property(
            &mut pushed_props,
            property::PUSH_REPLY_TIME,
            &crate::now_ms().to_string(),
        );
        let mut push = RemotingCommand::request(request::PUSH_REPLY_MESSAGE_TO_CLIENT)
            .with_field("producerGroup", &h.producer_group)
            .with_field("topic", &h.topic)
            .with_field(
                "defaultTopic",
                h.default_topic.as_deref().unwrap_or_default(),
            )
            .with_field(
                "defaultTopicQueueNums",
                h.default_topic_queue_nums.unwrap_or_default(),
            )
            .with_field("queueId", queue_id)
            .with_field("sysFlag", h.sys_flag)
            .with_field("bornTimestamp", h.born_timestamp)
            .with_field("flag", h.flag)
            .with_field("properties", pushed_props)
            .with_field("reconsumeTimes", h.reconsume_times.unwrap_or(0))
            .with_field("unitMode", h.unit_mode.unwrap_or(false))
            .with_field("bornHost", conn.peer())
            .with_field("storeHost", self.store_host)
            .with_field("storeTimestamp", crate::now_ms())
            .with_body(req.body.clone());
        push.language = ferromq_protocol::LanguageCode::Java;
        match requester.invoke(push, PUSH_TIMEOUT).await {
            Ok(r) if r.code == response::SUCCESS => Ok(()),
            Ok(r) => Err(format!(
                "push reply message to {client_id} failed: it answered {} {}",
                r.code,
                r.remark.unwrap_or_default()
            )),
            Err(e) => Err(format!("push reply message to {client_id} failed: {e}")),
        }
    }
}
