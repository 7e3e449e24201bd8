//! PULL_MESSAGE (11) with long polling: a pull that finds nothing new is parked on its
//! queue's notifier and answered as soon as the appender stores a message there, or at
//! the client's suspend timeout.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferromq_protocol::body::perm;
use ferromq_protocol::code::response;
use ferromq_protocol::header::{
    CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader,
};
use ferromq_protocol::message::record_properties;
use std::sync::Arc;

use crate::filter::MessageFilter;
use crate::groups::SubscriptionGroupConfig;
use crate::pull_hold::HeldPull;
use ferromq_protocol::RemotingCommand;
use ferromq_store::{GetResult, GetStatus, StoreError};
use tokio_util::sync::CancellationToken;

use super::header;
use crate::{Broker, Role};

/// Pull sysFlag bits (`PullSysFlag.java`).
const PULL_COMMIT_OFFSET: i32 = 0x1;
/// Apache's remark when SQL92 filtering is off (`enablePropertyFilter=false`).
pub(crate) const SQL_DISABLED: &str =
    "The broker does not support consumer to filter message by SQL92";
const PULL_SUSPEND: i32 = 0x2;
const PULL_SUBSCRIPTION: i32 = 0x4;

/// Messages returned by one pull at most (Apache `maxTransferCountOnMessageInMemory`).
const MAX_PULL_MESSAGES: usize = 32;
/// Bytes returned by one pull at most (Apache `maxTransferBytesOnMessageInMemory`).
const MAX_PULL_BYTES: usize = 256 * 1024;
/// Longest hold; both clients give up at 30 s.
const MAX_HOLD: Duration = Duration::from_secs(25);

/// Drops records the filter rejects on their properties (exact tags, SQL92). Skipped
/// records still count towards the next offset.
fn exact_filter(mut r: GetResult, filter: &MessageFilter) -> GetResult {
    if !filter.needs_properties() || r.status != GetStatus::Found {
        return r;
    }
    r.messages
        .retain(|m| record_properties(m).is_some_and(|p| filter.accepts_properties(p)));
    if r.messages.is_empty() {
        r.status = GetStatus::NoMatchedMessage;
    }
    r
}

