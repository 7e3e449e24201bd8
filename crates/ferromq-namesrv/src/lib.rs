//! FerroMQ name server: the registry of brokers and the topic routes clients ask for.
//!
//! Brokers register every 30 s (and right after their topics change); one silent for
//! `broker_expiry` (120 s) or whose registering connection closes is dropped, and topics
//! left without queues vanish from routes. Mirrors Apache's `RouteInfoManager`.

mod kv;
mod route;

use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::body::{
    ClusterInfo, DataVersion, RegisterBrokerBody, TopicList, TopicRouteData,
};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    BrokerHeartbeatRequestHeader, BrokerNameRequestHeader, ClusterRequestHeader, CommandHeader,
    KvConfigRequestHeader, RegisterBrokerRequestHeader, TopicRequestHeader,
    UnregisterBrokerRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, InboundHandler, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use route::RouteTable;

/// Name server settings.
#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// A broker silent for this long is dropped (Apache: 120 s).
    pub broker_expiry: Duration,
    /// How often expiry is checked (Apache 5.x: 5 s).
    pub scan_interval: Duration,
    /// TLS for clients (a client with TLS on uses it for the name server too).
    pub tls: Option<ferromq_remoting::TlsServer>,
    /// `kvConfigPath`: where KV configuration is kept; `None` keeps it in memory.
    pub kv_config_path: Option<std::path::PathBuf>,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            broker_expiry: Duration::from_secs(120),
            scan_interval: Duration::from_secs(5),
            tls: None,
            kv_config_path: None,
        }
    }
}

/// The name server's request handler and state.
pub struct NameServer {
    config: NamesrvConfig,
    routes: RouteTable,
    kv: kv::KvConfig,
    /// The port it serves on, once serving (GET_NAMESRV_CONFIG's `listenPort`).
    listen_port: std::sync::atomic::AtomicU32,
}

