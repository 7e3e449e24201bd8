//! The pull consumer: the application chooses queues and offsets.

use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::code::{request, response};
use ferromq_protocol::message::{self, property, MessageExt};
use ferromq_protocol::RemotingCommand;

use super::Selector;
use crate::error::{ClientError, Result};
use crate::instance::{route_queues, ClientInstance};
use crate::message::MessageQueue;

/// What a pull found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    NoNewMessage,
    NoMatchedMessage,
    /// The offset was illegal; continue from `next_offset`.
    OffsetIllegal,
}

#[derive(Debug, Clone)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    pub messages: Vec<MessageExt>,
}

/// A consumer that pulls from queues it names, at offsets it keeps (or commits to the
/// broker under its group).
#[derive(Clone)]
pub struct PullConsumer {
    instance: Arc<ClientInstance>,
    group: String,
}

impl PullConsumer {
    /// # Errors
    /// No name server given.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        name_servers: I,
        group: impl Into<String>,
    ) -> Result<Self> {
        let namesrv: Vec<String> = name_servers.into_iter().map(Into::into).collect();
        if namesrv.is_empty() {
            return Err(ClientError::InvalidArgument(
                "at least one name server is required".into(),
            ));
        }
        let group = group.into();
        Ok(PullConsumer {
            instance: ClientInstance::new(
                namesrv,
                &format!("{group}-pull"),
                Duration::from_secs(5),
            ),
            group,
        })
    }

    /// The readable queues of a topic.
    pub async fn fetch_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let route =
            self.instance
                .fetch_route(topic)
                .await?
                .ok_or_else(|| ClientError::NoRoute {
                    topic: topic.into(),
                })?;
        Ok(route_queues(topic, &route, false))
    }

    async fn addr(&self, mq: &MessageQueue) -> Result<String> {
        let route = self
            .instance
            .route(&mq.topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: mq.topic.clone(),
            })?;
        ClientInstance::master_addr(&route, &mq.broker_name).ok_or_else(|| ClientError::NoRoute {
            topic: mq.topic.clone(),
        })
    }

    /// Pulls up to `max` messages from `offset`, waiting up to `wait` for new ones.
    pub async fn pull(
        &self,
        mq: &MessageQueue,
        selector: &Selector,
        offset: i64,
        max: i32,
        wait: Duration,
    ) -> Result<PullResult> {
        let addr = self.addr(mq).await?;
        let suspend = !wait.is_zero();
        let req = RemotingCommand::request(request::PULL_MESSAGE)
            .with_field("consumerGroup", &self.group)
            .with_field("topic", &mq.topic)
            .with_field("queueId", mq.queue_id)
            .with_field("queueOffset", offset)
            .with_field("maxMsgNums", max.clamp(1, 1024))
            .with_field("sysFlag", 0x4 | if suspend { 0x2 } else { 0 })
            .with_field("commitOffset", 0)
            .with_field("suspendTimeoutMillis", wait.as_millis() as i64)
            .with_field("subscription", selector.expression())
            .with_field("subVersion", 0)
            .with_field("expressionType", selector.expression_type());
        let resp = self
            .instance
            .invoke_timeout(&addr, req, wait + Duration::from_secs(10))
            .await?;
        let field = |k: &str| {
            resp.field(k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let (status, messages) = match resp.code {
            response::SUCCESS => {
                let msgs =
                    MessageExt::decode_all(&resp.body).map_err(|e| ClientError::Malformed {
                        operation: "PULL_MESSAGE",
                        reason: e.to_string(),
                    })?;
                let msgs: Vec<MessageExt> = msgs
                    .into_iter()
                    .filter(|m| selector.accepts(property(&m.properties, message::property::TAGS)))
                    .collect();
                (
                    if msgs.is_empty() {
                        PullStatus::NoMatchedMessage
                    } else {
                        PullStatus::Found
                    },
                    msgs,
                )
            }
            response::PULL_NOT_FOUND => (PullStatus::NoNewMessage, vec![]),
            response::PULL_RETRY_IMMEDIATELY => (PullStatus::NoMatchedMessage, vec![]),
            response::PULL_OFFSET_MOVED => (PullStatus::OffsetIllegal, vec![]),
            code => {
                return Err(ClientError::Broker {
                    operation: "PULL_MESSAGE",
                    addr,
                    code,
                    remark: resp.remark.unwrap_or_default(),
                })
            }
        };
        Ok(PullResult {
            status,
            next_offset: field("nextBeginOffset"),
            min_offset: field("minOffset"),
            max_offset: field("maxOffset"),
            messages,
        })
    }

    /// The offset committed for this group, if any.
    pub async fn committed_offset(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        let addr = self.addr(mq).await?;
        let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_field("consumerGroup", &self.group)
            .with_field("topic", &mq.topic)
            .with_field("queueId", mq.queue_id);
        let resp = self.instance.invoke(&addr, req).await?;
        match resp.code {
            response::SUCCESS => Ok(resp.field("offset").and_then(|o| o.parse().ok())),
            response::QUERY_NOT_FOUND => Ok(None),
            code => Err(ClientError::Broker {
                operation: "QUERY_CONSUMER_OFFSET",
                addr,
                code,
                remark: resp.remark.unwrap_or_default(),
            }),
        }
    }

    /// Commits an offset for this group.
    pub async fn commit_offset(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let addr = self.addr(mq).await?;
        let req = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_field("consumerGroup", &self.group)
            .with_field("topic", &mq.topic)
            .with_field("queueId", mq.queue_id)
            .with_field("commitOffset", offset);
        let resp = self.instance.invoke(&addr, req).await?;
        if resp.code != response::SUCCESS {
            return Err(ClientError::Broker {
                operation: "UPDATE_CONSUMER_OFFSET",
                addr,
                code: resp.code,
                remark: resp.remark.unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// The queue's max offset (next to be written).
    pub async fn max_offset(&self, mq: &MessageQueue) -> Result<i64> {
        let addr = self.addr(mq).await?;
        let req = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_field("topic", &mq.topic)
            .with_field("queueId", mq.queue_id);
        let resp = self.instance.invoke(&addr, req).await?;
        resp.field("offset")
            .and_then(|o| o.parse().ok())
            .ok_or(ClientError::Malformed {
                operation: "GET_MAX_OFFSET",
                reason: "no offset".into(),
            })
    }

    pub fn shutdown(&self) {
        self.instance.close();
    }
}
