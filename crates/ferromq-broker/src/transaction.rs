//! Transaction messages: half messages, END_TRANSACTION, and the check-back service.
//!
//! A half message waits in `RMQ_SYS_TRANS_HALF_TOPIC` (one queue) with its real topic and
//! queue in properties. A decision (commit, rollback, or giving up after
//! `transactionCheckMax` checks) is written as an op record to
//! `RMQ_SYS_TRANS_OP_HALF_TOPIC` in the same append as the committed message, so it
//! survives a crash with it. Decisions are keyed by the half's queue offset and never
//! taken twice: a duplicate or late END_TRANSACTION is answered without effect.
//!
//! Check counts are kept by the broker (not by re-appending the half as Apache does),
//! so a check never creates a second copy that could be committed again. A half whose
//! producer group has no live connection waits for the next round without using up a
//! check. State (`config/transaction.json`): the check cursor (every half before it is
//! decided), where to start re-reading op records at start-up, and check counts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
};
use ferromq_protocol::message::{self, property, sys_flag, MessageExt};
use ferromq_protocol::RemotingCommand;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::processor::header;
use crate::store_service::PutError;
use crate::{now_ms, persist, Broker, BrokerError};

pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where half messages checked too often are kept for an operator.
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Half messages examined per check round at most.
const MAX_SCAN_PER_ROUND: usize = 200_000;
const SCAN_CHUNK: usize = 1024;

/// Whether a decision was this request's or an earlier one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Now,
    Before,
}

/// `commitOrRollback` values (transaction bits of the message sysFlag).
const TX_COMMIT: i32 = sys_flag::TRANSACTION_COMMIT;
const TX_ROLLBACK: i32 = sys_flag::TRANSACTION_ROLLBACK;

#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct TxState {
    /// Every half message below this queue offset is decided.
    check_cursor: u64,
    /// Op records from this op-queue offset on may decide halves at or after the cursor.
    op_scan_from: u64,
    /// Checks sent per undecided half (queue offset → count).
    check_times: BTreeMap<u64, u32>,
}

struct Decisions {
    state: TxState,
    /// Decided halves at or after the cursor: queue offset → op-queue offset.
    decided: BTreeMap<u64, u64>,
    /// Halves whose decision is being written.
    in_progress: std::collections::HashSet<u64>,
    /// When each half was last checked: a producer still working on an answer is not
    /// asked again before `transactionTimeOut` has passed once more.
    last_check_ms: BTreeMap<u64, i64>,
}

pub struct TransactionService {
    path: PathBuf,
    decisions: Mutex<Decisions>,
    dirty: AtomicBool,
    next_channel: AtomicUsize,
}

/// One undecided transaction, for operators.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UndecidedTransaction {
    pub queue_offset: u64,
    pub producer_group: String,
    pub topic: String,
    pub transaction_id: String,
    pub age_ms: i64,
    pub check_times: u32,
}

impl TransactionService {
    /// Loads the state and re-reads the op records that decide halves past the cursor.
    pub fn open(
        root: &std::path::Path,
        store: &ferromq_store::MessageStore,
    ) -> std::io::Result<Self> {
        let path = root.join("config").join("transaction.json");
        let state: TxState = persist::load(&path)?.unwrap_or_default();
        let mut decided = BTreeMap::new();
        let mut from = state.op_scan_from;
        loop {
            let entries = store
                .queue_entries(OP_TOPIC, 0, from, SCAN_CHUNK)
                .map_err(std::io::Error::other)?;
            let Some(last) = entries.last() else { break };
            for e in &entries {
                if let Some(half) = read_op(store, e.phys) {
                    if half >= state.check_cursor {
                        decided.insert(half, e.offset);
                    }
                }
            }
            from = last.offset + 1;
        }
        Ok(TransactionService {
            path,
            decisions: Mutex::new(Decisions {
                state,
                decided,
                in_progress: Default::default(),
                last_check_ms: BTreeMap::new(),
            }),
            dirty: AtomicBool::new(false),
            next_channel: AtomicUsize::new(0),
        })
    }

    fn is_decided(&self, half: u64) -> bool {
        let d = self.decisions.lock().expect("transaction state lock");
        half < d.state.check_cursor
            || d.decided.contains_key(&half)
            || d.in_progress.contains(&half)
    }

    /// Claims the right to decide a half; false when it is decided or being decided.
    fn claim(&self, half: u64) -> bool {
        let mut d = self.decisions.lock().expect("transaction state lock");
        if half < d.state.check_cursor || d.decided.contains_key(&half) {
            return false;
        }
        d.in_progress.insert(half)
    }

