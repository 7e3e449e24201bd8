//! One controller node: Apache's controller requests on the node's port (reads and writes go
//! to the raft leader's state; any node answers heartbeats and metadata), the brokers'
//! liveness as this node hears it, and the leader's scan that replaces a master that
//! stopped heartbeating and tells the group's brokers (NOTIFY_BROKER_ROLE_CHANGED, 1008).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, InboundHandler, NoInbound, ServerConfig};
use openraft::BasicNode;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ControllerConfig;
use crate::raft::{self, LogStore, NetworkFactory, Raft, StateMachine};
use crate::state::{code, ControllerState, ElectRefusal, Elected, Event, LiveInfo, Liveness};

/// Apache's controller request codes.
pub mod request {
    pub const BROKER_HEARTBEAT: i32 = 904;
    pub const ALTER_SYNC_STATE_SET: i32 = 1001;
    pub const ELECT_MASTER: i32 = 1002;
    pub const REGISTER_BROKER: i32 = 1003;
    pub const GET_REPLICA_INFO: i32 = 1004;
    pub const GET_METADATA_INFO: i32 = 1005;
    pub const GET_SYNC_STATE_DATA: i32 = 1006;
    pub const NOTIFY_BROKER_ROLE_CHANGED: i32 = 1008;
    pub const UPDATE_CONTROLLER_CONFIG: i32 = 1009;
    pub const GET_CONTROLLER_CONFIG: i32 = 1010;
    pub const CLEAN_BROKER_DATA: i32 = 1011;
    pub const GET_NEXT_BROKER_ID: i32 = 1012;
    pub const APPLY_BROKER_ID: i32 = 1013;
}

/// A broker's heartbeat is good for this long unless it says otherwise
/// (`controllerHeartBeatTimeoutMills`).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("controllerDLegerSelfId {0} is not among controllerDLegerPeers")]
    SelfNotAPeer(String),
    #[error("opening the controller store {path}: {source}")]
    Store {
        path: String,
        source: std::io::Error,
    },
    #[error("starting raft: {0}")]
    Raft(String),
}

struct Heartbeat {
    address: String,
    last: Instant,
    timeout: Duration,
    info: LiveInfo,
    /// The connection the last heartbeat came on: when it closes, the broker is gone.
    connection: u64,
    closed: bool,
}

#[derive(Default)]
struct LiveTable {
    by_broker: HashMap<(String, i64), Heartbeat>,
}

struct LiveView<'a>(&'a LiveTable);

impl Liveness for LiveView<'_> {
    fn live(&self, broker_name: &str, id: i64) -> Option<LiveInfo> {
        self.0
            .by_broker
            .get(&(broker_name.to_string(), id))
            .filter(|h| !h.closed && h.last.elapsed() <= h.timeout)
            .map(|h| h.info.clone())
    }
}

/// How long a silent broker's last heartbeat is remembered.
const FORGET_SILENT_AFTER: Duration = Duration::from_secs(600);

pub struct Controller {
    config: ControllerConfig,
    raft_id: u64,
    raft: Raft,
    machine: StateMachine,
    live: Mutex<LiveTable>,
    /// Writes are decided on the applied state and proposed one at a time, as Apache's
    /// event scheduler does, so no decision is made on a state another write is changing.
    writes: tokio::sync::Mutex<()>,
    started: Instant,
    /// A broker's connection closed: scan now rather than at the next interval.
    scan_now: tokio::sync::Notify,
}

fn header_i64(req: &RemotingCommand, key: &str) -> Option<i64> {
    req.field(key).and_then(|v| v.parse().ok())
}

fn header_str<'a>(req: &'a RemotingCommand, key: &str) -> Result<&'a str, RemotingCommand> {
    req.field(key).filter(|v| !v.is_empty()).ok_or_else(|| {
        RemotingCommand::error_response(
            req,
            code::INVALID_REQUEST,
            format!("the header field {key} is missing"),
        )
    })
}

