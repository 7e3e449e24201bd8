//! What producers and consumers share: connections, routes, heartbeats, and the handling
//! of requests brokers send to clients.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use ferromq_protocol::body::{
    fastjson_to_json, ConsumerData, HeartbeatData, ProducerData, QueueData, TopicRouteData,
};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, InboundHandler};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::{ClientError, Result};
use crate::message::MessageQueue;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const NAMESRV_TIMEOUT: Duration = Duration::from_secs(6);
/// Route refresh and heartbeat period, as both official clients.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// The template topic producers fall back to for auto-creation.
const AUTO_CREATE_TOPIC: &str = "TBW102";

/// Receives requests a broker sends to this client.
pub(crate) trait ServerRequestHandler: Send + Sync + 'static {
    /// Returns the reply, if the request expects one.
    fn handle(&self, conn: &Connection, req: RemotingCommand) -> Option<RemotingCommand>;
}

#[derive(Default)]
struct Dispatch {
    handlers: RwLock<Vec<Arc<dyn ServerRequestHandler>>>,
}

impl InboundHandler for Dispatch {
    async fn on_request(
        &self,
        conn: Connection,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let handlers = self.handlers.read().expect("handler list lock").clone();
        handlers
            .iter()
            .find_map(|h| h.handle(&conn, request.clone()))
    }
}

/// An access key and secret key for brokers with ACL on (`aclEnable=true`): every request
/// is signed with them, as Apache's clients sign.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
        }
    }

    /// Adds the access key and the request's signature.
    pub(crate) fn sign(&self, req: &mut RemotingCommand) {
        ferromq_protocol::acl::sign(req, &self.access_key, &self.secret_key);
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, secret hidden)", self.access_key)
    }
}

pub(crate) struct ClientInstance {
    pub client_id: String,
    namesrv: Vec<String>,
    next_namesrv: AtomicUsize,
    conns: Mutex<HashMap<String, Connection>>,
    connecting: tokio::sync::Mutex<()>,
    routes: RwLock<HashMap<String, TopicRouteData>>,
    dispatch: Arc<Dispatch>,
    heartbeat: Mutex<HeartbeatData>,
    pub shutdown: CancellationToken,
    pub call_timeout: Duration,
    wake_heartbeat: tokio::sync::Notify,
    /// Broker addresses some route has named: a route naming another one wakes the
    /// heartbeat. A route to a new topic on known brokers does not (with 10,000 topics a
    /// heartbeat per new route walked every route 10,000 times).
    routed_brokers: Mutex<HashSet<String>>,
    credentials: OnceLock<Credentials>,
}

impl ClientInstance {
    pub fn new(namesrv: Vec<String>, instance_name: &str, call_timeout: Duration) -> Arc<Self> {
        let client_id = format!("127.0.0.1@{}#{}", std::process::id(), instance_name);
        let me = Arc::new(ClientInstance {
            heartbeat: Mutex::new(HeartbeatData {
                client_id: client_id.clone(),
                ..Default::default()
            }),
            client_id,
            namesrv,
            next_namesrv: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            connecting: tokio::sync::Mutex::new(()),
            routes: RwLock::new(HashMap::new()),
            dispatch: Arc::new(Dispatch::default()),
            shutdown: CancellationToken::new(),
            call_timeout,
            wake_heartbeat: tokio::sync::Notify::new(),
            routed_brokers: Mutex::new(HashSet::new()),
            credentials: OnceLock::new(),
        });
        let bg = me.clone();
        tokio::spawn(async move { bg.background().await });
        me
    }

    /// Signs every request from now on (set once, before the first request).
    pub fn set_credentials(&self, credentials: Credentials) {
        let _ = self.credentials.set(credentials);
    }

    fn signed(&self, mut req: RemotingCommand) -> RemotingCommand {
        if let Some(c) = self.credentials.get() {
            c.sign(&mut req);
        }
        req
    }

    pub fn add_handler(&self, h: Arc<dyn ServerRequestHandler>) {
        self.dispatch
            .handlers
            .write()
            .expect("handler list lock")
            .push(h);
    }

    pub fn set_producer(&self, group: &str) {
        let mut hb = self.heartbeat.lock().expect("heartbeat lock");
        hb.producer_data_set = vec![ProducerData {
            group_name: group.into(),
        }];
    }