    fn settle(&self, half: u64, op_offset: Option<u64>) {
        let mut d = self.decisions.lock().expect("transaction state lock");
        d.in_progress.remove(&half);
        if let Some(op) = op_offset {
            d.decided.insert(half, op);
            d.state.check_times.remove(&half);
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Moves the cursor over decided halves and forgets what lies behind it.
    fn advance_cursor(&self, op_max: u64) {
        let mut d = self.decisions.lock().expect("transaction state lock");
        let mut cursor = d.state.check_cursor;
        while d.decided.contains_key(&cursor) {
            cursor += 1;
        }
        if cursor != d.state.check_cursor {
            d.state.check_cursor = cursor;
            d.decided = d.decided.split_off(&cursor);
            d.state.check_times = d.state.check_times.split_off(&cursor);
            d.last_check_ms = d.last_check_ms.split_off(&cursor);
            self.dirty.store(true, Ordering::Release);
        }
        let scan_from = d.decided.values().min().copied().unwrap_or(op_max);
        if scan_from != d.state.op_scan_from {
            d.state.op_scan_from = scan_from;
            self.dirty.store(true, Ordering::Release);
        }
    }

    fn persist(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let snapshot = self
            .decisions
            .lock()
            .expect("transaction state lock")
            .state
            .clone();
        persist::store(&self.path, &snapshot)
            .inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }

    /// Undecided halves known to be past the cursor, for the runtime info.
    pub fn cursor(&self) -> u64 {
        self.decisions
            .lock()
            .expect("transaction state lock")
            .state
            .check_cursor
    }
}

/// The half offset an op record decides.
fn read_op(store: &ferromq_store::MessageStore, phys: u64) -> Option<u64> {
    let record = store.read_message(phys).ok()??;
    let (m, _) = MessageExt::decode(&record).ok()?;
    std::str::from_utf8(&m.body).ok()?.trim().parse().ok()
}

/// Rewrites a prepared message into a half message.
pub(crate) fn to_half(msg: &mut MessageExt) {
    let mut props = message::without_properties(
        &msg.properties,
        &[message::property::REAL_TOPIC, message::property::REAL_QID],
    );
    message::push_property(&mut props, message::property::REAL_TOPIC, &msg.topic);
    message::push_property(
        &mut props,
        message::property::REAL_QID,
        &msg.queue_id.to_string(),
    );
    if property(&props, message::property::TRANSACTION_ID).is_none() {
        if let Some(uniq) = property(&props, message::property::UNIQ_KEY).map(str::to_string) {
            message::push_property(&mut props, message::property::TRANSACTION_ID, &uniq);
        }
    }
    msg.properties = props;
    msg.sys_flag &= !sys_flag::TRANSACTION_ROLLBACK;
    msg.topic = HALF_TOPIC.to_string();
    msg.queue_id = 0;
}

/// The half as its producer sent it: real topic and queue restored, for checks and commits.
fn restore(half: &MessageExt, check_times: Option<u32>) -> MessageExt {
    let topic = property(&half.properties, message::property::REAL_TOPIC)
        .unwrap_or(&half.topic)
        .to_string();
    let queue_id = property(&half.properties, message::property::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    let mut props = message::without_properties(
        &half.properties,
        &[message::property::TRANSACTION_CHECK_TIMES],
    );
    if let Some(n) = check_times {
        message::push_property(
            &mut props,
            message::property::TRANSACTION_CHECK_TIMES,
            &n.to_string(),
        );
    }
    MessageExt {
        topic,
        queue_id,
        properties: props,
        ..half.clone()
    }
}

fn op_record(half: &MessageExt, decision: &str) -> MessageExt {
    MessageExt {
        topic: OP_TOPIC.to_string(),
        queue_id: 0,
        body: half.queue_offset.to_string().into_bytes().into(),
        properties: message::encode_properties([("TAGS", "d"), ("TRAN_DECISION", decision)]),
        born_timestamp: now_ms(),
        born_host: half.store_host,
        ..Default::default()
    }
}

impl Broker {
    /// RESUME_CHECK_HALF_MESSAGE (323): puts a transaction message back among the halves
    /// with its check count at 0, so the check-back service asks its producer again
    /// (an operator's way out of TRANS_CHECK_MAX_TIME_TOPIC). The message is named by its
    /// offset message id, as Apache's admin API sends it.
    pub(crate) async fn resume_check_half(&self, req: &RemotingCommand) -> RemotingCommand {
        const FAILED: &str = "Put message back to RMQ_SYS_TRANS_HALF_TOPIC failed.";
        let Some((_, phys)) = req
            .ext_fields
            .get("msgId")
            .and_then(|id| message::decode_offset_msg_id(id))
        else {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "the msgId is not an offset message id (32 or 56 hex digits)",
            );
        };
        let record = match self.store.store().read_message(phys as u64) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("no message is stored at offset {phys}"),
                )
            }
        };
        let Ok((mut msg, _)) = MessageExt::decode(&record) else {
            return RemotingCommand::error_response(req, response::SYSTEM_ERROR, FAILED);
        };
        // A message kept in TRANS_CHECK_MAX_TIME_TOPIC names its real topic; a half already.
        let real_topic = property(&msg.properties, message::property::REAL_TOPIC)
            .unwrap_or(&msg.topic)
            .to_string();
        msg.properties = message::without_properties(
            &msg.properties,
            &[message::property::TRANSACTION_CHECK_TIMES],
        );
        message::push_property(
            &mut msg.properties,
            message::property::TRANSACTION_CHECK_TIMES,
            "0",
        );
        if msg.topic != HALF_TOPIC {
            msg.topic = real_topic;
            to_half(&mut msg);
        }
        msg.sys_flag |= sys_flag::TRANSACTION_PREPARED;
        match self.put_messages(vec![msg], true).await {
            Ok(_) => {
                info!(
                    phys,
                    "a transaction message was put back among the halves to be checked again"
                );
                RemotingCommand::response_to(req, response::SUCCESS)
            }
            Err(e) => RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("{FAILED} {e}"),
            ),
        }
    }

    /// END_TRANSACTION (37). Type 0 (unknown) gets no reply, as in Apache.
    pub(crate) async fn end_transaction(&self, req: &RemotingCommand) -> Option<RemotingCommand> {
        let h = match header::<EndTransactionRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return Some(resp),
        };
        if h.commit_or_rollback != TX_COMMIT && h.commit_or_rollback != TX_ROLLBACK {
            return None;
        }
        let commit = h.commit_or_rollback == TX_COMMIT;
        match self
            .decide_transaction(
                &h.producer_group,
                h.commit_log_offset,
                Some(h.tran_state_table_offset),
                commit,
            )
            .await
        {
            Ok(Decided::Now) => Some(RemotingCommand::response_to(req, response::SUCCESS)),
            Ok(Decided::Before) => Some(
                RemotingCommand::response_to(req, response::SUCCESS)
                    .with_remark("the transaction was already decided"),
            ),
            Err(e) => Some(RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                e.to_string(),
            )),
        }
    }

    /// Commits or rolls back the half message at `commit_log_offset` (its queue offset in
    /// the half topic is `half_queue_offset`), as `producer_group`, the group that sent it.
    ///
    /// # Errors
    /// No such half message, another group's, or the decision could not be stored.
    pub async fn decide_transaction(
        &self,
        producer_group: &str,
        commit_log_offset: i64,
        half_queue_offset: Option<i64>,
        commit: bool,
    ) -> Result<Decided, BrokerError> {
        let internal = |e: &dyn std::fmt::Display| BrokerError::Internal(e.to_string());
        let half = match (commit_log_offset >= 0)
            .then(|| self.store.store().read_message(commit_log_offset as u64))
        {
            Some(Ok(Some(record))) => MessageExt::decode(&record).map_err(|e| internal(&e))?.0,
            Some(Err(e)) => return Err(internal(&e)),
            _ => {
                return Err(BrokerError::Internal(
                    "Find prepared transaction message failed".into(),
                ))
            }
        };
        if half.topic != HALF_TOPIC || half_queue_offset.is_some_and(|q| q != half.queue_offset) {
            return Err(BrokerError::Internal(format!(
                "the message at commitLogOffset {commit_log_offset} is not the half message with queue offset {}",
                half_queue_offset.unwrap_or(half.queue_offset)
            )));
        }
        if property(&half.properties, message::property::PGROUP)
            .is_some_and(|g| g != producer_group)
        {
            return Err(BrokerError::Internal(format!(
                "the producer group {producer_group} does not own this transaction"
            )));
        }
        let offset = half.queue_offset as u64;
        if !self.transactions.claim(offset) {
            return Ok(Decided::Before);
        }
        let (decision, mut msgs) = if commit {
            // Apache keeps the half's properties on the committed message (TRAN_MSG, PGROUP,
            // REAL_TOPIC, REAL_QID): its stored properties are built before it clears them.
            let mut committed = restore(&half, None);
            committed.sys_flag = (committed.sys_flag & !sys_flag::TRANSACTION_ROLLBACK)
                | sys_flag::TRANSACTION_COMMIT;
            committed.prepared_transaction_offset = commit_log_offset;
            ("commit", vec![committed])
        } else {
            ("rollback", Vec::new())
        };
        msgs.push(op_record(&half, decision));
        match self
            .put_messages(msgs, true)
            .await
            .or_else(PutError::accept_stored)
        {
            Ok(results) => {
                self.transactions
                    .settle(offset, results.last().map(|r| r.queue_offset));
                let real_topic = half
                    .property(message::property::REAL_TOPIC)
                    .unwrap_or(&half.topic);
                self.metrics.transaction_decided(real_topic, commit);
                Ok(Decided::Now)
            }
            Err(e) => {
                self.transactions.settle(offset, None);
                Err(e.into())
            }
        }
    }

    /// Checks undecided half messages every `transactionCheckInterval` until `shutdown`.
    pub(crate) async fn transaction_check_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let interval = Duration::from_millis(self.config().transaction_check_interval_ms.max(100));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let started = std::time::Instant::now();
            match self.check_round().await {
                Ok(checked) if checked > 0 => {
                    info!(
                        checked,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "transaction check round"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "transaction check round failed"),
            }
            if let Err(e) = self.transactions.persist() {
                warn!(error = %e, "persisting transaction state failed");
            }
        }
        if let Err(e) = self.transactions.persist() {
            warn!(error = %e, "persisting transaction state failed");
        }
    }

    /// One pass over undecided halves old enough to check. Returns how many were checked.
    pub(crate) async fn check_round(&self) -> Result<usize, String> {
        let store = self.store.store().clone();
        self.transactions
            .advance_cursor(store.max_offset(OP_TOPIC, 0));
        let now = now_ms();
        let timeout = self.config().transaction_timeout_ms as i64;
        let reserved_ms = self.config().file_reserved_hours as i64 * 3_600_000;
        let mut from = self.transactions.cursor();
        let mut scanned = 0;
        let mut checked = 0;
        'scan: while scanned < MAX_SCAN_PER_ROUND {
            let entries = store
                .queue_entries(HALF_TOPIC, 0, from, SCAN_CHUNK)
                .map_err(|e| e.to_string())?;
            let Some(last) = entries.last() else { break };
            from = last.offset + 1;
            for e in entries {
                scanned += 1;
                if self.transactions.is_decided(e.offset) {
                    continue;
                }
                let age = now - e.store_ms;
                // Halves are stored in time order: the rest are younger still.
                if age < timeout {
                    break 'scan;
                }
                let Some(record) = store.read_message(e.phys).map_err(|e| e.to_string())? else {
                    continue;
                };
                let Ok((half, _)) = MessageExt::decode(&record) else {
                    continue;
                };
                let immunity_ms = property(
                    &half.properties,
                    message::property::CHECK_IMMUNITY_TIME_IN_SECONDS,
                )
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| s * 1000);
                if immunity_ms.is_some_and(|i| age < i) {
                    continue;
                }
                let times = self
                    .transactions
                    .decisions
                    .lock()
                    .expect("transaction state lock")
                    .state
                    .check_times
                    .get(&e.offset)
                    .copied()
                    .unwrap_or(0);
                if times >= self.config().transaction_check_max || age > reserved_ms {
                    self.give_up(&half, times).await?;
                    continue;
                }
                let recently_checked = {
                    let d = self
                        .transactions
                        .decisions
                        .lock()
                        .expect("transaction state lock");
                    d.last_check_ms
                        .get(&e.offset)
                        .is_some_and(|at| now - at < timeout)
                };
                if recently_checked {
                    continue;
                }
                let group = property(&half.properties, message::property::PGROUP)
                    .unwrap_or_default()
                    .to_string();
                let channels = self.clients.producer_channels(&group);
                let other_front = self
                    .client_fronts
                    .read()
                    .expect("checkers lock")
                    .iter()
                    .find(|c| c.has_producer(&group))
                    .cloned();
                if channels.is_empty() && other_front.is_none() {
                    continue;
                }
                let times = times + 1;
                {
                    let mut d = self
                        .transactions
                        .decisions
                        .lock()
                        .expect("transaction state lock");
                    d.state.check_times.insert(e.offset, times);
                    d.last_check_ms.insert(e.offset, now);
                }
                self.transactions.dirty.store(true, Ordering::Release);
                let check_msg = restore(&half, Some(times));
                if channels.is_empty() {
                    if let Some(front) = other_front {
                        front.check_transaction(&group, check_msg, half.offset_msg_id());
                        checked += 1;
                    }
                    continue;
                }
                let channel = &channels[self
                    .transactions
                    .next_channel
                    .fetch_add(1, Ordering::Relaxed)
                    % channels.len()];
                let mut body = bytes::BytesMut::with_capacity(check_msg.encoded_len());
                check_msg.encode(&mut body);
                let uniq = property(&half.properties, message::property::UNIQ_KEY)
                    .unwrap_or_default()
                    .to_string();
                let mut cmd = RemotingCommand::request(request::CHECK_TRANSACTION_STATE)
                    .with_body(body.freeze());
                cmd.language = ferromq_protocol::LanguageCode::Java;
                CheckTransactionStateRequestHeader {
                    tran_state_table_offset: e.offset as i64,
                    commit_log_offset: e.phys as i64,
                    msg_id: Some(uniq.clone()),
                    transaction_id: Some(uniq),
                    offset_msg_id: Some(half.offset_msg_id()),
                }
                .encode(&mut cmd.ext_fields);
                let _ = channel.conn.invoke_oneway(cmd).await;
                checked += 1;
            }
        }
        Ok(checked)
    }

    /// Stops checking a half: it is kept in TRANS_CHECK_MAX_TIME_TOPIC and never delivered.
    async fn give_up(&self, half: &MessageExt, times: u32) -> Result<(), String> {
        let offset = half.queue_offset as u64;
        if !self.transactions.claim(offset) {
            return Ok(());
        }
        warn!(
            queue_offset = offset,
            checks = times,
            producer_group = property(&half.properties, message::property::PGROUP).unwrap_or(""),
            "transaction undecided after its last check; moved to {CHECK_MAX_TOPIC}"
        );
        if let Ok((_, true)) =
            self.topics
                .ensure_system_topic(CHECK_MAX_TOPIC, 1, ferromq_protocol::body::perm::READ)
        {
            self.announce_topics([CHECK_MAX_TOPIC.to_string()]);
        }
        let mut kept = restore(half, Some(times));
        kept.topic = CHECK_MAX_TOPIC.to_string();
        kept.queue_id = 0;
        kept.properties = message::without_properties(
            &kept.properties,
            &[message::property::REAL_TOPIC, message::property::REAL_QID],
        );
        message::push_property(
            &mut kept.properties,
            message::property::REAL_TOPIC,
            &restore(half, None).topic,
        );
        match self
            .put_messages(vec![kept, op_record(half, "checkmax")], true)
            .await
            .or_else(PutError::accept_stored)
        {
            Ok(results) => {
                self.transactions
                    .settle(offset, results.last().map(|r| r.queue_offset));
                Ok(())
            }
            Err(e) => {
                self.transactions.settle(offset, None);
                Err(e.to_string())
            }
        }
    }

    /// Undecided transactions past the check cursor, oldest first, at most `max`.
    pub fn undecided_transactions(&self, max: usize) -> Vec<UndecidedTransaction> {
        let store = self.store.store();
        let now = now_ms();
        let mut out = Vec::new();
        let mut from = self.transactions.cursor();
        while out.len() < max {
            let Ok(entries) = store.queue_entries(HALF_TOPIC, 0, from, SCAN_CHUNK) else {
                break;
            };
            let Some(last) = entries.last() else { break };
            from = last.offset + 1;
            for e in entries {
                if out.len() >= max || self.transactions.is_decided(e.offset) {
                    continue;
                }
                let Ok(Some(record)) = store.read_message(e.phys) else {
                    continue;
                };
                let Ok((half, _)) = MessageExt::decode(&record) else {
                    continue;
                };
                let times = self
                    .transactions
                    .decisions
                    .lock()
                    .expect("transaction state lock")
                    .state
                    .check_times
                    .get(&e.offset)
                    .copied();
                out.push(UndecidedTransaction {
                    queue_offset: e.offset,
                    producer_group: property(&half.properties, message::property::PGROUP)
                        .unwrap_or_default()
                        .into(),
                    topic: property(&half.properties, message::property::REAL_TOPIC)
                        .unwrap_or_default()
                        .into(),
                    transaction_id: property(&half.properties, message::property::UNIQ_KEY)
                        .unwrap_or_default()
                        .into(),
                    age_ms: now - e.store_ms,
                    check_times: times.unwrap_or(0),
                });
            }
        }
        out
    }
}