fn sync_state_set_body(set: &BTreeSet<i64>, epoch: i32) -> Vec<u8> {
    serde_json::to_vec(&json!({"syncStateSet": set, "syncStateSetEpoch": epoch}))
        .expect("sync state sets serialize")
}

fn refused(req: &RemotingCommand, r: crate::state::Refusal) -> RemotingCommand {
    RemotingCommand::error_response(req, r.code, r.remark)
}

impl Controller {
    /// Opens the node's raft store and starts raft; a new cluster is initialized with the
    /// configured peers.
    pub async fn start(config: ControllerConfig) -> Result<Arc<Self>, ControllerError> {
        if config.self_addr().is_none() {
            return Err(ControllerError::SelfNotAPeer(config.self_id.clone()));
        }
        let store_err = |source| ControllerError::Store {
            path: config.store_path.display().to_string(),
            source,
        };
        let log = LogStore::open(&config.store_path).map_err(store_err)?;
        let machine = StateMachine::open(&config.store_path).map_err(store_err)?;
        let raft_config = openraft::Config {
            cluster_name: config.group.clone(),
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            ..Default::default()
        };
        let raft_config = Arc::new(
            raft_config
                .validate()
                .map_err(|e| ControllerError::Raft(e.to_string()))?,
        );
        let raft_id = config.raft_id(&config.self_id);
        let raft = Raft::new(raft_id, raft_config, NetworkFactory, log, machine.clone())
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        if !raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?
        {
            let members: BTreeMap<u64, BasicNode> = config
                .peers
                .iter()
                .map(|(id, addr)| (config.raft_id(id), BasicNode::new(addr)))
                .collect();
            // Every node of a new cluster initializes it with the same members; openraft
            // makes that one membership entry.
            if let Err(e) = raft.initialize(members).await {
                info!(error = %e, "raft already initialized");
            }
        }
        Ok(Arc::new(Controller {
            config,
            raft_id,
            raft,
            machine,
            live: Mutex::new(LiveTable::default()),
            writes: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            scan_now: tokio::sync::Notify::new(),
        }))
    }

