//! `apache.rocketmq.v2.MessagingService` over the broker's transport-free operations.
//! Every refusal is an answer with a `status`, as Apache's proxy gives it; a transport-level
//! gRPC error only for a request that is not one at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_broker::filter::MessageFilter;
use ferromq_broker::{Broker, BrokerError, PopRequest, SendRequest};
use ferromq_grpc_proto::v2::{
    self as pb, messaging_service_server::MessagingService, receive_message_response,
    telemetry_command, Code, MessageType, Permission,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, error_status, ok, status, Handle};
use ferromq_broker::acl;

use crate::renew::{Delivery, Renewals};
use crate::settings;

type Reply<T> = Result<Response<T>, Status>;

/// Apache's bounds on a simple consumer's invisible time.
const MIN_INVISIBLE_MS: i64 = 10_000;
const MAX_INVISIBLE_MS: i64 = 12 * 3600 * 1000;
/// Long-polling bounds (Apache's proxy clamps to 5–20 s).
const MIN_POLL: Duration = Duration::from_secs(5);
const MAX_POLL: Duration = Duration::from_secs(20);

/// What the front knows of one gRPC client (the broker lists it from its settings).
pub struct GrpcClient {
    pub settings: pb::Settings,
    /// Its Telemetry stream, for commands from the broker (transaction check-backs).
    telemetry: mpsc::Sender<Result<pb::TelemetryCommand, Status>>,
}

impl GrpcClient {
    fn publishes(&self, topic: &str) -> bool {
        matches!(&self.settings.pub_sub,
            Some(pb::settings::PubSub::Publishing(p)) if p.topics.iter().any(|t| t.name == topic))
    }
}

/// The gRPC clients known to this front, by client id.
#[derive(Default)]
pub struct Clients {
    by_id: Mutex<HashMap<String, GrpcClient>>,
    /// Thread-stack requests awaiting the client's answer, by nonce.
    pending_stacks: Pending<Result<String, String>>,
    /// Verify-message requests awaiting the client's answer, by nonce.
    pending_verifies: Pending<Result<&'static str, String>>,
}

/// Questions put to clients over Telemetry, awaiting their answer, by nonce.
type Pending<T> = Mutex<HashMap<String, tokio::sync::oneshot::Sender<T>>>;

impl Clients {
    /// Sends a live client the command `command(nonce)` builds and returns where its
    /// answer (matched by nonce) will arrive; `None` when it is not connected.
    fn ask<T>(
        &self,
        client_id: &str,
        pending: &Pending<T>,
        command: impl FnOnce(String) -> telemetry_command::Command,
    ) -> Option<tokio::sync::oneshot::Receiver<T>> {
        let map = self.by_id.lock().expect("clients lock");
        let client = map.get(client_id).filter(|c| !c.telemetry.is_closed())?;
        let nonce = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut pending = pending.lock().expect("pending answers lock");
            // Questions whose asker stopped waiting (timed out) will not be answered usefully.
            pending.retain(|_, waiting| !waiting.is_closed());
            pending.insert(nonce.clone(), tx);
        }
        let sent = client.telemetry.try_send(Ok(pb::TelemetryCommand {
            status: Some(ok()),
            command: Some(command(nonce.clone())),
        }));
        if sent.is_err() {
            pending.lock().expect("pending answers lock").remove(&nonce);
            return None;
        }
        Some(rx)
    }

    /// Hands a client's answer to whoever asked (nothing when no one waits any more).
    fn answered<T>(pending: &Pending<T>, nonce: &str, answer: T) {
        let waiting = pending.lock().expect("pending answers lock").remove(nonce);
        if let Some(waiting) = waiting {
            let _ = waiting.send(answer);
        }
    }
}

/// gRPC producers answer check-backs over their Telemetry stream. Their producer group is
/// the topic (as Apache's proxy sets `PGROUP`).
impl ferromq_broker::client::ClientFront for Clients {
    fn has_producer(&self, group: &str) -> bool {
        let map = self.by_id.lock().expect("clients lock");
        map.values()
            .any(|c| c.publishes(group) && !c.telemetry.is_closed())
    }

    fn check_transaction(
        &self,
        group: &str,
        message: ferromq_protocol::message::MessageExt,
        transaction_id: String,
    ) {
        let map = self.by_id.lock().expect("clients lock");
        let live: Vec<&GrpcClient> = map
            .values()
            .filter(|c| c.publishes(group) && !c.telemetry.is_closed())
            .collect();
        if live.is_empty() {
            return;
        }
        let client = live[rand::random::<usize>() % live.len()];
        let command = pb::TelemetryCommand {
            status: Some(ok()),
            command: Some(
                telemetry_command::Command::RecoverOrphanedTransactionCommand(
                    pb::RecoverOrphanedTransactionCommand {
                        message: Some(convert::delivered(&message, None)),
                        transaction_id,
                    },
                ),
            ),
        };
        // A full stream is a stuck client: the next round asks again.
        let _ = client.telemetry.try_send(Ok(command));
    }

    fn thread_stack(
        &self,
        client_id: &str,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<String, String>>> {
        self.ask(client_id, &self.pending_stacks, |nonce| {
            telemetry_command::Command::PrintThreadStackTraceCommand(
                pb::PrintThreadStackTraceCommand { nonce },
            )
        })
    }

    fn verify_message(
        &self,
        client_id: &str,
        message: ferromq_protocol::message::MessageExt,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<&'static str, String>>> {
        self.ask(client_id, &self.pending_verifies, |nonce| {
            telemetry_command::Command::VerifyMessageCommand(pb::VerifyMessageCommand {
                nonce,
                message: Some(convert::delivered(&message, None)),
            })
        })
    }
}

impl Clients {
    /// Whether the client's Telemetry stream is open.
    pub fn is_live(&self, id: &str) -> bool {
        let map = self.by_id.lock().expect("clients lock");
        map.get(id).is_some_and(|c| !c.telemetry.is_closed())
    }

