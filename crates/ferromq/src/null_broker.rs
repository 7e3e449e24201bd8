//! `ferromq bench null-broker`: name server and broker at one address that decode every
//! request and answer success without storing anything. Measured with the same clients as
//! a real broker, it is the practical ceiling of this machine for the protocol.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use ferromq_protocol::body::{perm, BrokerData, ClusterInfo, QueueData, TopicRouteData};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, SendMessageRequestHeader, SendMessageResponseHeader, TopicRequestHeader,
};
use ferromq_protocol::message::{decode_batch, offset_msg_id};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{serve, Connection, InboundHandler, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const CLUSTER: &str = "NullCluster";
const BROKER_NAME: &str = "null-broker";
/// Queues every topic appears to have.
const QUEUES: i32 = 8;

struct NullBroker {
    addr: SocketAddr,
    /// Pretend commit-log position, so each reply carries a distinct message id.
    next_offset: AtomicI64,
}

impl NullBroker {
    fn route(&self) -> TopicRouteData {
        TopicRouteData {
            queue_datas: vec![QueueData {
                broker_name: BROKER_NAME.into(),
                read_queue_nums: QUEUES,
                write_queue_nums: QUEUES,
                perm: perm::READ | perm::WRITE,
                topic_sys_flag: 0,
            }],
            broker_datas: vec![self.broker_data()],
            filter_server_table: Default::default(),
        }
    }

    fn broker_data(&self) -> BrokerData {
        BrokerData {
            cluster: CLUSTER.into(),
            broker_name: BROKER_NAME.into(),
            broker_addrs: BTreeMap::from([(0, self.addr.to_string())]),
            enable_acting_master: false,
        }
    }

    fn send(&self, req: &RemotingCommand) -> RemotingCommand {
        let header = match SendMessageRequestHeader::decode_request(req) {
            Ok(h) => h,
            Err(e) => {
                return RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string())
            }
        };
        let count = if req.code == request::SEND_BATCH_MESSAGE {
            match decode_batch(&req.body) {
                Ok(entries) => entries.len().max(1) as i64,
                Err(e) => {
                    return RemotingCommand::error_response(
                        req,
                        response::MESSAGE_ILLEGAL,
                        e.to_string(),
                    )
                }
            }
        } else {
            1
        };
        let offset = self.next_offset.fetch_add(count, Ordering::Relaxed);
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS);
        SendMessageResponseHeader {
            msg_id: offset_msg_id(self.addr, offset),
            queue_id: header.queue_id.max(0),
            queue_offset: offset,
            transaction_id: None,
            recall_handle: None,
        }
        .encode(&mut resp.ext_fields);
        resp
    }
}

impl InboundHandler for NullBroker {
    async fn on_request(&self, _conn: Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        let resp = match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                self.send(&req)
            }
            request::GET_ROUTEINFO_BY_TOPIC => match TopicRequestHeader::decode(&req.ext_fields) {
                Ok(_) => RemotingCommand::response_to(&req, response::SUCCESS)
                    .with_body(serde_json::to_vec(&self.route()).expect("route serializes")),
                Err(e) => {
                    RemotingCommand::error_response(&req, response::SYSTEM_ERROR, e.to_string())
                }
            },
            request::GET_BROKER_CLUSTER_INFO => {
                let info = ClusterInfo {
                    broker_addr_table: BTreeMap::from([(
                        BROKER_NAME.to_string(),
                        self.broker_data(),
                    )]),
                    cluster_addr_table: BTreeMap::from([(
                        CLUSTER.to_string(),
                        vec![BROKER_NAME.to_string()],
                    )]),
                };
                RemotingCommand::response_to(&req, response::SUCCESS)
                    .with_body(serde_json::to_vec(&info).expect("cluster info serializes"))
            }
            // Heartbeats, unregistering, topic creation and the rest: accepted and forgotten.
            _ => RemotingCommand::response_to(&req, response::SUCCESS),
        };
        Some(resp)
    }
}

pub async fn run(listen: SocketAddr, shutdown: CancellationToken) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the null broker to {listen}"))?;
    let addr = listener.local_addr()?;
    let handler = Arc::new(NullBroker {
        addr,
        next_offset: AtomicI64::new(0),
    });
    println!("FerroMQ null broker is ready: name server and broker at {addr} (nothing is stored)");
    serve(listener, handler, ServerConfig::default(), shutdown).await;
    Ok(())
}
