//! Transactional producers: a half message, the local transaction, then commit or
//! rollback; and answers to the broker's check-back when the outcome was unknown.

use std::sync::Arc;

use ferromq_protocol::code::request;
use ferromq_protocol::header::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader,
};
use ferromq_protocol::message::{self, property, sys_flag, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use tracing::warn;

use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, Credentials, ServerRequestHandler};
use crate::message::{Message, SendResult};
use crate::producer::{Producer, ProducerBuilder};

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTransactionState {
    Commit,
    Rollback,
    /// Not known yet: the broker will ask again later.
    Unknown,
}

impl LocalTransactionState {
    fn code(self) -> i32 {
        match self {
            LocalTransactionState::Commit => sys_flag::TRANSACTION_COMMIT,
            LocalTransactionState::Rollback => sys_flag::TRANSACTION_ROLLBACK,
            LocalTransactionState::Unknown => 0,
        }
    }
}

/// The application side of transactions.
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction after the half message is stored.
    fn execute_local_transaction(&self, msg: &Message) -> LocalTransactionState;
    /// Answers the broker's question about a transaction whose outcome it does not know.
    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState;
}

/// A producer of transaction messages.
#[derive(Clone)]
pub struct TransactionProducer {
    producer: Producer,
    listener: Arc<dyn TransactionListener>,
}

/// What [`TransactionProducer::send_in_transaction`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionSendResult {
    pub send: SendResult,
    pub state: LocalTransactionState,
}

struct CheckHandler {
    group: String,
    listener: Arc<dyn TransactionListener>,
    credentials: Option<Credentials>,
}

impl ServerRequestHandler for CheckHandler {
    fn handle(&self, conn: &Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        if req.code != request::CHECK_TRANSACTION_STATE {
            return None;
        }
        let conn = conn.clone();
        let group = self.group.clone();
        let listener = self.listener.clone();
        let credentials = self.credentials.clone();
        // The listener may block (the tutorial's sleeps 15 s): keep it off the reader.
        tokio::task::spawn_blocking(move || {
            let Ok(h) = CheckTransactionStateRequestHeader::decode(&req.ext_fields) else {
                return;
            };
            let Some(msg) = MessageExt::decode_all(&req.body)
                .ok()
                .and_then(|mut m| m.pop())
            else {
                return;
            };
            if property(&msg.properties, message::property::PGROUP) != Some(group.as_str()) {
                return;
            }
            let state = listener.check_local_transaction(&msg);
            let uniq = property(&msg.properties, message::property::UNIQ_KEY).map(str::to_string);
            let mut end = RemotingCommand::request(request::END_TRANSACTION);
            EndTransactionRequestHeader {
                producer_group: group,
                tran_state_table_offset: h.tran_state_table_offset,
                commit_log_offset: h.commit_log_offset,
                commit_or_rollback: state.code(),
                from_transaction_check: Some(true),
                msg_id: uniq.clone(),
                transaction_id: h.transaction_id.or(uniq),
            }
            .encode(&mut end.ext_fields);
            if let Some(c) = &credentials {
                c.sign(&mut end);
            }
            tokio::runtime::Handle::current().block_on(async move {
                if let Err(e) = conn.invoke_oneway(end).await {
                    warn!(error = %e, "answering a transaction check failed");
                }
            });
        });
        None
    }
}

impl TransactionProducer {
    /// A transactional producer from a producer configuration and a listener.
    pub fn new(builder: ProducerBuilder, listener: impl TransactionListener) -> Result<Self> {
        let credentials = builder.credentials.clone();
        let producer = builder.build()?;
        let listener: Arc<dyn TransactionListener> = Arc::new(listener);
        producer.inner.instance.add_handler(Arc::new(CheckHandler {
            group: producer.group().to_string(),
            listener: listener.clone(),
            credentials,
        }));
        Ok(TransactionProducer { producer, listener })
    }

    /// Sends a half message, runs the local transaction, and reports its outcome to the
    /// broker. An `Unknown` outcome is settled later by the broker's check-back.
    pub async fn send_in_transaction(&self, msg: Message) -> Result<TransactionSendResult> {
        if msg.property(message::property::DELAY).is_some() {
            return Err(ClientError::InvalidArgument(
                "transaction messages cannot be delayed".into(),
            ));
        }
        let msg = msg
            .with_property(message::property::TRAN_MSG, "true")
            .with_property(message::property::PGROUP, self.producer.group());
        let send = self.producer.send(msg.clone()).await?;
        // The broker checks producers it knows by heartbeat.
        self.producer.inner.instance.request_heartbeat();
        let listener = self.listener.clone();
        let local_msg = msg.clone();
        let state =
            tokio::task::spawn_blocking(move || listener.execute_local_transaction(&local_msg))
                .await
                .unwrap_or(LocalTransactionState::Unknown);
        let (_, commit_log_offset) = message::decode_offset_msg_id(&send.offset_msg_id)
            .ok_or_else(|| ClientError::Malformed {
                operation: "SEND_MESSAGE",
                reason: "bad offset msgId".into(),
            })?;
        let mut end = RemotingCommand::request(request::END_TRANSACTION);
        EndTransactionRequestHeader {
            producer_group: self.producer.group().to_string(),
            tran_state_table_offset: send.queue_offset,
            commit_log_offset,
            commit_or_rollback: state.code(),
            from_transaction_check: Some(false),
            msg_id: Some(send.msg_id.clone()),
            transaction_id: send.transaction_id.clone(),
        }
        .encode(&mut end.ext_fields);
        if state != LocalTransactionState::Unknown {
            let (route, _) = self
                .producer
                .inner
                .instance
                .publish_route(&msg.topic, 4)
                .await?;
            if let Some(addr) = ClientInstance::master_addr(&route, &send.queue.broker_name) {
                self.producer.inner.instance.oneway(&addr, end).await?;
            }
        }
        Ok(TransactionSendResult { send, state })
    }

    pub fn shutdown(&self) {
        self.producer.shutdown();
    }
}