impl NameServer {
    pub fn new(config: NamesrvConfig) -> Arc<Self> {
        Arc::new(NameServer {
            kv: kv::KvConfig::open(config.kv_config_path.clone()),
            config,
            routes: RouteTable::default(),
            listen_port: std::sync::atomic::AtomicU32::new(0),
        })
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Serves on `listener` and runs broker expiry until `shutdown`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        if let Ok(addr) = listener.local_addr() {
            self.listen_port
                .store(u32::from(addr.port()), std::sync::atomic::Ordering::Relaxed);
        }
        let scanner = {
            let me = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(me.config.scan_interval);
                loop {
                    tokio::select! {
                        _ = tick.tick() => me.routes.expire(me.config.broker_expiry),
                        _ = shutdown.cancelled() => break,
                    }
                }
            })
        };
        let server_config = ServerConfig {
            tls: self.config.tls.clone(),
            ..Default::default()
        };
        ferromq_remoting::serve(listener, self, server_config, shutdown).await;
        let _ = scanner.await;
    }

    fn process(&self, conn: &Connection, req: &RemotingCommand) -> RemotingCommand {
        match req.code {
            request::REGISTER_BROKER => self.register_broker(conn, req),
            request::UNREGISTER_BROKER => {
                match UnregisterBrokerRequestHeader::decode(&req.ext_fields) {
                    Ok(h) => {
                        self.routes.unregister(
                            &h.cluster_name,
                            &h.broker_name,
                            &h.broker_addr,
                            h.broker_id,
                        );
                        RemotingCommand::response_to(req, response::SUCCESS)
                    }
                    Err(e) => bad_header(req, e),
                }
            }
            request::BROKER_HEARTBEAT => {
                match BrokerHeartbeatRequestHeader::decode(&req.ext_fields) {
                    Ok(h) => {
                        self.routes.touch(&h.broker_addr);
                        RemotingCommand::response_to(req, response::SUCCESS)
                    }
                    Err(e) => bad_header(req, e),
                }
            }
            request::GET_ROUTEINFO_BY_TOPIC => match TopicRequestHeader::decode(&req.ext_fields) {
                Ok(h) => match self.routes.route(&h.topic) {
                    Some(route) => RemotingCommand::response_to(req, response::SUCCESS)
                        .with_body(serde_json::to_vec(&route).expect("route data serializes")),
                    None => RemotingCommand::error_response(
                        req,
                        response::TOPIC_NOT_EXIST,
                        format!(
                            "No topic route info in name server for the topic: {}",
                            h.topic
                        ),
                    ),
                },
                Err(e) => bad_header(req, e),
            },
            request::GET_BROKER_CLUSTER_INFO => {
                let info: ClusterInfo = self.routes.cluster_info();
                RemotingCommand::response_to(req, response::SUCCESS)
                    .with_body(serde_json::to_vec(&info).expect("cluster info serializes"))
            }
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                let list = TopicList {
                    topic_list: self.routes.topics(),
                };
                RemotingCommand::response_to(req, response::SUCCESS)
                    .with_body(serde_json::to_vec(&list).expect("topic list serializes"))
            }
            request::DELETE_TOPIC_IN_NAMESRV => match TopicRequestHeader::decode(&req.ext_fields) {
                Ok(h) => {
                    self.routes.delete_topic(&h.topic);
                    RemotingCommand::response_to(req, response::SUCCESS)
                }
                Err(e) => bad_header(req, e),
            },
            request::PUT_KV_CONFIG
            | request::GET_KV_CONFIG
            | request::DELETE_KV_CONFIG
            | request::GET_KVLIST_BY_NAMESPACE => self.kv_config(req),
            request::GET_SYSTEM_TOPIC_LIST_FROM_NS => {
                let (topics, broker_addr) = self.routes.system_topics();
                let mut body = serde_json::json!({ "topicList": topics });
                if let Some(addr) = broker_addr {
                    body["brokerAddr"] = addr.into();
                }
                RemotingCommand::response_to(req, response::SUCCESS).with_body(body.to_string())
            }
            request::GET_TOPICS_BY_CLUSTER => match ClusterRequestHeader::decode(&req.ext_fields) {
                Ok(h) => topic_list(req, self.routes.topics_of_cluster(&h.cluster)),
                Err(e) => bad_header(req, e),
            },
            request::GET_UNIT_TOPIC_LIST => topic_list(req, self.routes.topics_with_flags(FLAG_UNIT, 0)),
            request::GET_HAS_UNIT_SUB_TOPIC_LIST => {
                topic_list(req, self.routes.topics_with_flags(FLAG_UNIT_SUB, 0))
            }
            request::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => {
                topic_list(req, self.routes.topics_with_flags(FLAG_UNIT_SUB, FLAG_UNIT))
            }
            request::WIPE_WRITE_PERM_OF_BROKER | request::ADD_WRITE_PERM_OF_BROKER => {
                match BrokerNameRequestHeader::decode(&req.ext_fields) {
                    Ok(h) => {
                        let wipe = req.code == request::WIPE_WRITE_PERM_OF_BROKER;
                        let n = self.routes.set_write_perm(&h.broker_name, wipe);
                        let field = if wipe { "wipeTopicCount" } else { "addTopicCount" };
                        RemotingCommand::response_to(req, response::SUCCESS).with_field(field, n.to_string())
                    }
                    Err(e) => bad_header(req, e),
                }
            }
            request::QUERY_DATA_VERSION => {
                let version: Result<DataVersion, _> = serde_json::from_slice(&req.body);
                match (req.field("brokerAddr"), version) {
                    (Some(addr), Ok(v)) => {
                        let changed = self.routes.version_changed(addr, &v);
                        debug!(broker_addr = addr, changed, "data version queried");
                        RemotingCommand::response_to(req, response::SUCCESS)
                            .with_field("changed", changed.to_string())
                    }
                    _ => RemotingCommand::error_response(
                        req,
                        response::SYSTEM_ERROR,
                        "QUERY_DATA_VERSION needs brokerAddr and a DataVersion body",
                    ),
                }
            }
            request::GET_BROKER_MEMBER_GROUP => {
                let name = req.field("brokerName").unwrap_or_default().to_string();
                let cluster = req.field("clusterName").unwrap_or_default().to_string();
                let addrs: serde_json::Map<String, serde_json::Value> = self
                    .routes
                    .broker_members(&name)
                    .into_iter()
                    .map(|(id, addr)| (id.to_string(), addr.into()))
                    .collect();
                let body = serde_json::json!({ "brokerMemberGroup": {
                    "cluster": cluster, "brokerName": name, "brokerAddrs": addrs } });
                RemotingCommand::response_to(req, response::SUCCESS).with_body(body.to_string())
            }
            request::REGISTER_TOPIC_IN_NAMESRV => {
                let route: Result<TopicRouteData, _> = serde_json::from_slice(&req.body);
                match (TopicRequestHeader::decode(&req.ext_fields), route) {
                    (Ok(h), Ok(route)) => {
                        self.routes.register_topic(&h.topic, &route.queue_datas);
                        RemotingCommand::response_to(req, response::SUCCESS)
                    }
                    (Err(e), _) => bad_header(req, e),
                    (_, Err(e)) => RemotingCommand::error_response(
                        req,
                        response::SYSTEM_ERROR,
                        format!("invalid TopicRouteData: {e}"),
                    ),
                }
            }
            request::GET_NAMESRV_CONFIG => {
                RemotingCommand::response_to(req, response::SUCCESS).with_body(self.config_properties())
            }
            request::UPDATE_NAMESRV_CONFIG => RemotingCommand::error_response(
                req,
                response::NO_PERMISSION,
                "the FerroMQ name server's configuration does not change at run time: edit namesrv.conf and restart it",
            ),
            code => RemotingCommand::error_response(
                req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                ferromq_protocol::code::unsupported_remark(code),
            ),
        }
    }

    /// The configuration as Apache's `namesrv.conf` keys, for `mqadmin getNamesrvConfig`.
    fn config_properties(&self) -> String {
        let kv_path = self
            .config
            .kv_config_path
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string());
        let listen_port = self.listen_port.load(std::sync::atomic::Ordering::Relaxed);
        let pairs = [
            ("listenPort", listen_port.to_string()),
            ("kvConfigPath", kv_path),
            (
                "scanNotActiveBrokerInterval",
                self.config.scan_interval.as_millis().to_string(),
            ),
            // FerroMQ's: how long a silent broker is kept (Apache's fixed 120 s).
            (
                "brokerExpiryMillis",
                self.config.broker_expiry.as_millis().to_string(),
            ),
            ("useTLS", self.config.tls.is_some().to_string()),
            ("clusterTest", "false".to_string()),
            ("orderMessageEnable", "false".to_string()),
            ("enableTopicList", "true".to_string()),
            ("enableAllTopicList", "true".to_string()),
            ("returnOrderTopicConfigToBroker", "true".to_string()),
            ("needWaitForService", "false".to_string()),
            ("enableControllerInNamesrv", "false".to_string()),
        ];
        pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    fn kv_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match KvConfigRequestHeader::decode(&req.ext_fields) {
            Ok(h) => h,
            Err(e) => return bad_header(req, e),
        };
        let key = h.key.as_deref().unwrap_or_default();
        match req.code {
            request::PUT_KV_CONFIG => match (&h.key, &h.value) {
                (Some(k), Some(v)) => {
                    self.kv.put(&h.namespace, k, v);
                    RemotingCommand::response_to(req, response::SUCCESS)
                }
                _ => RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    "PUT_KV_CONFIG needs key and value",
                ),
            },
            request::GET_KV_CONFIG => match self.kv.get(&h.namespace, key) {
                Some(v) => {
                    RemotingCommand::response_to(req, response::SUCCESS).with_field("value", v)
                }
                None => RemotingCommand::error_response(
                    req,
                    response::QUERY_NOT_FOUND,
                    format!("No config item, Namespace: {} Key: {key}", h.namespace),
                ),
            },
            request::DELETE_KV_CONFIG => {
                self.kv.delete(&h.namespace, key);
                RemotingCommand::response_to(req, response::SUCCESS)
            }
            _ => match self.kv.namespace(&h.namespace) {
                Some(table) => RemotingCommand::response_to(req, response::SUCCESS)
                    .with_body(serde_json::json!({ "table": table }).to_string()),
                None => RemotingCommand::error_response(
                    req,
                    response::QUERY_NOT_FOUND,
                    format!("No config item, Namespace: {}", h.namespace),
                ),
            },
        }
    }

    fn register_broker(&self, conn: &Connection, req: &RemotingCommand) -> RemotingCommand {
        let h = match RegisterBrokerRequestHeader::decode(&req.ext_fields) {
            Ok(h) => h,
            Err(e) => return bad_header(req, e),
        };
        if h.compressed == Some(true) {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "compressed broker registration is not supported; set compressedRegister=false",
            );
        }
        if let Some(crc) = h.body_crc32.filter(|c| *c != 0) {
            let actual = ferromq_protocol::message::body_crc(&req.body) as i32;
            if actual != crc {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    "crc32 not match",
                );
            }
        }
        let body: RegisterBrokerBody = if req.body.is_empty() {
            RegisterBrokerBody {
                topic_config_serialize_wrapper:
                    ferromq_protocol::body::TopicConfigSerializeWrapper {
                        topic_config_table: Default::default(),
                        data_version: ferromq_protocol::body::DataVersion {
                            timestamp: 0,
                            counter: 0,
                            state_version: 0,
                        },
                    },
                filter_server_list: vec![],
            }
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(b) => b,
                Err(e) => {
                    return RemotingCommand::error_response(
                        req,
                        response::SYSTEM_ERROR,
                        format!("invalid RegisterBrokerBody: {e}"),
                    )
                }
            }
        };
        let timeout = h
            .heartbeat_timeout_millis
            .filter(|t| *t > 0)
            .map(|t| Duration::from_millis(t as u64));
        let master = self.routes.register(&h, &body, conn.id(), timeout);
        let carried = match h.whole_table {
            Some(true) => "whole table",
            Some(false) => "changed topics",
            None => "topics",
        };
        debug!(broker = %h.broker_name, addr = %h.broker_addr, topics = body.topic_config_serialize_wrapper.topic_config_table.len(), carried, "broker registered");
        let resp = RemotingCommand::response_to(req, response::SUCCESS);
        match master {
            Some(master) => resp
                .with_field("masterAddr", master.addr)
                .with_field("haServerAddr", master.ha_server_addr),
            None => resp.with_field("haServerAddr", ""),
        }
    }
}

/// `TopicSysFlag`: a unit topic, and one with unit subscriptions.
const FLAG_UNIT: i32 = 1;
const FLAG_UNIT_SUB: i32 = 2;

fn topic_list(req: &RemotingCommand, topics: Vec<String>) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS).with_body(
        serde_json::to_vec(&TopicList { topic_list: topics }).expect("topic list serializes"),
    )
}

fn bad_header(req: &RemotingCommand, e: ferromq_protocol::HeaderError) -> RemotingCommand {
    RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string())
}

impl InboundHandler for NameServer {
    async fn on_request(
        &self,
        conn: Connection,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        Some(self.process(&conn, &request))
    }

    fn on_close(&self, conn: &Connection) {
        let removed = self.routes.connection_closed(conn.id());
        for addr in removed {
            info!(%addr, "broker connection closed; broker unregistered");
        }
    }
}