    fn settings(&self, id: &str) -> Option<pb::Settings> {
        let map = self.by_id.lock().expect("clients lock");
        map.get(id).map(|c| c.settings.clone())
    }
}

pub struct Front {
    broker: Arc<Broker>,
    pub clients: Arc<Clients>,
    pub renewals: Arc<Renewals>,
}

impl Front {
    pub fn new(broker: Arc<Broker>) -> Self {
        Front {
            broker,
            clients: Arc::default(),
            renewals: Arc::default(),
        }
    }

    /// The ACL's verdict on a call (always yes without `aclEnable`): the client's signed
    /// `authorization` header and its permission on each resource.
    fn authorize<T>(&self, req: &Request<T>, resources: &[(String, u8)]) -> Result<(), pb::Status> {
        Caller::of(req)
            .check(&self.broker, resources)
            .map_err(|why| status(Code::Unauthorized, why))
    }

    /// The pop time to ack or renew a delivery by: the renewed one when the front renews
    /// it for a push consumer (the client holds its first handle), else the handle's own,
    /// refused once that has expired.
    fn current_pop_time(&self, group: &str, topic: &str, h: &Handle) -> Result<i64, pb::Status> {
        let delivery = Delivery {
            group: group.to_string(),
            topic: h.real_topic(topic, group),
            queue_id: h.queue_id,
            offset: h.offset,
        };
        if let Some(pop_time) = self.renewals.take(&delivery) {
            return Ok(pop_time);
        }
        if h.pop_time + h.invisible_ms <= convert::now_ms() {
            return Err(status(
                Code::InvalidReceiptHandle,
                "receipt handle is expired",
            ));
        }
        Ok(h.pop_time)
    }
}

/// What the ACL needs of a call: its signed `authorization` header, the `x-mq-date-time`
/// it signs, and where it comes from.
struct Caller {
    authorization: Option<String>,
    date_time: String,
    ip: std::net::IpAddr,
}

impl Caller {
    fn of<T>(req: &Request<T>) -> Caller {
        Caller {
            authorization: req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            date_time: metadata(req, "x-mq-date-time"),
            ip: req
                .remote_addr()
                .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip()),
        }
    }

    fn check(&self, broker: &Broker, resources: &[(String, u8)]) -> Result<(), String> {
        broker.check_front_access(
            self.authorization.as_deref(),
            &self.date_time,
            resources,
            self.ip,
        )
    }
}

fn metadata(req: &Request<impl Sized>, key: &str) -> String {
    req.metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn client_id(req: &Request<impl Sized>) -> Result<String, pb::Status> {
    let id = metadata(req, "x-mq-client-id");
    if id.is_empty() {
        return Err(status(Code::ClientIdRequired, "client id cannot be empty"));
    }
    Ok(id)
}

fn no_settings() -> pb::Status {
    status(
        Code::UnrecognizedClientType,
        "cannot find client settings for this client: its Telemetry stream has not sent them yet",
    )
}

fn resource_name(r: &Option<pb::Resource>) -> String {
    r.as_ref().map(|r| r.name.clone()).unwrap_or_default()
}

/// The topic's declared message type (its `message.type` attribute; NORMAL without one).
fn topic_message_type(topic: &ferromq_protocol::body::TopicConfig) -> Vec<MessageType> {
    match topic.attributes.get("message.type").map(String::as_str) {
        None | Some("NORMAL") => vec![MessageType::Normal],
        Some("FIFO") => vec![MessageType::Fifo],
        Some("DELAY") => vec![MessageType::Delay],
        Some("TRANSACTION") => vec![MessageType::Transaction],
        Some("PRIORITY") => vec![MessageType::Priority],
        Some("MIXED") => vec![
            MessageType::Normal,
            MessageType::Fifo,
            MessageType::Delay,
            MessageType::Transaction,
        ],
        Some(_) => vec![MessageType::Unspecified],
    }
}

/// Java's `String.hashCode`, so a message group maps to the same queue as in Apache.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| {
        h.wrapping_mul(31).wrapping_add(i32::from(c as i16))
    })
}

impl Front {
    fn broker_endpoint(&self, requested: &Option<pb::Endpoints>) -> pb::Broker {
        pb::Broker {
            name: self.broker.config().broker_name.clone(),
            id: 0,
            endpoints: requested.clone(),
        }
    }

    fn message_queues(
        &self,
        topic: &str,
        endpoints: &Option<pb::Endpoints>,
    ) -> Result<Vec<pb::MessageQueue>, pb::Status> {
        let config = self
            .broker
            .topic(topic)
            .ok_or_else(|| error_status(&BrokerError::TopicNotFound(topic.to_string())))?;
        let accept: Vec<i32> = topic_message_type(&config)
            .into_iter()
            .map(|t| t as i32)
            .collect();
        let (r, w) = (
            config.read_queue_nums.max(0),
            config.write_queue_nums.max(0),
        );
        let broker = self.broker_endpoint(endpoints);
        let readable = config.perm & ferromq_protocol::body::perm::READ != 0;
        let writable = config.perm & ferromq_protocol::body::perm::WRITE != 0;
        Ok((0..r.max(w))
            .map(|id| {
                let permission = match (readable && id < r, writable && id < w) {
                    (true, true) => Permission::ReadWrite,
                    (true, false) => Permission::Read,
                    (false, true) => Permission::Write,
                    (false, false) => Permission::None,
                };
                pb::MessageQueue {
                    topic: Some(pb::Resource {
                        resource_namespace: String::new(),
                        name: topic.to_string(),
                    }),
                    id,
                    permission: permission as i32,
                    broker: Some(broker.clone()),
                    accept_message_types: accept.clone(),
                }
            })
            .collect())
    }

