//! POP on the remoting port: POP_MESSAGE (200050), ACK_MESSAGE (200051),
//! CHANGE_MESSAGE_INVISIBLETIME (200053), NOTIFICATION (200054) and BATCH_ACK_MESSAGE
//! (200151), with Apache's headers and receipt handles ("extra info"), over the
//! transport-free operations in [`crate::pop`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::BytesMut;
use ferromq_protocol::code::response;
use ferromq_protocol::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    CommandHeader, NotificationRequestHeader, NotificationResponseHeader, PopMessageRequestHeader,
    PopMessageResponseHeader,
};
use ferromq_protocol::RemotingCommand;
use serde_json::Value;

use super::header;
use crate::filter::MessageFilter;
use crate::pop::{PopRequest, MAX_POP_MESSAGES};
use crate::{now_ms, Broker, BrokerError};

/// The revive queue id Apache's clients read as "an orderly pop".
const ORDER_REVIVE_QID: i32 = 999;
/// Topic mark of the extra info: the topic itself (FerroMQ redelivers in place, so never
/// a retry topic).
const TOPIC_MARK: &str = "0";

/// The fields of Apache's extra info an ack or renewal needs.
struct ExtraInfo {
    pop_time: i64,
    revive_qid: i32,
}

fn parse_extra_info(s: &str) -> Option<ExtraInfo> {
    let e = ferromq_protocol::extra_info::ExtraInfo::parse(s)?;
    Some(ExtraInfo {
        pop_time: e.pop_time()?,
        revive_qid: e.revive_qid()?,
    })
}

fn compile_filter(
    kind: Option<&str>,
    expression: Option<&str>,
) -> Result<MessageFilter, BrokerError> {
    let kind = kind.filter(|k| !k.is_empty()).unwrap_or("TAG");
    let expression = expression.filter(|e| !e.is_empty()).unwrap_or("*");
    MessageFilter::compile(kind, expression).map_err(|e| BrokerError::FilterInvalid(e.to_string()))
}