    /// Serves requests on `listener` and scans for dead masters until `shutdown`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let scan = tokio::spawn(self.clone().scan_loop(shutdown.clone()));
        ferromq_remoting::serve(listener, self.clone(), ServerConfig::default(), shutdown).await;
        let _ = scan.await;
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft did not shut down cleanly");
        }
    }

    /// The leader's address, when one is known.
    pub async fn leader(&self) -> Option<(String, String)> {
        let leader = self.raft.current_leader().await?;
        self.config.peers.get(leader as usize).cloned()
    }

    /// Is this node the leader, with its state machine caught up to everything committed?
    async fn lead(&self, req: &RemotingCommand) -> Result<(), RemotingCommand> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let leader = self.leader().await.map(|(_, a)| a).unwrap_or_default();
                Err(RemotingCommand::error_response(
                    req,
                    code::NOT_LEADER,
                    format!("this controller is not the leader (leader: {leader}): {e}"),
                ))
            }
        }
    }

    async fn propose(&self, req: &RemotingCommand, event: Event) -> Result<(), RemotingCommand> {
        self.raft
            .client_write(event)
            .await
            .map(|_| ())
            .map_err(|e| {
                RemotingCommand::error_response(
                    req,
                    code::NOT_LEADER,
                    format!("not committed: {e}"),
                )
            })
    }

    fn state<T>(&self, f: impl FnOnce(&ControllerState) -> T) -> T {
        self.machine.read(f)
    }

    async fn process(&self, conn: &Connection, req: RemotingCommand) -> RemotingCommand {
        let result = match req.code {
            request::BROKER_HEARTBEAT => self.heartbeat(conn, &req),
            request::GET_METADATA_INFO => Ok(self.metadata(&req).await),
            request::GET_CONTROLLER_CONFIG => Ok(self.get_config(&req)),
            request::UPDATE_CONTROLLER_CONFIG => Ok(RemotingCommand::error_response(
                &req,
                response::NO_PERMISSION,
                "FerroMQ's controller reads its configuration at start: change controller.conf and restart the node",
            )),
            request::GET_NEXT_BROKER_ID => self.next_broker_id(&req).await,
            request::APPLY_BROKER_ID => self.apply_broker_id(&req).await,
            request::REGISTER_BROKER => self.register_broker(&req).await,
            request::GET_REPLICA_INFO => self.replica_info(&req).await,
            request::ELECT_MASTER => self.elect_master(&req).await,
            request::ALTER_SYNC_STATE_SET => self.alter_sync_state_set(&req).await,
            request::GET_SYNC_STATE_DATA => self.sync_state_data(&req).await,
            request::CLEAN_BROKER_DATA => self.clean_broker_data(&req).await,
            raft::rpc_code::APPEND_ENTRIES | raft::rpc_code::VOTE | raft::rpc_code::INSTALL_SNAPSHOT => {
                Ok(match raft::serve_rpc(&self.raft, &req).await {
                    Ok(body) => RemotingCommand::response_to(&req, response::SUCCESS).with_body(body),
                    Err(e) => RemotingCommand::error_response(&req, response::SYSTEM_ERROR, e),
                })
            }
            other => Ok(RemotingCommand::error_response(
                &req,
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!("request code {other} is not served by a controller"),
            )),
        };
        result.unwrap_or_else(|refusal| refusal)
    }

    fn heartbeat(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let broker_name = header_str(req, "brokerName")?.to_string();
        let address = header_str(req, "brokerAddr")?.to_string();
        let Some(id) = header_i64(req, "brokerId") else {
            return Err(RemotingCommand::error_response(
                req,
                code::INVALID_REQUEST,
                "a heartbeat needs brokerId",
            ));
        };
        let epoch = header_i64(req, "epoch").unwrap_or(-1) as i32;
        let max_offset = header_i64(req, "maxOffset").unwrap_or(-1);
        let timeout = header_i64(req, "heartbeatTimeoutMills")
            .filter(|t| *t > 0)
            .map_or(DEFAULT_HEARTBEAT_TIMEOUT, |t| {
                Duration::from_millis(t as u64)
            });
        let priority = header_i64(req, "electionPriority").map_or(i32::MAX, |p| {
            p.clamp(i32::MIN as i64, i32::MAX as i64) as i32
        });
        let mut live = self.live.lock().expect("liveness lock");
        let entry = live
            .by_broker
            .entry((broker_name, id))
            .or_insert_with(|| Heartbeat {
                address: address.clone(),
                last: Instant::now(),
                timeout,
                info: LiveInfo {
                    epoch: -1,
                    max_offset: -1,
                    election_priority: priority,
                },
                connection: conn.id(),
                closed: false,
            });
        entry.last = Instant::now();
        entry.connection = conn.id();
        entry.closed = false;
        entry.timeout = timeout;
        entry.address = address;
        entry.info.election_priority = priority;
        // Apache's merge: what a broker reports only moves forward.
        if epoch > entry.info.epoch
            || (epoch == entry.info.epoch && max_offset > entry.info.max_offset)
        {
            entry.info.epoch = epoch;
            entry.info.max_offset = max_offset;
        }
        Ok(RemotingCommand::response_to(req, response::SUCCESS))
    }

    async fn metadata(&self, req: &RemotingCommand) -> RemotingCommand {
        let leader = self.leader().await;
        let is_leader = self.raft.current_leader().await == Some(self.raft_id);
        let peers: Vec<String> = self
            .config
            .peers
            .iter()
            .map(|(id, a)| format!("{id}-{a}"))
            .collect();
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("group", &self.config.group)
            .with_field(
                "controllerLeaderId",
                leader.as_ref().map(|(id, _)| id.as_str()).unwrap_or(""),
            )
            .with_field(
                "controllerLeaderAddress",
                leader.as_ref().map(|(_, a)| a.as_str()).unwrap_or(""),
            )
            .with_field("isLeader", is_leader)
            .with_field("peers", peers.join(";"))
    }

    fn get_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let c = &self.config;
        let peers: Vec<String> = c.peers.iter().map(|(id, a)| format!("{id}-{a}")).collect();
        let text = format!(
            "controllerDLegerGroup={}\ncontrollerDLegerPeers={}\ncontrollerDLegerSelfId={}\ncontrollerStorePath={}\nscanInactiveMasterInterval={}\nenableElectUncleanMaster={}\nnotifyBrokerRoleChanged={}\n",
            c.group,
            peers.join(";"),
            c.self_id,
            c.store_path.display(),
            c.scan_interval.as_millis(),
            c.elect_unclean_master,
            c.notify_broker_role_changed,
        );
        RemotingCommand::response_to(req, response::SUCCESS).with_body(text.into_bytes())
    }

    async fn next_broker_id(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let cluster = header_str(req, "clusterName")?;
        let broker_name = header_str(req, "brokerName")?;
        self.lead(req).await?;
        let next = self.state(|s| s.next_broker_id(broker_name));
        Ok(RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("clusterName", cluster)
            .with_field("brokerName", broker_name)
            .with_field("nextBrokerId", next))
    }

    async fn apply_broker_id(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let cluster = header_str(req, "clusterName")?;
        let broker_name = header_str(req, "brokerName")?;
        let check_code = header_str(req, "registerCheckCode")?;
        let Some(id) = header_i64(req, "appliedBrokerId") else {
            return Err(RemotingCommand::error_response(
                req,
                code::INVALID_REQUEST,
                "appliedBrokerId is missing",
            ));
        };
        let _write = self.writes.lock().await;
        self.lead(req).await?;
        let event = self
            .state(|s| s.apply_broker_id(cluster, broker_name, id, check_code))
            .map_err(|r| refused(req, r))?;
        self.propose(req, event).await?;
        Ok(RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("clusterName", cluster)
            .with_field("brokerName", broker_name))
    }

    async fn register_broker(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let cluster = header_str(req, "clusterName")?;
        let broker_name = header_str(req, "brokerName")?;
        let address = header_str(req, "brokerAddress")?;
        let Some(id) = header_i64(req, "brokerId") else {
            return Err(RemotingCommand::error_response(
                req,
                code::INVALID_REQUEST,
                "brokerId is missing",
            ));
        };
        let _write = self.writes.lock().await;
        self.lead(req).await?;
        let (registered, update) = {
            let live = self.live.lock().expect("liveness lock");
            self.state(|s| s.register_broker(broker_name, id, address, &LiveView(&live)))
        }
        .map_err(|r| refused(req, r))?;
        if let Some(update) = update {
            self.propose(req, update).await?;
        }
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("clusterName", cluster)
            .with_field("brokerName", broker_name)
            .with_body(sync_state_set_body(
                &registered.sync_state_set,
                registered.sync_state_set_epoch,
            ));
        if let Some((master, addr, epoch, set_epoch)) = registered.master {
            resp = resp
                .with_field("masterBrokerId", master)
                .with_field("masterAddress", addr)
                .with_field("masterEpoch", epoch)
                .with_field("syncStateSetEpoch", set_epoch);
        }
        Ok(resp)
    }

    async fn replica_info(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let broker_name = header_str(req, "brokerName")?;
        self.lead(req).await?;
        let group = self
            .state(|s| s.groups.get(broker_name).cloned())
            .ok_or_else(|| {
                RemotingCommand::error_response(
                    req,
                    code::BROKER_METADATA_NOT_EXIST,
                    format!("no broker group {broker_name}"),
                )
            })?;
        let mut resp = RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("masterEpoch", group.master_epoch)
            .with_body(sync_state_set_body(
                &group.sync_state_set,
                group.sync_state_set_epoch,
            ));
        if let Some(m) = group.master {
            resp = resp
                .with_field("masterBrokerId", m)
                .with_field("masterAddress", group.address(Some(m)).unwrap_or_default());
        }
        Ok(resp)
    }

    async fn elect_master(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let broker_name = header_str(req, "brokerName")?;
        let requester = header_i64(req, "brokerId").filter(|id| *id != -1);
        let designate = req.field("designateElect") == Some("true");
        let _write = self.writes.lock().await;
        self.lead(req).await?;
        match self.decide_election(broker_name, requester, designate) {
            Ok((elected, event)) => {
                self.propose(req, event).await?;
                self.notify_role_changed(broker_name, &elected);
                Ok(elected_response(
                    req,
                    response::SUCCESS,
                    &elected,
                    broker_name,
                    "",
                ))
            }
            Err(ElectRefusal::MasterStillExists(current)) => Ok(elected_response(
                req,
                code::MASTER_STILL_EXIST,
                &current,
                broker_name,
                "the master is alive: nothing to elect",
            )),
            Err(ElectRefusal::NoMaster(event)) => {
                self.propose(req, event).await?;
                Err(RemotingCommand::error_response(
                    req,
                    code::MASTER_NOT_AVAILABLE,
                    "the master is gone and no broker can replace it",
                ))
            }
            Err(ElectRefusal::Refused(r)) => Err(refused(req, r)),
        }
    }

    fn decide_election(
        &self,
        broker_name: &str,
        requester: Option<i64>,
        designate: bool,
    ) -> Result<(Elected, Event), ElectRefusal> {
        let live = self.live.lock().expect("liveness lock");
        self.state(|s| {
            s.elect_master(
                broker_name,
                requester,
                designate,
                self.config.elect_unclean_master,
                &LiveView(&live),
            )
        })
    }

    async fn alter_sync_state_set(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let broker_name = header_str(req, "brokerName")?;
        let (Some(master), Some(master_epoch)) = (
            header_i64(req, "masterBrokerId"),
            header_i64(req, "masterEpoch"),
        ) else {
            return Err(RemotingCommand::error_response(
                req,
                code::INVALID_REQUEST,
                "masterBrokerId and masterEpoch are required",
            ));
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct SetBody {
            sync_state_set: BTreeSet<i64>,
            sync_state_set_epoch: i32,
        }
        let body: SetBody = serde_json::from_slice(&req.body).map_err(|e| {
            RemotingCommand::error_response(
                req,
                code::INVALID_REQUEST,
                format!("malformed SyncStateSet body: {e}"),
            )
        })?;
        let _write = self.writes.lock().await;
        self.lead(req).await?;
        let (epoch, event) = {
            let live = self.live.lock().expect("liveness lock");
            self.state(|s| {
                s.alter_sync_state_set(
                    broker_name,
                    master,
                    master_epoch as i32,
                    &body.sync_state_set,
                    body.sync_state_set_epoch,
                    &LiveView(&live),
                )
            })
        }
        .map_err(|r| refused(req, r))?;
        self.propose(req, event).await?;
        Ok(RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("newSyncStateSetEpoch", epoch)
            .with_body(sync_state_set_body(&body.sync_state_set, epoch)))
    }

    async fn sync_state_data(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let names: Vec<String> = serde_json::from_slice(&req.body).map_err(|e| {
            RemotingCommand::error_response(
                req,
                code::INVALID_REQUEST,
                format!("the body must be a JSON list of broker names: {e}"),
            )
        })?;
        self.lead(req).await?;
        let live = self.live.lock().expect("liveness lock");
        let view = LiveView(&live);
        let table: serde_json::Map<String, serde_json::Value> = self.state(|s| {
            names
                .iter()
                .filter_map(|name| s.groups.get(name).map(|g| (name, g)))
                .map(|(name, g)| {
                    let replica = |id: &i64, r: &crate::state::Replica| {
                        json!({"brokerName": name, "brokerId": id, "brokerAddress": r.address, "alive": view.alive(name, *id)})
                    };
                    let (in_sync, not_in_sync): (Vec<_>, Vec<_>) =
                        g.replicas.iter().partition(|(id, _)| g.sync_state_set.contains(id));
                    (
                        name.clone(),
                        json!({
                            "masterBrokerId": g.master,
                            "masterAddress": g.address(g.master),
                            "masterEpoch": g.master_epoch,
                            "syncStateSetEpoch": g.sync_state_set_epoch,
                            "inSyncReplicas": in_sync.into_iter().map(|(id, r)| replica(id, r)).collect::<Vec<_>>(),
                            "notInSyncReplicas": not_in_sync.into_iter().map(|(id, r)| replica(id, r)).collect::<Vec<_>>(),
                        }),
                    )
                })
                .collect()
        });
        let body = json!({"replicasInfoTable": table});
        Ok(RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&body).expect("replicas info serializes")))
    }

    async fn clean_broker_data(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, RemotingCommand> {
        let broker_name = header_str(req, "brokerName")?;
        let ids = match req
            .field("brokerControllerIdsToClean")
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(list) => Some(
                list.split(';')
                    .map(|id| id.trim().parse::<i64>())
                    .collect::<Result<BTreeSet<i64>, _>>()
                    .map_err(|_| {
                        RemotingCommand::error_response(
                            req,
                            code::INVALID_REQUEST,
                            format!(
                                "brokerControllerIdsToClean '{list}' is not ids separated by ';'"
                            ),
                        )
                    })?,
            ),
        };
        let clean_living = req.field("isCleanLivingBroker") == Some("true");
        let _write = self.writes.lock().await;
        self.lead(req).await?;
        let event = {
            let live = self.live.lock().expect("liveness lock");
            self.state(|s| s.clean_broker_data(broker_name, ids, clean_living, &LiveView(&live)))
        }
        .map_err(|r| refused(req, r))?;
        self.propose(req, event).await?;
        Ok(RemotingCommand::response_to(req, response::SUCCESS))
    }

    /// Tells every live broker of the group who its master now is (oneway, as Apache).
    fn notify_role_changed(&self, broker_name: &str, elected: &Elected) {
        if !self.config.notify_broker_role_changed {
            return;
        }
        let targets: Vec<String> = {
            let live = self.live.lock().expect("liveness lock");
            let view = LiveView(&live);
            elected
                .members
                .iter()
                .filter(|(id, _)| view.alive(broker_name, **id))
                .filter_map(|(id, _)| {
                    live.by_broker
                        .get(&(broker_name.to_string(), *id))
                        .map(|h| h.address.clone())
                })
                .collect()
        };
        let notice = RemotingCommand::request(request::NOTIFY_BROKER_ROLE_CHANGED)
            .with_field("masterAddress", &elected.master_address)
            .with_field("masterEpoch", elected.master_epoch)
            .with_field("syncStateSetEpoch", elected.sync_state_set_epoch)
            .with_field("masterBrokerId", elected.master)
            .with_body(sync_state_set_body(
                &elected.sync_state_set,
                elected.sync_state_set_epoch,
            ));
        for addr in targets {
            let notice = notice.clone();
            tokio::spawn(async move {
                let sent = async {
                    let conn = ferromq_remoting::connect(
                        &addr,
                        Arc::new(NoInbound),
                        Duration::from_secs(3),
                    )
                    .await?;
                    conn.invoke_oneway(notice).await?;
                    // Let the frame leave before the connection drops.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    conn.close();
                    Ok::<(), ferromq_remoting::RemotingError>(())
                };
                if let Err(e) = sent.await {
                    warn!(broker = %addr, error = %e, "telling a broker of its new role failed");
                }
            });
        }
    }

    /// On the leader: replaces masters that stopped heartbeating.
    async fn scan_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let closed = tokio::select! {
                // First: a controller shutting down closes its brokers' connections itself,
                // which is no news about the brokers.
                biased;
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.scan_interval) => false,
                () = self.scan_now.notified() => true,
            };
            self.forget_long_silent_brokers();
            if self.raft.current_leader().await != Some(self.raft_id) {
                continue;
            }
            // A node that just started has heard no heartbeats yet: give the brokers one
            // timeout to reach it before judging them (a closed connection is news enough).
            if !closed && self.started.elapsed() < DEFAULT_HEARTBEAT_TIMEOUT {
                continue;
            }
            let dead_masters: Vec<String> = {
                let live = self.live.lock().expect("liveness lock");
                let view = LiveView(&live);
                self.state(|s| {
                    s.groups
                        .iter()
                        .filter(|(name, g)| g.master.is_some_and(|m| !view.alive(name, m)))
                        .map(|(name, _)| name.clone())
                        .collect()
                })
            };
            for broker_name in dead_masters {
                // A shutdown begun while scanning must not depose anyone on its way out.
                if shutdown.is_cancelled() {
                    return;
                }
                self.replace_master(&broker_name).await;
            }
        }
    }

    /// Drops the liveness of brokers silent for [`FORGET_SILENT_AFTER`]: it is of no use to
    /// an election any more, and groups come and go over a controller's life.
    fn forget_long_silent_brokers(&self) {
        self.live
            .lock()
            .expect("liveness lock")
            .by_broker
            .retain(|_, h| h.last.elapsed() < FORGET_SILENT_AFTER.max(h.timeout));
    }

    async fn replace_master(&self, broker_name: &str) {
        let _write = self.writes.lock().await;
        if self.raft.ensure_linearizable().await.is_err() {
            return;
        }
        let req = RemotingCommand::request(request::ELECT_MASTER);
        match self.decide_election(broker_name, None, false) {
            Ok((elected, event)) => {
                if self.propose(&req, event).await.is_ok() {
                    info!(
                        broker = broker_name,
                        master = elected.master,
                        epoch = elected.master_epoch,
                        "master stopped heartbeating; elected a new one"
                    );
                    self.notify_role_changed(broker_name, &elected);
                }
            }
            Err(ElectRefusal::NoMaster(event)) => {
                if self.propose(&req, event).await.is_ok() {
                    warn!(
                        broker = broker_name,
                        "master stopped heartbeating and no in-sync broker is alive to replace it"
                    );
                }
            }
            Err(ElectRefusal::MasterStillExists(_)) => {}
            Err(ElectRefusal::Refused(r)) => {
                warn!(broker = broker_name, error = %r, "re-electing failed")
            }
        }
    }
}

