//! Request-reply: [`Producer::request`] sends a message naming this client and a
//! correlation id and waits for the reply the broker pushes back
//! (PUSH_REPLY_MESSAGE_TO_CLIENT); [`Producer::reply`] answers a request a consumer
//! received, through the cluster's reply topic (SEND_REPLY_MESSAGE_V2).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::message::{self, properties_iter, property, sys_flag, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use tokio::sync::oneshot;
use tracing::debug;

use crate::error::{ClientError, Result};
use crate::instance::{unique_id, ServerRequestHandler};
use crate::message::{Message, SendResult};
use crate::producer::Producer;

/// `MSG_TYPE` of a reply (Apache's `MixAll.REPLY_MESSAGE_FLAG`).
const REPLY_FLAG: &str = "reply";
/// The requester's timeout, carried for the replier (`TTL`).
const TTL: &str = "TTL";

/// Requests waiting for their replies, by correlation id.
#[derive(Default)]
pub(crate) struct Replies {
    waiting: Mutex<HashMap<String, oneshot::Sender<Message>>>,
}

impl Replies {
    fn forget(&self, correlation: &str) {
        self.waiting
            .lock()
            .expect("reply table lock")
            .remove(correlation);
    }
}

impl ServerRequestHandler for Replies {
    fn handle(&self, _conn: &Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        if req.code != request::PUSH_REPLY_MESSAGE_TO_CLIENT {
            return None;
        }
        let field = |k: &str| req.ext_fields.get(k).map(String::as_str);
        let flags = field("sysFlag")
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0);
        let body = if flags & sys_flag::COMPRESSED != 0 {
            match crate::message::inflate(&req.body) {
                Ok(out) => Bytes::from(out),
                Err(e) => {
                    return Some(RemotingCommand::error_response(
                        &req,
                        response::SYSTEM_ERROR,
                        format!("the reply's compressed body does not inflate: {e}"),
                    ))
                }
            }
        } else {
            req.body.clone()
        };
        let reply = Message {
            topic: field("topic").unwrap_or_default().to_string(),
            body,
            flag: field("flag").and_then(|v| v.parse().ok()).unwrap_or(0),
            properties: properties_iter(field("properties").unwrap_or_default())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let waiter = reply
            .property(property::CORRELATION_ID)
            .and_then(|id| self.waiting.lock().expect("reply table lock").remove(id));
        match waiter {
            Some(tx) => {
                let _ = tx.send(reply);
            }
            None => debug!(
                correlation = ?reply.property(property::CORRELATION_ID),
                "a reply that no request waits for (it timed out)"
            ),
        }
        Some(RemotingCommand::response_to(&req, response::SUCCESS))
    }
}

impl Producer {
    /// Sends `msg` as a request and waits up to `timeout` for its reply (a consumer answers
    /// with [`Producer::reply`], or an official client's reply message).
    ///
    /// # Errors
    /// The send failed, or no reply came in time.
    pub async fn request(&self, mut msg: Message, timeout: Duration) -> Result<Message> {
        let started = Instant::now();
        let correlation = unique_id();
        msg.properties
            .insert(property::CORRELATION_ID.into(), correlation.clone());
        msg.properties.insert(
            property::REPLY_TO_CLIENT.into(),
            self.inner.instance.client_id.clone(),
        );
        msg.properties
            .insert(TTL.into(), timeout.as_millis().to_string());
        let topic = msg.topic.clone();
        let (tx, rx) = oneshot::channel();
        let replies = &self.inner.replies;
        replies
            .waiting
            .lock()
            .expect("reply table lock")
            .insert(correlation.clone(), tx);
        if let Err(e) = self.send(msg).await {
            replies.forget(&correlation);
            return Err(e);
        }
        match tokio::time::timeout(timeout.saturating_sub(started.elapsed()), rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => {
                replies.forget(&correlation);
                Err(ClientError::RequestTimeout {
                    topic,
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        }
    }

    /// Answers a request message a consumer received: `body` goes to its requester through
    /// the reply topic of the request's cluster.
    ///
    /// # Errors
    /// The message is not a request, or the broker could not deliver the reply (its
    /// requester is gone).
    pub async fn reply(
        &self,
        request_msg: &MessageExt,
        body: impl Into<Bytes>,
    ) -> Result<SendResult> {
        let get = |name: &str| message::property(&request_msg.properties, name);
        let (Some(cluster), Some(requester), Some(correlation)) = (
            get(property::CLUSTER),
            get(property::REPLY_TO_CLIENT),
            get(property::CORRELATION_ID),
        ) else {
            return Err(ClientError::InvalidArgument(
                "not a request message: it lacks CLUSTER, REPLY_TO_CLIENT or CORRELATION_ID".into(),
            ));
        };
        let mut reply = Message::new(format!("{cluster}_REPLY_TOPIC"), body);
        for (name, value) in [
            (property::MSG_TYPE, REPLY_FLAG),
            (property::REPLY_TO_CLIENT, requester),
            (property::CORRELATION_ID, correlation),
            (TTL, get(TTL).unwrap_or_default()),
        ] {
            reply.properties.insert(name.into(), value.into());
        }
        self.send(reply).await
    }
}

/// Whether a message to send is a reply (sent with SEND_REPLY_MESSAGE_V2).
pub(crate) fn is_reply(msg: &Message) -> bool {
    msg.property(property::MSG_TYPE) == Some(REPLY_FLAG)
}