    /// One message's send. `Err`: a message-type conflict, which Apache's proxy answers
    /// for the whole request (its status, no entries).
    async fn send_one(
        &self,
        m: &pb::Message,
        peer: &str,
        validate_type: bool,
    ) -> Result<pb::SendResultEntry, pb::Status> {
        let failed = |s: pb::Status| pb::SendResultEntry {
            status: Some(s),
            ..Default::default()
        };
        let topic_name = resource_name(&m.topic);
        let Some(topic) = self.broker.topic(&topic_name) else {
            return Ok(failed(error_status(&BrokerError::TopicNotFound(
                topic_name,
            ))));
        };
        let max_body = self.broker.config().max_message_size;
        let (outgoing, sys_flag, born_ms) = match convert::outgoing(m, &topic_name, peer, max_body)
        {
            Ok(o) => o,
            Err(convert::Refusal(code, why)) => return Ok(failed(status(code, why))),
        };
        let actual = convert::message_type(&outgoing.properties);
        let expected = topic_message_type(&topic);
        if validate_type && !expected.contains(&actual) {
            return Err(status(
                Code::MessagePropertyConflictWithType,
                format!(
                    "TopicMessageType validate failed, the expected type is {}, but actual type is {}",
                    expected.first().map_or("UNSPECIFIED", |t| t.as_str_name()),
                    actual.as_str_name()
                ),
            ));
        }
        let writable = topic.write_queue_nums.max(1);
        let queue_id = m
            .system_properties
            .as_ref()
            .and_then(|s| s.message_group.as_deref())
            .filter(|g| !g.is_empty())
            .map(|g| java_hash(g).unsigned_abs() as i32 % writable);
        let request = SendRequest {
            topic: topic_name,
            queue_id,
            messages: vec![outgoing],
            born_host: peer
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            sys_flag,
            born_timestamp: born_ms,
            reconsume_times: 0,
            default_topic: None,
            default_topic_queue_nums: None,
            batch: false,
            wait_flush: true,
        };
        Ok(match self.broker.send(request).await {
            Ok(outcome) => {
                let code = match outcome.shortfall {
                    None => Code::Ok,
                    Some(ferromq_broker::Shortfall::FlushTimeout) => Code::MasterPersistenceTimeout,
                    Some(ferromq_broker::Shortfall::SlaveTimeout) => Code::SlavePersistenceTimeout,
                    Some(ferromq_broker::Shortfall::SlaveNotAvailable) => Code::HaNotAvailable,
                };
                let id = outcome.uniq_key.clone().unwrap_or_default();
                // A transaction's id names its half message (the offset message id), so
                // EndTransaction finds it without a table, across restarts too.
                let transaction_id = match actual {
                    MessageType::Transaction => {
                        outcome.offset_msg_ids.first().cloned().unwrap_or_default()
                    }
                    _ => id.clone(),
                };
                pb::SendResultEntry {
                    status: Some(if code == Code::Ok {
                        ok()
                    } else {
                        status(code, format!("send message failed, {code:?}"))
                    }),
                    message_id: id,
                    transaction_id,
                    offset: outcome.results.first().map_or(0, |r| r.queue_offset as i64),
                    recall_handle: outcome.recall_handle.clone().unwrap_or_default(),
                }
            }
            Err(e) => failed(error_status(&e)),
        })
    }
}

/// What the client's `grpc-timeout` leaves of its deadline (`8S`, `4999m`, …).
fn grpc_timeout<T>(req: &Request<T>) -> Option<Duration> {
    let raw = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

type ReceiveSender = mpsc::Sender<Result<pb::ReceiveMessageResponse, Status>>;

fn frame(content: receive_message_response::Content) -> Result<pb::ReceiveMessageResponse, Status> {
    Ok(pb::ReceiveMessageResponse {
        content: Some(content),
    })
}

/// Ends a receive stream: its status, then the delivery time, as Apache's proxy does.
async fn finish(tx: ReceiveSender, s: pb::Status) {
    let _ = tx
        .send(frame(receive_message_response::Content::Status(s)))
        .await;
    let now = convert::millis_to_timestamp(convert::now_ms());
    let _ = tx
        .send(frame(receive_message_response::Content::DeliveryTimestamp(
            now,
        )))
        .await;
}

/// Apache's `LanguageCode` names; anything else shows as OTHER.
const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP",
    "OMS", "RUST", "NODE_JS",
];

/// The broker's listing of a gRPC client, from its settings.
fn front_client(
    id: &str,
    settings: &pb::Settings,
    peer: Option<SocketAddr>,
    language: &str,
    version: &str,
) -> ferromq_broker::client::FrontClient {
    use ferromq_broker::client::{FrontClient, FrontClientRole};
    let role = match &settings.pub_sub {
        Some(pb::settings::PubSub::Subscription(sub)) => FrontClientRole::Consumer {
            consume_type: if settings.client_type == Some(pb::ClientType::PushConsumer as i32) {
                "CONSUME_PASSIVELY"
            } else {
                "CONSUME_ACTIVELY"
            },
            group: resource_name(&sub.group),
            subscriptions: sub
                .subscriptions
                .iter()
                .map(|e| {
                    let (kind, expression) =
                        e.expression.as_ref().map_or(("TAG", "*".to_string()), |x| {
                            let kind = if x.r#type == pb::FilterType::Sql as i32 {
                                "SQL92"
                            } else {
                                "TAG"
                            };
                            (kind, x.expression.clone())
                        });
                    let tags_set = if kind == "TAG" && expression != "*" {
                        expression
                            .split("||")
                            .map(|t| t.trim().to_string())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    ferromq_protocol::body::SubscriptionData {
                        topic: resource_name(&e.topic),
                        sub_string: expression,
                        tags_set,
                        code_set: Vec::new(),
                        sub_version: convert::now_ms(),
                        expression_type: kind.to_string(),
                        class_filter_mode: false,
                    }
                })
                .collect(),
        },
        Some(pb::settings::PubSub::Publishing(p)) => FrontClientRole::Producer {
            topics: p.topics.iter().map(|t| t.name.clone()).collect(),
        },
        None => FrontClientRole::Producer { topics: Vec::new() },
    };
    FrontClient {
        client_id: id.to_string(),
        addr: peer.map(|p| p.to_string()).unwrap_or_default(),
        language: if LANGUAGES.contains(&language) {
            language
        } else {
            "OTHER"
        }
        .to_string(),
        version: version.to_string(),
        role,
    }
}