fn elected_response(
    req: &RemotingCommand,
    code: i32,
    e: &Elected,
    broker_name: &str,
    remark: &str,
) -> RemotingCommand {
    let cluster = req.field("clusterName").unwrap_or_default();
    let body = json!({
        "brokerMemberGroup": {"cluster": cluster, "brokerName": broker_name, "brokerAddrs": e.members},
        "syncStateSet": e.sync_state_set,
    });
    let mut resp = RemotingCommand::response_to(req, code)
        .with_field("masterBrokerId", e.master)
        .with_field("masterAddress", &e.master_address)
        .with_field("masterEpoch", e.master_epoch)
        .with_field("syncStateSetEpoch", e.sync_state_set_epoch)
        .with_body(serde_json::to_vec(&body).expect("elect bodies serialize"));
    if !remark.is_empty() {
        resp.remark = Some(remark.to_string());
    }
    resp
}

impl InboundHandler for Controller {
    async fn on_request(
        &self,
        conn: Connection,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        Some(self.process(&conn, request).await)
    }

    /// A broker's heartbeat connection closed: its process is gone (Apache's controller
    /// reacts the same way), so a master is replaced without waiting out its timeout.
    fn on_close(&self, conn: &Connection) {
        let mut any = false;
        for h in self
            .live
            .lock()
            .expect("liveness lock")
            .by_broker
            .values_mut()
            .filter(|h| h.connection == conn.id())
        {
            h.closed = true;
            any = true;
        }
        if any {
            self.scan_now.notify_one();
        }
    }
}
