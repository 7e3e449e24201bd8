//! FerroMQ name server: the registry of brokers and the topic routes clients ask for.
//!
//! Brokers register every 30 s (and right after their topics change); one silent for
//! `broker_expiry` (120 s) or whose registering connection closes is dropped, and topics
//! left without queues vanish from routes. Mirrors Apache's `RouteInfoManager`.

mod route;

use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::body::{ClusterInfo, RegisterBrokerBody, TopicList};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    BrokerHeartbeatRequestHeader, CommandHeader, RegisterBrokerRequestHeader, TopicRequestHeader,
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
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            broker_expiry: Duration::from_secs(120),
            scan_interval: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// The name server's request handler and state.
pub struct NameServer {
    config: NamesrvConfig,
    routes: RouteTable,
}

impl NameServer {
    pub fn new(config: NamesrvConfig) -> Arc<Self> {
        Arc::new(NameServer {
            config,
            routes: RouteTable::default(),
        })
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Serves on `listener` and runs broker expiry until `shutdown`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
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
            code => RemotingCommand::error_response(
                req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {code} not supported"),
            ),
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
        debug!(broker = %h.broker_name, addr = %h.broker_addr, topics = body.topic_config_serialize_wrapper.topic_config_table.len(), "broker registered");
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS);
        if let Some(master) = master {
            resp = resp.with_field("masterAddr", master);
        }
        resp.with_field("haServerAddr", "")
    }
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