/// Returns the refusal as the RPC's answer when the ACL says no.
macro_rules! refuse_unless {
    ($verdict:expr, $answer:ty) => {
        if let Err(refused) = $verdict {
            return Ok(Response::new(<$answer>::refused(refused)));
        }
    };
}

/// What a consumer's call touches: its topic and its group.
fn consumer_access(
    topic: &Option<pb::Resource>,
    group: &Option<pb::Resource>,
) -> Vec<(String, u8)> {
    std::iter::once(topic_access(&resource_name(topic), acl::SUB))
        .chain(group_access(&resource_name(group)))
        .collect()
}

/// An answer that is only a status (a refusal).
trait Refusal: Default {
    fn refused(s: pb::Status) -> Self;
}

macro_rules! refusal {
    ($($t:ty),*) => {$(
        impl Refusal for $t {
            fn refused(s: pb::Status) -> Self {
                let mut answer = Self::default();
                answer.status = Some(s);
                answer
            }
        }
    )*};
}
refusal!(
    pb::QueryRouteResponse,
    pb::HeartbeatResponse,
    pb::SendMessageResponse,
    pb::QueryAssignmentResponse,
    pb::AckMessageResponse,
    pb::ForwardMessageToDeadLetterQueueResponse,
    pb::EndTransactionResponse,
    pb::NotifyClientTerminationResponse,
    pb::ChangeInvisibleDurationResponse,
    pb::RecallMessageResponse
);

/// A topic and the permission a call needs on it.
fn topic_access(topic: &str, perm: u8) -> (String, u8) {
    (topic.to_string(), perm)
}

/// A consumer group's permission, as the ACL keeps groups (`%RETRY%group`).
fn group_access(group: &str) -> Option<(String, u8)> {
    (!group.is_empty()).then(|| {
        let topic = ferromq_broker::topic::RETRY_GROUP_TOPIC_PREFIX;
        (format!("{topic}{group}"), acl::SUB)
    })
}

/// One top-level status for many entries: theirs when they agree, MULTIPLE_RESULTS when not.
fn summary(entries: impl Iterator<Item = Option<pb::Status>>) -> pb::Status {
    let mut codes: Vec<i32> = entries
        .map(|s| s.map_or(Code::Ok as i32, |s| s.code))
        .collect();
    codes.dedup();
    match codes.as_slice() {
        [] => ok(),
        [one] if *one == Code::Ok as i32 => ok(),
        [one] => pb::Status {
            code: *one,
            message: Code::try_from(*one)
                .map_or_else(|_| one.to_string(), |c| c.as_str_name().to_string()),
        },
        _ => status(Code::MultipleResults, "MULTIPLE_RESULTS"),
    }
}

