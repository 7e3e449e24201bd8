//! Request processors, one module per concern, dispatched by request code. Wire results
//! are not Rust errors: each processor answers with a response code and remark.

mod admin;
mod assignment;
mod auth;
mod batch_delete;
mod client_info;
mod clone_offset;
mod config;
mod consumer;
mod group;
mod ha;
mod inspect;
mod life;
pub(crate) mod lock;
mod maintenance;
mod pop;
mod pull;
mod reply;
mod retry;
pub(crate) mod send;
mod time_span;

pub(crate) use retry::DEFAULT_MAX_RECONSUME_TIMES;

use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::CommandHeader;
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use tracing::{debug, warn};

use crate::Broker;

impl Broker {
    /// Handles one request; `None` sends no reply.
    pub(crate) async fn process(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> Option<RemotingCommand> {
        debug!(code = req.code, opaque = req.opaque, peer = %conn.peer(), body_len = req.body.len(), "request");
        if let Some(acl) = &self.acl {
            if let Err(why) = acl.check(req, conn.peer().ip()) {
                // Apache answers ACL refusals with SYSTEM_ERROR and the AclException's text.
                let remark = format!("org.apache.rocketmq.acl.common.AclException: {why}");
                return (!req.is_oneway())
                    .then(|| RemotingCommand::error_response(req, response::SYSTEM_ERROR, remark));
            }
        }
        if self.auth.checks_enabled() {
            if let Err(why) = self.auth.check(req, conn.peer().ip()) {
                return (!req.is_oneway())
                    .then(|| RemotingCommand::error_response(req, response::NO_PERMISSION, why));
            }
        }
        // Every awaited handler is boxed: a request's future is then no larger than its own
        // handler's, where it was the largest handler's. A parked pull (100 consumer groups
        // over 10,000 topics hold 80,000) took about 12 KB this way, now about 5 KB.
        if req.code == request::END_TRANSACTION {
            return Box::pin(self.end_transaction(req)).await;
        }
        if req.code == request::PULL_MESSAGE || req.code == request::LITE_PULL_MESSAGE {
            // None: held, answered by the hold loop.
            return self.pull_message(conn, req);
        }
        let resp = match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                Box::pin(self.send_message(conn, req)).await
            }
            request::SEND_REPLY_MESSAGE | request::SEND_REPLY_MESSAGE_V2 => {
                Box::pin(self.send_reply(conn, req)).await
            }
            request::RECALL_MESSAGE => self.recall(req),
            request::POP_MESSAGE => Box::pin(self.pop_message(req)).await,
            request::ACK_MESSAGE => self.ack_message(req),
            request::BATCH_ACK_MESSAGE => self.batch_ack_message(req),
            request::CHANGE_MESSAGE_INVISIBLETIME => self.change_invisible_time(req),
            request::NOTIFICATION => Box::pin(self.notification(req)).await,
            request::HEART_BEAT => self.heartbeat(conn, req),
            request::UNREGISTER_CLIENT => self.unregister_client(conn, req),
            request::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(req),
            request::QUERY_CONSUMER_OFFSET => self.query_consumer_offset(req),
            request::UPDATE_CONSUMER_OFFSET => self.update_consumer_offset(conn, req),
            request::GET_MAX_OFFSET => self.max_offset(req),
            request::GET_MIN_OFFSET => self.min_offset(req),
            request::SEARCH_OFFSET_BY_TIMESTAMP => self.search_offset(req),
            request::GET_EARLIEST_MSG_STORETIME => self.earliest_store_time(req),
            request::VIEW_MESSAGE_BY_ID => self.view_message(req),
            request::QUERY_MESSAGE => self.query_message(req),
            request::UPDATE_AND_CREATE_TOPIC => Box::pin(self.create_topic(req)).await,
            request::UPDATE_AND_CREATE_TOPIC_LIST => Box::pin(self.create_topic_list(req)).await,
            request::DELETE_TOPIC_IN_BROKER => self.delete_topic(req),
            request::GET_ALL_TOPIC_CONFIG => self.all_topic_config(req),
            request::GET_BROKER_RUNTIME_INFO => self.runtime_info(req),
            request::CONSUMER_SEND_MSG_BACK => Box::pin(self.consumer_send_msg_back(req)).await,
            request::LOCK_BATCH_MQ => self.lock_batch(req),
            request::UNLOCK_BATCH_MQ => self.unlock_batch(req),
            request::CHECK_CLIENT_CONFIG => self.check_client_config(req),
            request::INVOKE_BROKER_TO_RESET_OFFSET => Box::pin(self.reset_offset(req)).await,
            request::GET_CONSUME_STATS => self.consume_stats(req),
            request::GET_TOPIC_STATS_INFO => self.topic_stats(req),
            request::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(req),
            request::GET_PRODUCER_CONNECTION_LIST => self.producer_connections(req),
            request::GET_ALL_PRODUCER_INFO => self.all_producer_info(req),
            request::QUERY_CONSUME_TIME_SPAN => self.consume_time_span(req),
            request::CLONE_GROUP_OFFSET => self.clone_group_offset(req),
            request::RESUME_CHECK_HALF_MESSAGE => Box::pin(self.resume_check_half(req)).await,
            request::CLEAN_EXPIRED_CONSUMEQUEUE => Box::pin(self.clean_expired_queues(req)).await,
            request::DELETE_EXPIRED_COMMITLOG => Box::pin(self.delete_expired_log(req)).await,
            request::CLEAN_UNUSED_TOPIC => Box::pin(self.clean_unused_topics(req)).await,
            request::QUERY_SUBSCRIPTION_BY_CONSUMER => self.subscription_by_consumer(req),
            request::UPDATE_AND_GET_GROUP_FORBIDDEN => self.group_forbidden(req),
            request::GET_CONSUMER_RUNNING_INFO => Box::pin(self.consumer_running_info(req)).await,
            request::CONSUME_MESSAGE_DIRECTLY => Box::pin(self.consume_message_directly(req)).await,
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => self.all_group_configs(req),
            request::GET_BROKER_CONFIG => self.broker_config(req),
            request::UPDATE_BROKER_CONFIG => self.update_broker_config(req),
            request::GET_TOPIC_CONFIG => self.topic_config(req),
            request::GET_ALL_CONSUMER_OFFSET => self.all_consumer_offsets(req),
            request::GET_ALL_DELAY_OFFSET => self.all_delay_offsets(req),
            request::GET_BROKER_HA_STATUS => self.ha_status(req),
            request::EXCHANGE_BROKER_HA_INFO => self.exchange_ha_info(req),
            request::GET_BROKER_EPOCH_CACHE => self.epoch_cache(req),
            request::NOTIFY_BROKER_ROLE_CHANGED => self.role_changed(req),
            request::GET_TIMER_CHECK_POINT => self.timer_check_point(req),
            request::GET_TIMER_METRICS => self.timer_metrics(req),
            request::GET_ALL_MESSAGE_REQUEST_MODE => self.all_message_request_modes(req),
            request::AUTH_CREATE_USER..=request::AUTH_LIST_ACL => self.auth_admin(req),
            request::DELETE_TOPIC_IN_BROKER_LIST => self.delete_topic_list(req),
            request::DELETE_SUBSCRIPTION_GROUP_LIST => self.delete_group_list(req),
            request::QUERY_ASSIGNMENT => Box::pin(self.query_assignment(req)).await,
            request::SET_MESSAGE_REQUEST_MODE => self.set_message_request_mode(req),
            request::QUERY_CONSUME_QUEUE => self.query_consume_queue(req),
            request::GET_BROKER_CONSUME_STATS => self.broker_consume_stats(req),
            request::VIEW_BROKER_STATS_DATA => self.view_broker_stats(req),
            request::QUERY_TOPIC_CONSUME_BY_WHO => self.topic_consumed_by(req),
            request::QUERY_TOPICS_BY_CONSUMER => self.topics_consumed_by_group(req),
            request::GET_SYSTEM_TOPIC_LIST_FROM_BROKER => self.system_topic_list(req),
            request::GET_SUBSCRIPTIONGROUP_CONFIG => self.group_config(req),
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => self.update_group(req),
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST => self.update_group_list(req),
            request::DELETE_SUBSCRIPTIONGROUP => self.delete_group(req),
            request::FERROMQ_MESSAGE_LIFE => self.message_life(req),
            request::FERROMQ_LIST_PRODUCER_GROUPS => {
                let mut groups = self.clients.producer_groups();
                groups.sort();
                RemotingCommand::response_to(req, response::SUCCESS)
                    .with_body(serde_json::json!({ "groups": groups }).to_string())
            }
            request::FERROMQ_LIST_UNDECIDED_TRANSACTIONS => {
                let max = req
                    .field("max")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(1000usize)
                    .min(100_000);
                let list = self.undecided_transactions(max);
                RemotingCommand::response_to(req, response::SUCCESS)
                    .with_body(serde_json::to_vec(&list).expect("transactions serialize"))
            }
            code => RemotingCommand::error_response(
                req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                ferromq_protocol::code::unsupported_remark(code),
            ),
        };
        Some(resp)
    }
}