impl Broker {
    pub(crate) fn pull_message(
        &self,
        conn: &ferromq_remoting::Connection,
        req: &RemotingCommand,
    ) -> Option<RemotingCommand> {
        let h = match header::<PullMessageRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return Some(resp),
        };
        let config = self.config();
        if config.broker_permission & perm::READ == 0 {
            return Some(RemotingCommand::error_response(
                req,
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] pulling message is forbidden",
                    config.advertised_addr()
                ),
            ));
        }
        let Some(topic) = self.topics.get(&h.topic) else {
            return Some(RemotingCommand::error_response(
                req,
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            ));
        };
        if topic.perm & perm::READ == 0 {
            return Some(RemotingCommand::error_response(
                req,
                response::NO_PERMISSION,
                format!("the topic[{}] pulling message is forbidden", h.topic),
            ));
        }
        if !self.forbidden.readable(&h.consumer_group, &h.topic) {
            return Some(RemotingCommand::error_response(
                req,
                response::NO_PERMISSION,
                format!(
                    "the consumer group[{}] is forbidden for topic[{}]",
                    h.consumer_group, h.topic
                ),
            ));
        }
        if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
            return Some(RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                    h.queue_id, h.topic, topic.read_queue_nums
                ),
            ));
        }
        // The request's own expression wins when flagged; else the heartbeat's. With
        // neither (a pull racing the first heartbeat after a broker restart) everything is
        // delivered and the client's exact tag check filters: no stall, no loss.
        let filter = if h.sys_flag & PULL_SUBSCRIPTION != 0 {
            let expression = h.subscription.clone().unwrap_or_default();
            let kind = h.expression_type.clone().unwrap_or_else(|| "TAG".into());
            Some(MessageFilter::compile(&kind, &expression).map(Arc::new))
        } else {
            self.clients.filter(&h.consumer_group, &h.topic)
        };
        let filter = match filter {
            None => Arc::new(MessageFilter::All),
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                return Some(RemotingCommand::error_response(
                    req,
                    response::SUBSCRIPTION_PARSE_FAILED,
                    e.to_string(),
                ))
            }
        };
        if matches!(*filter, MessageFilter::Sql(_)) && !config.enable_property_filter {
            return Some(RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                SQL_DISABLED,
            ));
        }
        // The official clients clear the commit flag when they pull from a slave; a commit
        // that reaches one anyway is kept like UPDATE_CONSUMER_OFFSET (see commit_offset).
        if h.sys_flag & PULL_COMMIT_OFFSET != 0 && h.commit_offset >= 0 {
            self.client_commit(
                conn,
                &h.consumer_group,
                &h.topic,
                h.queue_id,
                h.commit_offset,
            );
        }
        let offset = h.queue_offset.max(0) as u64;
        let max_msgs = (h.max_msg_nums.max(1) as usize).min(MAX_PULL_MESSAGES);
        let result = match self.read_pull(&h.topic, h.queue_id, offset, max_msgs, &filter) {
            Ok(r) => r,
            Err(e) => {
                return Some(RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    e.to_string(),
                ))
            }
        };
        if h.sys_flag & PULL_SUSPEND != 0
            && h.suspend_timeout_millis > 0
            && caught_up(&result, offset)
        {
            let deadline = Instant::now()
                + Duration::from_millis(h.suspend_timeout_millis as u64).min(MAX_HOLD);
            let pull = HeldPull::new(conn.clone(), req, h, filter, offset, max_msgs, deadline);
            crate::metrics::note_parked();
            let (pull, read) = self.hold(pull)?;
            return Some(self.answer_read(&pull, req, read));
        }
        Some(self.answer_pull(conn, req, &h, offset, result))
    }

    /// Reads what a pull asks for, with its filter applied.
    fn read_pull(
        &self,
        topic: &str,
        queue_id: i32,
        offset: u64,
        max_msgs: usize,
        filter: &MessageFilter,
    ) -> Result<GetResult, StoreError> {
        let accept = |tag: i64| filter.accepts_code(tag);
        self.store
            .store()
            .get_messages(topic, queue_id, offset, max_msgs, MAX_PULL_BYTES, &accept)
            .map(|r| exact_filter(r, filter))
    }

    /// The answer to a pull that read `result`, with the statistics it adds to.
    fn answer_pull(
        &self,
        conn: &ferromq_remoting::Connection,
        req: &RemotingCommand,
        h: &PullMessageRequestHeader,
        offset: u64,
        result: GetResult,
    ) -> RemotingCommand {
        let config = self.config();
        self.stats
            .record_get(&h.topic, &h.consumer_group, result.messages.len() as u64);
        // Tools (TOOLS_CONSUMER: queryMsgByOffset, consumeMessage) read without consuming.
        if !crate::groups::SYSTEM_GROUPS.contains(&h.consumer_group.as_str()) {
            self.note_pull(conn, h, offset, &result);
        }
        self.metrics.read(
            &h.topic,
            &h.consumer_group,
            None,
            result.messages.len() as u64,
            result.messages.iter().map(|m| m.len() as u64).sum(),
        );
        // Which broker of the group the client should pull from next (Apache's rules; a
        // slave always names the master, so a client back in touch with it returns there).
        let group = || {
            self.groups
                .get(&h.consumer_group)
                .unwrap_or_else(|| SubscriptionGroupConfig::new(&h.consumer_group))
        };
        let suggest = if !config.slave_read_enable {
            MASTER_ID
        } else if self.consumer_lags_in_memory(&result, &config) {
            group().which_broker_when_consume_slowly
        } else if self.role() == Role::Master {
            group().broker_id
        } else {
            MASTER_ID
        };
        pull_response(req, result, offset, suggest)
    }

    /// The hold loop: answers held pulls whose queue grew (or holds them again when what
    /// arrived does not pass their filter) and those whose hold ran out.
    pub(crate) async fn answer_held_pulls(self: Arc<Self>, shutdown: CancellationToken) {
        let held = self.store.waker().held().clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = held.wait_for_work() => {}
            }
            let due = held.take_due(Instant::now());
            let woken = due.woken.into_iter().map(|p| (p, false));
            let expired = due.expired.into_iter().map(|p| (p, true));
            for (n, (pull, expired)) in woken.chain(expired).enumerate() {
                self.answer_held(pull, expired);
                // A slave's copy growing wakes every held pull at once: let other tasks run.
                if n % 256 == 255 {
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    fn answer_held(&self, pull: HeldPull, expired: bool) {
        let read = self.read_pull(
            &pull.header.topic,
            pull.header.queue_id,
            pull.offset,
            pull.max_msgs,
            &pull.filter,
        );
        let still_caught_up = matches!(&read, Ok(r) if caught_up(r, pull.offset));
        let (pull, read) = if still_caught_up && !expired && Instant::now() < pull.deadline {
            // Woken by a change that left this queue as it was (a slave's copy grew
            // elsewhere): held again. A filter miss is not this case: it reads
            // NO_MATCHED_MESSAGE and is answered.
            match self.hold(pull) {
                Some(found) => found,
                None => return,
            }
        } else {
            (pull, read)
        };
        let response = self.answer_read(&pull, &pull.reply_to, read);
        // A closed connection has nobody to answer; its client pulls again when it returns.
        let _ = pull.conn.send_or_queue(&response);
        self.metrics.rpc(
            pull.reply_to.code,
            Some(response.code),
            true,
            pull.received.elapsed().as_secs_f64() * 1000.0,
        );
    }

    /// Holds a pull, then reads its queue once more: an append between the first read and
    /// the parking shows here, and any later one marks the queue for the hold loop. Returns
    /// the pull with what it read when that found something and the loop had not taken it.
    fn hold(&self, pull: HeldPull) -> Option<(HeldPull, Result<GetResult, StoreError>)> {
        let held = self.store.waker().held();
        let (topic, queue_id, offset, max_msgs) = (
            pull.header.topic.clone(),
            pull.header.queue_id,
            pull.offset,
            pull.max_msgs,
        );
        let filter = pull.filter.clone();
        let ticket = held.park(pull);
        let read = self.read_pull(&topic, queue_id, offset, max_msgs, &filter);
        if matches!(&read, Ok(r) if caught_up(r, offset)) {
            return None;
        }
        held.take_back(&ticket).map(|pull| (pull, read))
    }

    fn answer_read(
        &self,
        pull: &HeldPull,
        reply_to: &RemotingCommand,
        read: Result<GetResult, StoreError>,
    ) -> RemotingCommand {
        match read {
            Ok(r) => self.answer_pull(&pull.conn, reply_to, &pull.header, pull.offset, r),
            Err(e) => {
                RemotingCommand::error_response(reply_to, response::SYSTEM_ERROR, e.to_string())
            }
        }
    }

    /// Keeps the queue's pull position and, when it carried messages, who read them.
    fn note_pull(
        &self,
        conn: &ferromq_remoting::Connection,
        h: &PullMessageRequestHeader,
        offset: u64,
        result: &GetResult,
    ) {
        self.life.note_pull(
            &h.consumer_group,
            &h.topic,
            h.queue_id,
            offset,
            (result.status == GetStatus::Found).then(|| crate::life::Read {
                from: offset,
                next: result.next_begin_offset,
                client: conn.peer(),
                at_ms: crate::now_ms(),
            }),
        );
    }

    /// Apache's `suggestPullingFromSlave`: the consumer reads further behind the log's end
    /// than `accessMessageInMemoryMaxRatio` of the machine's memory, so from disk.
    fn consumer_lags_in_memory(&self, result: &GetResult, config: &crate::BrokerConfig) -> bool {
        let Some(pulled) = result
            .messages
            .last()
            .and_then(|m| ferromq_protocol::message::record_physical_offset(m))
        else {
            return false;
        };
        let behind = self
            .store
            .store()
            .replica_offset()
            .saturating_sub(pulled as u64);
        behind > total_memory_bytes() / 100 * u64::from(config.access_message_in_memory_max_ratio)
    }
}

/// The broker id Apache's clients take for "the master".
const MASTER_ID: i64 = 0;

/// The machine's memory (`MemTotal`), read once; unknown counts as unlimited, so nobody
/// is sent away.
fn total_memory_bytes() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(u64::MAX)
    })
}