impl Broker {
    pub(crate) async fn pop_message(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<PopMessageRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if h.max_msg_nums as usize > MAX_POP_MESSAGES || h.max_msg_nums <= 0 {
            return RemotingCommand::error_response(
                req,
                response::INVALID_PARAMETER,
                format!(
                    "the broker[{}] pop message's num must be 1 to {MAX_POP_MESSAGES}",
                    self.config().advertised_addr()
                ),
            );
        }
        let filter = match compile_filter(h.exp_type.as_deref(), h.exp.as_deref()) {
            Ok(f) => Arc::new(f),
            Err(e) => return e.to_response(req),
        };
        if matches!(*filter, MessageFilter::Sql(_)) && !self.config().enable_property_filter {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                super::pull::SQL_DISABLED,
            );
        }
        // The client's poll budget counts from when it sent the request.
        let spent = (now_ms() - h.born_time).max(0);
        let poll = Duration::from_millis((h.poll_time - spent).max(0) as u64);
        let fifo = h.order == Some(true);
        let pop = PopRequest {
            group: h.consumer_group.clone(),
            topic: h.topic.clone(),
            queue_id: h.queue_id,
            max_msgs: h.max_msg_nums as usize,
            invisible_ms: h.invisible_time.max(0),
            poll,
            filter,
            fifo,
        };
        let popped = match self.pop(&pop).await {
            Ok(p) => p,
            Err(e) => return e.to_response(req),
        };
        let revive_qid = if fifo { ORDER_REVIVE_QID } else { 0 };
        let mut out = PopMessageResponseHeader {
            pop_time: popped.first().map_or_else(now_ms, |p| p.pop_time),
            invisible_time: pop.invisible_ms,
            revive_qid,
            rest_num: 0,
            ..Default::default()
        };
        if popped.is_empty() {
            let mut resp = RemotingCommand::response_to(req, response::POLLING_TIMEOUT);
            resp.remark = Some("NO_MESSAGE_IN_QUEUE".into());
            out.encode(&mut resp.ext_fields);
            return resp;
        }
        // Per queue, in the order the messages come: the first offset handed out and the
        // offsets of each message, from which the client builds every receipt handle.
        let mut queues: Vec<(i32, Vec<i64>)> = Vec::new();
        let mut body = BytesMut::new();
        for p in &popped {
            let m = &p.message;
            match queues.iter_mut().find(|(q, _)| *q == m.queue_id) {
                Some((_, offsets)) => offsets.push(m.queue_offset),
                None => queues.push((m.queue_id, vec![m.queue_offset])),
            }
            m.encode(&mut body);
        }
        let info = |value: &dyn Fn(&[i64]) -> String| {
            queues
                .iter()
                .map(|(q, offsets)| format!("{TOPIC_MARK} {q} {}", value(offsets)))
                .collect::<Vec<_>>()
                .join(";")
        };
        out.start_offset_info = Some(info(&|o| o.iter().min().copied().unwrap_or(0).to_string()));
        out.msg_offset_info = Some(info(&|o| {
            o.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        }));
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS);
        resp.remark = Some("FOUND".into());
        out.encode(&mut resp.ext_fields);
        resp.with_body(body.freeze())
    }

    /// Checks a handle's topic, queue and offset as Apache's broker does, and reads its
    /// extra info.
    fn pop_target(
        &self,
        req: &RemotingCommand,
        topic: &str,
        queue_id: i32,
        offset: i64,
        extra_info: &str,
        change: bool,
    ) -> Result<ExtraInfo, RemotingCommand> {
        let Some(config) = self.topics.get(topic) else {
            return Err(BrokerError::TopicNotFound(topic.to_string()).to_response(req));
        };
        if queue_id < 0 || queue_id >= config.read_queue_nums {
            return Err(RemotingCommand::error_response(
                req,
                response::MESSAGE_ILLEGAL,
                format!("queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}]", config.read_queue_nums),
            ));
        }
        let store = self.store.store();
        let (min, max) = (
            store.min_offset(topic, queue_id) as i64,
            store.max_offset(topic, queue_id) as i64,
        );
        let beyond = if change { offset >= max } else { offset > max };
        if offset < min || beyond {
            return Err(RemotingCommand::error_response(
                req,
                response::NO_MESSAGE,
                format!(
                    "offset is illegal, key:{topic}@{queue_id}, commit:{offset}, store:{min}~{max}"
                ),
            ));
        }
        parse_extra_info(extra_info).ok_or_else(|| {
            RemotingCommand::error_response(
                req,
                response::MESSAGE_ILLEGAL,
                format!("extraInfo is malformed: {extra_info:?}"),
            )
        })
    }

    pub(crate) fn ack_message(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<AckMessageRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let extra = match self.pop_target(req, &h.topic, h.queue_id, h.offset, &h.extra_info, false)
        {
            Ok(extra) => extra,
            Err(resp) => return resp,
        };
        match self.pop_ack(
            &h.consumer_group,
            &h.topic,
            h.queue_id,
            h.offset as u64,
            extra.pop_time,
        ) {
            // As Apache: acknowledging what is already acknowledged or handed out again is
            // not an error; it changes nothing.
            Ok(()) | Err(BrokerError::StaleHandle(_)) => {
                RemotingCommand::response_to(req, response::SUCCESS)
            }
            Err(e) => e.to_response(req),
        }
    }

    pub(crate) fn change_invisible_time(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ChangeInvisibleTimeRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let extra = match self.pop_target(req, &h.topic, h.queue_id, h.offset, &h.extra_info, true)
        {
            Ok(extra) => extra,
            Err(resp) => return resp,
        };
        match self.pop_change_invisible(
            &h.consumer_group,
            &h.topic,
            h.queue_id,
            h.offset as u64,
            extra.pop_time,
            h.invisible_time.max(0),
        ) {
            Ok(pop_time) => {
                let mut resp = RemotingCommand::response_to(req, response::SUCCESS);
                ChangeInvisibleTimeResponseHeader {
                    pop_time,
                    invisible_time: h.invisible_time.max(0),
                    revive_qid: extra.revive_qid,
                }
                .encode(&mut resp.ext_fields);
                resp
            }
            // Renewing an acknowledged message would bring it back; Apache's clients read
            // this answer as "no longer exists".
            Err(e) => e.to_response(req),
        }
    }

    /// BATCH_ACK_MESSAGE: a JSON body of acks, each a queue, a start offset, a pop time and
    /// a bit set (base64 of Java's `BitSet.toByteArray`) of the offsets after the start.
    pub(crate) fn batch_ack_message(&self, req: &RemotingCommand) -> RemotingCommand {
        let no_message =
            |why: &str| RemotingCommand::error_response(req, response::NO_MESSAGE, why);
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return no_message("the batch ack body is not JSON");
        };
        let Some(acks) = body
            .get("acks")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        else {
            return no_message("the batch ack has no acks");
        };
        let field = |ack: &Value, short: &str, long: &str| -> Option<Value> {
            ack.get(short).or_else(|| ack.get(long)).cloned()
        };
        let as_i64 = |v: Option<Value>| -> Option<i64> {
            v.and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        for ack in acks {
            let (Some(group), Some(topic), Some(start), Some(queue_id), Some(pop_time), Some(bits)) = (
                field(ack, "c", "consumerGroup").and_then(|v| v.as_str().map(str::to_string)),
                field(ack, "t", "topic").and_then(|v| v.as_str().map(str::to_string)),
                as_i64(field(ack, "so", "startOffset")),
                as_i64(field(ack, "q", "queueId")),
                as_i64(field(ack, "pt", "popTime")),
                field(ack, "b", "bitSet").and_then(|v| v.as_str().map(str::to_string)),
            ) else {
                return RemotingCommand::error_response(
                    req,
                    response::MESSAGE_ILLEGAL,
                    format!("a batch ack entry lacks a field: {ack}"),
                );
            };
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(bits.as_bytes())
            else {
                return RemotingCommand::error_response(
                    req,
                    response::MESSAGE_ILLEGAL,
                    format!("a batch ack's bit set is not base64: {bits:?}"),
                );
            };
            let Ok(queue_id) = i32::try_from(queue_id) else {
                return RemotingCommand::error_response(
                    req,
                    response::MESSAGE_ILLEGAL,
                    "queueId out of range",
                );
            };
            for (byte_index, byte) in bytes.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) == 0 {
                        continue;
                    }
                    let offset = start + (byte_index * 8 + bit) as i64;
                    if offset < 0 {
                        continue;
                    }
                    match self.pop_ack(&group, &topic, queue_id, offset as u64, pop_time) {
                        Ok(()) | Err(BrokerError::StaleHandle(_)) => {}
                        Err(e) => return e.to_response(req),
                    }
                }
            }
        }
        RemotingCommand::response_to(req, response::SUCCESS)
    }

    pub(crate) async fn notification(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<NotificationRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let spent = (now_ms() - h.born_time).max(0);
        let poll = Duration::from_millis((h.poll_time - spent).max(0) as u64);
        let has_msg = match self
            .pop_available(
                &h.consumer_group,
                &h.topic,
                h.queue_id,
                h.order == Some(true),
                poll,
            )
            .await
        {
            Ok(has) => has,
            Err(e) => return e.to_response(req),
        };
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS);
        NotificationResponseHeader {
            has_msg,
            polling_full: false,
        }
        .encode(&mut resp.ext_fields);
        resp
    }
}
