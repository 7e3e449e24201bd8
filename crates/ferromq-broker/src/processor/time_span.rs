//! QUERY_CONSUME_TIME_SPAN (303): per write queue of a topic, the store times of its oldest
//! and newest messages and of the group's last consumed one, and how far behind the group
//! is (Apache's `QueueTimeSpan`; sent by the admin API's `queryConsumeTimeSpan`).

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use serde_json::json;

use super::{header, not_blank};
use crate::Broker;
use ferromq_protocol::header::QueryConsumeTimeSpanRequestHeader;

impl Broker {
    pub(crate) fn consume_time_span(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<QueryConsumeTimeSpanRequestHeader>(req)
            .and_then(|h| not_blank(req, &[("topic", &h.topic), ("group", &h.group)]).map(|()| h))
        {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let (topic, group) = (h.topic.as_str(), h.group.as_str());
        let Some(config) = self.topics.get(topic) else {
            return RemotingCommand::error_response(
                req,
                response::TOPIC_NOT_EXIST,
                format!("topic[{topic}] not exist"),
            );
        };
        let store = self.store.store();
        let stored_at = |queue_id: i32, offset: u64| -> i64 {
            store
                .queue_entries(topic, queue_id, offset, 1)
                .ok()
                .and_then(|e| e.into_iter().next())
                .filter(|e| e.offset == offset)
                .map_or(-1, |e| e.store_ms)
        };
        let now = crate::now_ms();
        let broker_name = self.config().broker_name.clone();
        let spans: Vec<serde_json::Value> = (0..config.write_queue_nums)
            .map(|queue_id| {
                let (min, max) = (store.min_offset(topic, queue_id), store.max_offset(topic, queue_id));
                let min_time = if max > min { stored_at(queue_id, min) } else { -1 };
                let max_time = if max > min { stored_at(queue_id, max - 1) } else { -1 };
                let committed = self.offsets.query(group, topic, queue_id).unwrap_or(-1);
                let consume_time = if committed > 0 {
                    stored_at(queue_id, committed as u64 - 1)
                } else {
                    min_time
                };
                // Apache measures from the store time at the committed offset, which is -1
                // for a group without one (its delay then reads as the current epoch time);
                // FerroMQ measures from the oldest message the group has yet to consume.
                let next = (committed.max(0) as u64).max(min);
                let delay = if next < max {
                    now - stored_at(queue_id, next)
                } else {
                    0
                };
                json!({
                    "messageQueue": {"topic": topic, "brokerName": broker_name, "queueId": queue_id},
                    "minTimeStamp": min_time,
                    "maxTimeStamp": max_time,
                    "consumeTimeStamp": consume_time,
                    "delayTime": delay,
                })
            })
            .collect();
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(json!({ "consumeTimeSpanSet": spans }).to_string())
    }
}