/// Response code and next offset for a read, as Apache's `PullMessageProcessor` maps
/// store statuses. 21 (offset moved) is costly for clients, so only illegal offsets get it.
/// Whether a read found nothing new for a pull from `requested`: it may be held.
fn caught_up(r: &GetResult, requested: u64) -> bool {
    classify(r, requested).0 == response::PULL_NOT_FOUND
}

fn classify(r: &GetResult, requested: u64) -> (i32, u64) {
    match r.status {
        GetStatus::Found => (response::SUCCESS, r.next_begin_offset),
        GetStatus::NoMessageInQueue if requested == 0 => (response::PULL_NOT_FOUND, 0),
        GetStatus::NoMessageInQueue => (response::PULL_OFFSET_MOVED, 0),
        GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => {
            (response::PULL_OFFSET_MOVED, r.next_begin_offset)
        }
        GetStatus::OffsetOverflowOne => (response::PULL_NOT_FOUND, r.next_begin_offset),
        GetStatus::NoMatchedMessage => (response::PULL_RETRY_IMMEDIATELY, r.next_begin_offset),
    }
}

fn pull_response(
    req: &RemotingCommand,
    r: GetResult,
    requested: u64,
    suggest_which_broker_id: i64,
) -> RemotingCommand {
    let (code, next) = classify(&r, requested);
    let mut resp = RemotingCommand::response_to(req, code);
    PullMessageResponseHeader {
        next_begin_offset: next as i64,
        min_offset: r.min_offset as i64,
        max_offset: r.max_offset as i64,
        suggest_which_broker_id,
    }
    .encode(&mut resp.ext_fields);
    if !r.messages.is_empty() {
        let mut body = BytesMut::with_capacity(r.messages.iter().map(|m| m.len()).sum());
        for m in &r.messages {
            body.extend_from_slice(m);
        }
        resp.body = body.freeze();
    }
    resp
}