#[tonic::async_trait]
impl MessagingService for Front {
    async fn query_route(
        &self,
        req: Request<pb::QueryRouteRequest>,
    ) -> Reply<pb::QueryRouteResponse> {
        let resources: Vec<(String, u8)> = {
            let r = req.get_ref();
            vec![topic_access(&resource_name(&r.topic), acl::ANY)]
        };
        refuse_unless!(self.authorize(&req, &resources), pb::QueryRouteResponse);
        let r = req.into_inner();
        let topic = resource_name(&r.topic);
        Ok(Response::new(
            match self.message_queues(&topic, &r.endpoints) {
                Ok(message_queues) => pb::QueryRouteResponse {
                    status: Some(ok()),
                    message_queues,
                },
                Err(s) => pb::QueryRouteResponse {
                    status: Some(s),
                    message_queues: vec![],
                },
            },
        ))
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Reply<pb::HeartbeatResponse> {
        let resources: Vec<(String, u8)> = {
            let r = req.get_ref();
            group_access(&resource_name(&r.group)).into_iter().collect()
        };
        refuse_unless!(self.authorize(&req, &resources), pb::HeartbeatResponse);
        let s = match client_id(&req) {
            Ok(id) if self.clients.settings(&id).is_some() => ok(),
            Ok(_) => no_settings(),
            Err(s) => s,
        };
        Ok(Response::new(pb::HeartbeatResponse { status: Some(s) }))
    }

    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Reply<pb::SendMessageResponse> {
        let resources: Vec<(String, u8)> = {
            let r = req.get_ref();
            let mut t: Vec<(String, u8)> = r
                .messages
                .iter()
                .map(|m| topic_access(&resource_name(&m.topic), acl::PUB))
                .collect();
            t.dedup();
            t
        };
        refuse_unless!(self.authorize(&req, &resources), pb::SendMessageResponse);
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let settings = client_id(&req)
            .ok()
            .and_then(|id| self.clients.settings(&id));
        let validate = settings
            .as_ref()
            .and_then(|s| match &s.pub_sub {
                Some(pb::settings::PubSub::Publishing(p)) => Some(p.validate_message_type),
                _ => None,
            })
            .unwrap_or(true);
        let r = req.into_inner();
        if r.messages.is_empty() {
            return Ok(Response::new(pb::SendMessageResponse {
                status: Some(status(Code::MessageCorrupted, "no message to send")),
                entries: vec![],
            }));
        }
        let first_topic = resource_name(&r.messages[0].topic);
        if r.messages
            .iter()
            .any(|m| resource_name(&m.topic) != first_topic)
        {
            return Ok(Response::new(pb::SendMessageResponse {
                status: Some(status(
                    Code::MessageCorrupted,
                    "topic in message is not same",
                )),
                entries: vec![],
            }));
        }
        let mut entries = Vec::with_capacity(r.messages.len());
        for m in &r.messages {
            match self.send_one(m, &peer, validate).await {
                Ok(entry) => entries.push(entry),
                // Clients check a batch's types are one before sending it, so a conflict
                // comes before anything of the batch is stored.
                Err(conflict) => {
                    return Ok(Response::new(pb::SendMessageResponse {
                        status: Some(conflict),
                        entries: vec![],
                    }))
                }
            }
        }
        let top = summary(entries.iter().map(|e| e.status.clone()));
        Ok(Response::new(pb::SendMessageResponse {
            status: Some(top),
            entries,
        }))
    }

    async fn query_assignment(
        &self,
        req: Request<pb::QueryAssignmentRequest>,
    ) -> Reply<pb::QueryAssignmentResponse> {
        let resources = consumer_access(&req.get_ref().topic, &req.get_ref().group);
        refuse_unless!(
            self.authorize(&req, &resources),
            pb::QueryAssignmentResponse
        );
        let r = req.into_inner();
        let topic = resource_name(&r.topic);
        let group = resource_name(&r.group);
        let fifo = self
            .broker
            .subscription_group(&group)
            .is_some_and(|g| g.consume_message_orderly());
        let queues = match self.message_queues(&topic, &r.endpoints) {
            Ok(q) => q,
            Err(s) => {
                return Ok(Response::new(pb::QueryAssignmentResponse {
                    status: Some(s),
                    assignments: vec![],
                }))
            }
        };
        let readable: Vec<pb::MessageQueue> = queues
            .into_iter()
            .filter(|q| {
                q.permission == Permission::Read as i32
                    || q.permission == Permission::ReadWrite as i32
            })
            .map(|mut q| {
                q.accept_message_types.clear();
                q
            })
            .collect();
        let assignments: Vec<pb::Assignment> = if fifo {
            readable
                .into_iter()
                .map(|q| pb::Assignment {
                    message_queue: Some(q),
                })
                .collect()
        } else {
            readable
                .into_iter()
                .next()
                .map(|mut q| {
                    q.id = -1;
                    vec![pb::Assignment {
                        message_queue: Some(q),
                    }]
                })
                .unwrap_or_default()
        };
        let s = if assignments.is_empty() {
            status(Code::Forbidden, "no readable queue")
        } else {
            ok()
        };
        Ok(Response::new(pb::QueryAssignmentResponse {
            status: Some(s),
            assignments,
        }))
    }

    type ReceiveMessageStream = ReceiverStream<Result<pb::ReceiveMessageResponse, Status>>;

    async fn receive_message(
        &self,
        req: Request<pb::ReceiveMessageRequest>,
    ) -> Reply<Self::ReceiveMessageStream> {
        let resources: Vec<(String, u8)> = {
            let r = req.get_ref();
            let topic = r
                .message_queue
                .as_ref()
                .map(|q| resource_name(&q.topic))
                .unwrap_or_default();
            std::iter::once(topic_access(&topic, acl::SUB))
                .chain(group_access(&resource_name(&r.group)))
                .collect()
        };
        let refused = self.authorize(&req, &resources).err();
        let id = client_id(&req);
        let settings = id.clone().map(|id| self.clients.settings(&id));
        let id = id.unwrap_or_default();
        let deadline = grpc_timeout(&req);
        let r = req.into_inner();
        let (tx, rx) = mpsc::channel(40);
        if let Some(refused) = refused {
            finish(tx, refused).await;
            return Ok(Response::new(ReceiverStream::new(rx)));
        }
        let settings = match settings {
            Ok(Some(s)) => s,
            Ok(None) => {
                finish(tx, no_settings()).await;
                return Ok(Response::new(ReceiverStream::new(rx)));
            }
            Err(s) => {
                finish(tx, s).await;
                return Ok(Response::new(ReceiverStream::new(rx)));
            }
        };
        let group = resource_name(&r.group);
        let topic = r
            .message_queue
            .as_ref()
            .map(|q| resource_name(&q.topic))
            .unwrap_or_default();
        let invisible_ms = if r.auto_renew {
            self.broker.config().default_invisible_time_ms as i64
        } else {
            match r
                .invisible_duration
                .as_ref()
                .map(convert::duration_to_millis)
            {
                Some(ms) if ms < MIN_INVISIBLE_MS => {
                    finish(
                        tx,
                        status(
                            Code::IllegalInvisibleTime,
                            format!("the invisibleTime is too small. min is {MIN_INVISIBLE_MS}"),
                        ),
                    )
                    .await;
                    return Ok(Response::new(ReceiverStream::new(rx)));
                }
                Some(ms) if ms > MAX_INVISIBLE_MS => {
                    finish(
                        tx,
                        status(
                            Code::IllegalInvisibleTime,
                            format!("the invisibleTime is too large. max is {MAX_INVISIBLE_MS}"),
                        ),
                    )
                    .await;
                    return Ok(Response::new(ReceiverStream::new(rx)));
                }
                Some(ms) => ms,
                None => {
                    finish(
                        tx,
                        status(
                            Code::IllegalInvisibleTime,
                            "a simple consumer's receive needs an invisible duration",
                        ),
                    )
                    .await;
                    return Ok(Response::new(ReceiverStream::new(rx)));
                }
            }
        };
        let filter = match r.filter_expression.as_ref() {
            None => Ok(MessageFilter::All),
            Some(f) => {
                let kind = if f.r#type == pb::FilterType::Sql as i32 {
                    "SQL92"
                } else {
                    "TAG"
                };
                let expression = if f.expression.is_empty() {
                    "*"
                } else {
                    f.expression.as_str()
                };
                MessageFilter::compile(kind, expression)
            }
        };
        let filter = match filter {
            Ok(f) => Arc::new(f),
            Err(e) => {
                finish(tx, status(Code::IllegalFilterExpression, e.to_string())).await;
                return Ok(Response::new(ReceiverStream::new(rx)));
            }
        };
        // As Apache's proxy: the client's long-polling timeout, else what its deadline
        // leaves after half a request timeout; 5-20 s, and never past the deadline.
        let request_timeout = settings
            .request_timeout
            .as_ref()
            .map_or(Duration::from_secs(3), |d| {
                Duration::from_millis(convert::duration_to_millis(d).max(0) as u64)
            });
        let asked = r
            .long_polling_timeout
            .as_ref()
            .map(|d| Duration::from_millis(convert::duration_to_millis(d).max(0) as u64))
            .or_else(|| deadline.map(|d| d.saturating_sub(request_timeout / 2)))
            .unwrap_or(MAX_POLL)
            .clamp(MIN_POLL, MAX_POLL);
        let poll = match deadline {
            Some(left) if asked > left && left >= MIN_POLL => left,
            Some(left) if asked > left => {
                finish(
                    tx,
                    status(
                        Code::IllegalPollingTime,
                        "The deadline time remaining is not enough for polling, please check network condition",
                    ),
                )
                .await;
                return Ok(Response::new(ReceiverStream::new(rx)));
            }
            _ => asked,
        };
        let fifo = match &settings.pub_sub {
            Some(pb::settings::PubSub::Subscription(s)) => s.fifo.unwrap_or(false),
            _ => false,
        } || self
            .broker
            .subscription_group(&group)
            .is_some_and(|g| g.consume_message_orderly());
        let pop = PopRequest {
            group,
            topic,
            queue_id: -1,
            max_msgs: r.batch_size.clamp(1, 32) as usize,
            invisible_ms,
            poll,
            filter,
            fifo,
        };
        let broker = self.broker.clone();
        let renewals = r.auto_renew.then(|| self.renewals.clone());
        tokio::spawn(async move {
            match broker.pop(&pop).await {
                Ok(popped) if popped.is_empty() => {
                    finish(tx, status(Code::MessageNotFound, "no new message")).await;
                }
                Ok(popped) => {
                    let name = broker.config().broker_name.clone();
                    if tx
                        .send(frame(receive_message_response::Content::Status(ok())))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if let Some(renewals) = &renewals {
                        for p in &popped {
                            let delivery = Delivery {
                                group: pop.group.clone(),
                                topic: p.message.topic.clone(),
                                queue_id: p.message.queue_id,
                                offset: p.message.queue_offset as u64,
                            };
                            renewals.track(delivery, &id, p.pop_time, p.invisible_ms);
                        }
                    }
                    for p in &popped {
                        let handle = convert::receipt_handle(p, &name);
                        let m = convert::delivered(&p.message, Some((handle, p.invisible_ms)));
                        // A client gone mid-stream: what it did not get becomes visible again
                        // after its invisible time, as any unacknowledged message.
                        if tx
                            .send(frame(receive_message_response::Content::Message(m)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    let now = convert::millis_to_timestamp(convert::now_ms());
                    let _ = tx
                        .send(frame(receive_message_response::Content::DeliveryTimestamp(
                            now,
                        )))
                        .await;
                }
                Err(e) => finish(tx, error_status(&e)).await,
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn ack_message(
        &self,
        req: Request<pb::AckMessageRequest>,
    ) -> Reply<pb::AckMessageResponse> {
        let resources = consumer_access(&req.get_ref().topic, &req.get_ref().group);
        refuse_unless!(self.authorize(&req, &resources), pb::AckMessageResponse);
        let r = req.into_inner();
        let group = resource_name(&r.group);
        let topic = resource_name(&r.topic);
        let entries: Vec<pb::AckMessageResultEntry> = r
            .entries
            .iter()
            .map(|e| {
                let s = match Handle::parse(&e.receipt_handle) {
                    None => status(Code::InvalidReceiptHandle, "receipt handle is malformed"),
                    Some(h) => match self.current_pop_time(&group, &topic, &h) {
                        Err(s) => s,
                        Ok(pop_time) => match self.broker.pop_ack(
                            &group,
                            &h.real_topic(&topic, &group),
                            h.queue_id,
                            h.offset,
                            pop_time,
                        ) {
                            Ok(()) => ok(),
                            Err(e) => error_status(&e),
                        },
                    },
                };
                pb::AckMessageResultEntry {
                    message_id: e.message_id.clone(),
                    receipt_handle: e.receipt_handle.clone(),
                    status: Some(s),
                }
            })
            .collect();
        let top = summary(entries.iter().map(|e| e.status.clone()));
        Ok(Response::new(pb::AckMessageResponse {
            status: Some(top),
            entries,
        }))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        req: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Reply<pb::ForwardMessageToDeadLetterQueueResponse> {
        let resources = consumer_access(&req.get_ref().topic, &req.get_ref().group);
        refuse_unless!(
            self.authorize(&req, &resources),
            pb::ForwardMessageToDeadLetterQueueResponse
        );
        let r = req.into_inner();
        let answer = |s: pb::Status| {
            Ok(Response::new(pb::ForwardMessageToDeadLetterQueueResponse {
                status: Some(s),
            }))
        };
        let group = resource_name(&r.group);
        let topic = resource_name(&r.topic);
        let Some(h) = Handle::parse(&r.receipt_handle) else {
            return answer(status(
                Code::InvalidReceiptHandle,
                "receipt handle is malformed",
            ));
        };
        let pop_time = match self.current_pop_time(&group, &topic, &h) {
            Ok(p) => p,
            Err(s) => return answer(s),
        };
        match self
            .broker
            .pop_forward_to_dlq(
                &group,
                &h.real_topic(&topic, &group),
                h.queue_id,
                h.offset,
                pop_time,
            )
            .await
        {
            Ok(()) => answer(ok()),
            Err(e) => answer(error_status(&e)),
        }
    }

    type PullMessageStream = ReceiverStream<Result<pb::PullMessageResponse, Status>>;

    async fn pull_message(
        &self,
        _req: Request<pb::PullMessageRequest>,
    ) -> Reply<Self::PullMessageStream> {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx
            .send(Ok(pb::PullMessageResponse {
                content: Some(pb::pull_message_response::Content::Status(status(
                    Code::NotImplemented,
                    "PullMessage (lite pull consumers) is not served",
                ))),
            }))
            .await;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn update_offset(
        &self,
        _req: Request<pb::UpdateOffsetRequest>,
    ) -> Reply<pb::UpdateOffsetResponse> {
        Ok(Response::new(pb::UpdateOffsetResponse {
            status: Some(status(Code::NotImplemented, "UpdateOffset is not served")),
        }))
    }

    async fn get_offset(
        &self,
        _req: Request<pb::GetOffsetRequest>,
    ) -> Reply<pb::GetOffsetResponse> {
        Ok(Response::new(pb::GetOffsetResponse {
            status: Some(status(Code::NotImplemented, "GetOffset is not served")),
            offset: 0,
        }))
    }

    async fn query_offset(
        &self,
        _req: Request<pb::QueryOffsetRequest>,
    ) -> Reply<pb::QueryOffsetResponse> {
        Ok(Response::new(pb::QueryOffsetResponse {
            status: Some(status(Code::NotImplemented, "QueryOffset is not served")),
            offset: 0,
        }))
    }

    async fn end_transaction(
        &self,
        req: Request<pb::EndTransactionRequest>,
    ) -> Reply<pb::EndTransactionResponse> {
        let resources: Vec<(String, u8)> = {
            let r = req.get_ref();
            vec![topic_access(&resource_name(&r.topic), acl::PUB)]
        };
        refuse_unless!(self.authorize(&req, &resources), pb::EndTransactionResponse);
        let r = req.into_inner();
        let answer = |s: pb::Status| {
            Ok(Response::new(pb::EndTransactionResponse {
                status: Some(s),
            }))
        };
        let commit = match pb::TransactionResolution::try_from(r.resolution) {
            Ok(pb::TransactionResolution::Commit) => true,
            Ok(pb::TransactionResolution::Rollback) => false,
            _ => {
                return answer(status(
                    Code::BadRequest,
                    "the resolution must be COMMIT or ROLLBACK",
                ))
            }
        };
        let Some((_, phys)) = ferromq_protocol::message::decode_offset_msg_id(&r.transaction_id)
        else {
            return answer(status(
                Code::InvalidTransactionId,
                format!("unknown transaction id {:?}", r.transaction_id),
            ));
        };
        let group = resource_name(&r.topic);
        match self
            .broker
            .decide_transaction(&group, phys, None, commit)
            .await
        {
            Ok(_) => answer(ok()),
            Err(e) => answer(error_status(&e)),
        }
    }

    type TelemetryStream = ReceiverStream<Result<pb::TelemetryCommand, Status>>;

    async fn telemetry(
        &self,
        req: Request<Streaming<pb::TelemetryCommand>>,
    ) -> Reply<Self::TelemetryStream> {
        let id = client_id(&req).map_err(|s| Status::invalid_argument(s.message))?;
        let peer = req.remote_addr();
        let language = metadata(&req, "x-mq-language");
        let version = metadata(&req, "x-mq-client-version");
        let caller = Caller::of(&req);
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let clients = self.clients.clone();
        let broker = self.broker.clone();
        tokio::spawn(async move {
            while let Ok(Some(cmd)) = inbound.message().await {
                let given = match cmd.command {
                    Some(telemetry_command::Command::Settings(given)) => given,
                    Some(telemetry_command::Command::ThreadStackTrace(t)) => {
                        let answer = match cmd.status.as_ref().map_or(Code::Ok as i32, |s| s.code) {
                            code if code == Code::Ok as i32 => {
                                Ok(t.thread_stack_trace.unwrap_or_default())
                            }
                            _ => Err("the client could not print its thread stacks".into()),
                        };
                        Clients::answered(&clients.pending_stacks, &t.nonce, answer);
                        continue;
                    }
                    Some(telemetry_command::Command::VerifyMessageResult(v)) => {
                        // Apache's proxy: OK consumed, FAILED_TO_CONSUME later, corrupted null.
                        let code = cmd.status.as_ref().map_or(Code::Ok as i32, |s| s.code);
                        let result = if code == Code::Ok as i32 {
                            "CR_SUCCESS"
                        } else if code == Code::FailedToConsumeMessage as i32 {
                            "CR_LATER"
                        } else {
                            "CR_RETURN_NULL"
                        };
                        Clients::answered(&clients.pending_verifies, &v.nonce, Ok(result));
                        continue;
                    }
                    _ => continue,
                };
                let resources: Vec<(String, u8)> = match &given.pub_sub {
                    Some(pb::settings::PubSub::Publishing(p)) => p
                        .topics
                        .iter()
                        .map(|t| topic_access(&t.name, acl::PUB))
                        .collect(),
                    Some(pb::settings::PubSub::Subscription(sub)) => sub
                        .subscriptions
                        .iter()
                        .map(|e| topic_access(&resource_name(&e.topic), acl::SUB))
                        .chain(group_access(&resource_name(&sub.group)))
                        .collect(),
                    None => Vec::new(),
                };
                if let Err(why) = caller.check(&broker, &resources) {
                    let _ = tx.send(Err(Status::unauthenticated(why))).await;
                    break;
                }
                let reply = match settings::merged(&broker, given.clone()) {
                    Ok(merged) => {
                        broker.register_front_client(front_client(
                            &id, &merged, peer, &language, &version,
                        ));
                        clients.by_id.lock().expect("clients lock").insert(
                            id.clone(),
                            GrpcClient {
                                settings: merged.clone(),
                                telemetry: tx.clone(),
                            },
                        );
                        Ok(pb::TelemetryCommand {
                            status: Some(ok()),
                            command: Some(telemetry_command::Command::Settings(merged)),
                        })
                    }
                    Err(why) => Err(Status::invalid_argument(why)),
                };
                let refused = reply.is_err();
                if tx.send(reply).await.is_err() || refused {
                    break;
                }
            }
            // The stream is gone: so is the client, unless a newer stream replaced it.
            let mut map = clients.by_id.lock().expect("clients lock");
            if map.get(&id).is_some_and(|c| c.telemetry.same_channel(&tx)) {
                map.remove(&id);
                broker.unregister_front_client(&id);
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn notify_client_termination(
        &self,
        req: Request<pb::NotifyClientTerminationRequest>,
    ) -> Reply<pb::NotifyClientTerminationResponse> {
        let resources: Vec<(String, u8)> = {
            let r = req.get_ref();
            group_access(&resource_name(&r.group)).into_iter().collect()
        };
        refuse_unless!(
            self.authorize(&req, &resources),
            pb::NotifyClientTerminationResponse
        );
        let s = match client_id(&req) {
            Ok(id) => match self.clients.by_id.lock().expect("clients lock").remove(&id) {
                Some(_) => {
                    self.broker.unregister_front_client(&id);
                    ok()
                }
                None => no_settings(),
            },
            Err(s) => s,
        };
        Ok(Response::new(pb::NotifyClientTerminationResponse {
            status: Some(s),
        }))
    }

    async fn change_invisible_duration(
        &self,
        req: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> Reply<pb::ChangeInvisibleDurationResponse> {
        let resources = consumer_access(&req.get_ref().topic, &req.get_ref().group);
        refuse_unless!(
            self.authorize(&req, &resources),
            pb::ChangeInvisibleDurationResponse
        );
        let r = req.into_inner();
        let group = resource_name(&r.group);
        let topic = resource_name(&r.topic);
        let answer = |s: pb::Status, receipt_handle: String| {
            Ok(Response::new(pb::ChangeInvisibleDurationResponse {
                status: Some(s),
                receipt_handle,
            }))
        };
        let Some(h) = Handle::parse(&r.receipt_handle) else {
            return answer(
                status(Code::InvalidReceiptHandle, "receipt handle is malformed"),
                String::new(),
            );
        };
        let invisible = match r
            .invisible_duration
            .as_ref()
            .map(convert::duration_to_millis)
        {
            Some(ms) if (0..=MAX_INVISIBLE_MS).contains(&ms) => ms,
            _ => {
                return answer(
                    status(
                        Code::IllegalInvisibleTime,
                        format!("the invisible duration must be 0 to {MAX_INVISIBLE_MS} ms"),
                    ),
                    String::new(),
                )
            }
        };
        let pop_time = match self.current_pop_time(&group, &topic, &h) {
            Ok(p) => p,
            Err(s) => return answer(s, String::new()),
        };
        match self.broker.pop_change_invisible(
            &group,
            &h.real_topic(&topic, &group),
            h.queue_id,
            h.offset,
            pop_time,
            invisible,
        ) {
            Ok(pop_time) => answer(ok(), h.renewed(pop_time, invisible)),
            Err(e) => answer(error_status(&e), String::new()),
        }
    }

    async fn recall_message(
        &self,
        req: Request<pb::RecallMessageRequest>,
    ) -> Reply<pb::RecallMessageResponse> {
        let resources: Vec<(String, u8)> = {
            let r = req.get_ref();
            vec![topic_access(&resource_name(&r.topic), acl::PUB)]
        };
        refuse_unless!(self.authorize(&req, &resources), pb::RecallMessageResponse);
        let r = req.into_inner();
        let topic = resource_name(&r.topic);
        let (s, message_id) = match self.broker.recall_message(&topic, &r.recall_handle) {
            Ok(id) => (ok(), id),
            Err(e) => (error_status(&e), String::new()),
        };
        Ok(Response::new(pb::RecallMessageResponse {
            status: Some(s),
            message_id,
        }))
    }

    async fn sync_lite_subscription(
        &self,
        _req: Request<pb::SyncLiteSubscriptionRequest>,
    ) -> Reply<pb::SyncLiteSubscriptionResponse> {
        Ok(Response::new(pb::SyncLiteSubscriptionResponse {
            status: Some(status(Code::NotImplemented, "lite topics are not served")),
        }))
    }
}