    pub fn set_consumer(&self, data: ConsumerData) {
        self.heartbeat
            .lock()
            .expect("heartbeat lock")
            .consumer_data_set = vec![data];
    }

    /// The connection to `addr`, opened on first use and replaced when closed.
    pub async fn connection(&self, addr: &str) -> Result<Connection> {
        if let Some(c) = self.cached_connection(addr) {
            return Ok(c);
        }
        // Opening is serialized so concurrent callers share one connection: a broker
        // counts a client once per connection, and two would list it twice in its group.
        let _opening = self.connecting.lock().await;
        if let Some(c) = self.cached_connection(addr) {
            return Ok(c);
        }
        let c = ferromq_remoting::connect(addr, self.dispatch.clone(), CONNECT_TIMEOUT).await?;
        self.conns
            .lock()
            .expect("connections lock")
            .insert(addr.to_string(), c.clone());
        Ok(c)
    }

    fn cached_connection(&self, addr: &str) -> Option<Connection> {
        self.conns
            .lock()
            .expect("connections lock")
            .get(addr)
            .filter(|c| !c.is_closed())
            .cloned()
    }

    pub async fn invoke(&self, addr: &str, req: RemotingCommand) -> Result<RemotingCommand> {
        let conn = self.connection(addr).await?;
        match conn.invoke(self.signed(req), self.call_timeout).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // A failed call is a reason to reconnect next time.
                if conn.is_closed() {
                    self.conns.lock().expect("connections lock").remove(addr);
                }
                Err(e.into())
            }
        }
    }

    pub async fn invoke_timeout(
        &self,
        addr: &str,
        req: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let conn = self.connection(addr).await?;
        Ok(conn.invoke(self.signed(req), timeout).await?)
    }

    pub async fn oneway(&self, addr: &str, req: RemotingCommand) -> Result<()> {
        let conn = self.connection(addr).await?;
        Ok(conn.invoke_oneway(self.signed(req)).await?)
    }

    /// Asks the name servers (round robin, each once) for a topic's route.
    pub async fn fetch_route(&self, topic: &str) -> Result<Option<TopicRouteData>> {
        if self.namesrv.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no name server configured".into(),
            ));
        }
        let mut last = None;
        for _ in 0..self.namesrv.len() {
            let i = self.next_namesrv.fetch_add(1, Ordering::Relaxed) % self.namesrv.len();
            let addr = &self.namesrv[i];
            let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
                .with_field("topic", topic);
            let conn = match self.connection(addr).await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match conn.invoke(self.signed(req), NAMESRV_TIMEOUT).await {
                Ok(resp) if resp.code == response::SUCCESS => {
                    let route: TopicRouteData =
                        serde_json::from_slice(&fastjson_to_json(&resp.body)).map_err(|e| {
                            ClientError::Malformed {
                                operation: "GET_ROUTEINFO_BY_TOPIC",
                                reason: e.to_string(),
                            }
                        })?;
                    self.routes
                        .write()
                        .expect("routes lock")
                        .insert(topic.to_string(), route.clone());
                    let mut new_broker = false;
                    {
                        let mut known = self.routed_brokers.lock().expect("routed brokers lock");
                        for b in &route.broker_datas {
                            for a in b.broker_addrs.values() {
                                if !known.contains(a) {
                                    known.insert(a.clone());
                                    new_broker = true;
                                }
                            }
                        }
                    }
                    if new_broker {
                        // Brokers learn of this client by heartbeat: tell the new ones now.
                        self.wake_heartbeat.notify_one();
                    }
                    return Ok(Some(route));
                }
                Ok(resp) if resp.code == response::TOPIC_NOT_EXIST => return Ok(None),
                Ok(resp) => {
                    last = Some(ClientError::Broker {
                        operation: "GET_ROUTEINFO_BY_TOPIC",
                        addr: addr.clone(),
                        code: resp.code,
                        remark: resp.remark.unwrap_or_default(),
                    })
                }
                Err(e) => last = Some(e.into()),
            }
        }
        Err(last.expect("at least one name server was asked"))
    }

    /// The cached route, fetched when unknown.
    pub async fn route(&self, topic: &str) -> Result<Option<TopicRouteData>> {
        if let Some(r) = self.routes.read().expect("routes lock").get(topic) {
            return Ok(Some(r.clone()));
        }
        self.fetch_route(topic).await
    }

    /// A route to publish to: the topic's own, or the auto-create template's capped at
    /// `default_queues` queues (the broker then creates the topic on first send).
    pub async fn publish_route(
        &self,
        topic: &str,
        default_queues: i32,
    ) -> Result<(TopicRouteData, bool)> {
        if let Some(r) = self.route(topic).await? {
            return Ok((r, false));
        }
        let Some(mut template) = self.fetch_route(AUTO_CREATE_TOPIC).await? else {
            return Err(ClientError::NoRoute {
                topic: topic.into(),
            });
        };
        for q in &mut template.queue_datas {
            q.read_queue_nums = q.read_queue_nums.min(default_queues);
            q.write_queue_nums = q.write_queue_nums.min(default_queues);
        }
        Ok((template, true))
    }

    /// Master address of a broker in a route.
    pub fn master_addr(route: &TopicRouteData, broker_name: &str) -> Option<String> {
        route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
            .and_then(|b| b.broker_addrs.get(&0).cloned())
    }

    /// Every broker address known from cached routes, masters first.
    fn broker_addrs(&self) -> Vec<String> {
        let routes = self.routes.read().expect("routes lock");
        let addrs: BTreeSet<&str> = routes
            .values()
            .flat_map(|r| &r.broker_datas)
            .flat_map(|b| b.broker_addrs.values())
            .map(String::as_str)
            .collect();
        addrs.into_iter().map(str::to_string).collect()
    }

    /// Asks the background task to heartbeat now.
    pub fn request_heartbeat(&self) {
        self.wake_heartbeat.notify_one();
    }

    /// Sends a heartbeat to every known broker now.
    pub async fn heartbeat_all(&self) {
        let body = serde_json::to_vec(&*self.heartbeat.lock().expect("heartbeat lock"))
            .expect("heartbeat serializes");
        for addr in self.broker_addrs() {
            let req = RemotingCommand::request(request::HEART_BEAT).with_body(body.clone());
            if let Err(e) = self.invoke(&addr, req).await {
                debug!(broker = %addr, error = %e, "heartbeat failed");
            }
        }
    }

    async fn background(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = self.wake_heartbeat.notified() => {
                    self.heartbeat_all().await;
                    continue;
                }
                _ = tick.tick() => {}
            }
            let topics: Vec<String> = self
                .routes
                .read()
                .expect("routes lock")
                .keys()
                .cloned()
                .collect();
            for t in topics {
                if let Err(e) = self.fetch_route(&t).await {
                    warn!(topic = %t, error = %e, "route refresh failed");
                }
            }
            self.heartbeat_all().await;
        }
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.shutdown.cancel();
        for (_, c) in self.conns.lock().expect("connections lock").drain() {
            c.close();
        }
    }
}

/// Queues of a route that can be written (for producers) or read (for consumers).
pub(crate) fn route_queues(
    topic: &str,
    route: &TopicRouteData,
    writable: bool,
) -> Vec<MessageQueue> {
    let mut datas: Vec<&QueueData> = route
        .queue_datas
        .iter()
        .filter(|q| {
            let bit = if writable {
                ferromq_protocol::body::perm::WRITE
            } else {
                ferromq_protocol::body::perm::READ
            };
            q.perm & bit != 0
        })
        .filter(|q| {
            route
                .broker_datas
                .iter()
                .any(|b| b.broker_name == q.broker_name && b.broker_addrs.contains_key(&0))
        })
        .collect();
    datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let mut out = Vec::new();
    for q in datas {
        let n = if writable {
            q.write_queue_nums
        } else {
            q.read_queue_nums
        };
        for queue_id in 0..n {
            out.push(MessageQueue {
                topic: topic.into(),
                broker_name: q.broker_name.clone(),
                queue_id,
            });
        }
    }
    out
}

/// A client-side unique message id: 32 hex characters like the official clients'.
pub(crate) fn unique_id() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "7F000001{:04X}{:08X}{:012X}",
        std::process::id() as u16,
        start as u32,
        n
    )
}