/// Answers that are ordinary flow, not a client's problem: not logged.
fn is_ordinary(code: i32) -> bool {
    matches!(
        code,
        response::SUCCESS
            | response::PULL_NOT_FOUND
            | response::PULL_RETRY_IMMEDIATELY
            | response::PULL_OFFSET_MOVED
            | response::QUERY_NOT_FOUND
            | response::NO_MESSAGE
            | response::POLLING_TIMEOUT
    )
}

/// At most one line per (client address, request, answer) every this long: a client
/// repeating a bad request cannot flood the log.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Keys remembered at most; past it the memory starts over.
const REFUSAL_LOG_KEYS: usize = 10_000;

/// A kind of refusal: client address, request code, answer code.
type RefusalKind = (std::net::IpAddr, i32, i32);

/// When each kind of refusal was last logged, and how many went unlogged since.
#[derive(Default)]
pub(crate) struct RefusalLog {
    last: std::sync::Mutex<std::collections::HashMap<RefusalKind, (std::time::Instant, u64)>>,
}

impl Broker {
    /// Logs a refused request with who sent it and what it was about (client address,
    /// request, group, topic, answer), rate-limited per client and kind.
    pub(crate) fn log_refusal(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
        answer: &RemotingCommand,
    ) {
        if is_ordinary(answer.code) {
            return;
        }
        let key = (conn.peer().ip(), req.code, answer.code);
        let now = std::time::Instant::now();
        let suppressed = {
            let mut last = self.refusal_log.last.lock().expect("refusal log lock");
            if last.len() >= REFUSAL_LOG_KEYS && !last.contains_key(&key) {
                last.clear();
            }
            let entry = last.entry(key).or_insert((now - REFUSAL_LOG_EVERY, 0));
            if now.duration_since(entry.0) < REFUSAL_LOG_EVERY {
                entry.1 += 1;
                return;
            }
            let suppressed = entry.1;
            *entry = (now, 0);
            suppressed
        };
        let group = ["producerGroup", "consumerGroup", "group"]
            .iter()
            .find_map(|f| req.field(f))
            .unwrap_or("");
        warn!(
            peer = %conn.peer(),
            request = %request::name_or_number(req.code),
            group,
            topic = req.field("topic").unwrap_or(""),
            answer = %response::name_or_number(answer.code),
            remark = answer.remark.as_deref().unwrap_or(""),
            suppressed,
            "request refused"
        );
    }
}

/// Decodes a typed header or produces the error reply naming the bad field.
pub(crate) fn header<H: CommandHeader>(req: &RemotingCommand) -> Result<H, RemotingCommand> {
    H::decode(&req.ext_fields)
        .map_err(|e| RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()))
}

/// Refuses a request whose named header fields, present, are blank: they name groups and
/// topics, which are never empty.
pub(crate) fn not_blank(
    req: &RemotingCommand,
    fields: &[(&str, &str)],
) -> Result<(), RemotingCommand> {
    match fields.iter().find(|(_, v)| v.trim().is_empty()) {
        Some((key, _)) => Err(RemotingCommand::error_response(
            req,
            response::SYSTEM_ERROR,
            format!("the header field {key} is empty"),
        )),
        None => Ok(()),
    }
}
