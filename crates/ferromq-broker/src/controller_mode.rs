//! Controller mode (`enableControllerMode=true`), as Apache's `ReplicasManager`: the broker
//! gets an id for its group from the controllers (kept in `<root>/brokerIdentity`), sends
//! them a heartbeat every `brokerHeartbeatInterval`, and takes the role they decide. As
//! master it starts a new epoch in its log, serves its slaves, and reports which of them keep
//! up (the in-sync set); as slave it follows the master the controllers name. A master that
//! stops heartbeating is replaced by an in-sync slave; when it comes back it follows the new
//! master after cutting what it wrote that the new master never had.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, NoInbound};
use ferromq_store::AppendResult;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::BrokerConfig;
use crate::store_service::PutError;
use crate::{Broker, Role};

const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a master checks which slaves keep up, and a broker retries a failed step.
const TICK: Duration = Duration::from_secs(1);

mod code {
    pub const BROKER_HEARTBEAT: i32 = 904;
    pub const EXCHANGE_BROKER_HA_INFO: i32 = 906;
    pub const ALTER_SYNC_STATE_SET: i32 = 1001;
    pub const ELECT_MASTER: i32 = 1002;
    pub const REGISTER_BROKER: i32 = 1003;
    pub const GET_REPLICA_INFO: i32 = 1004;
    pub const GET_METADATA_INFO: i32 = 1005;
    pub const GET_NEXT_BROKER_ID: i32 = 1012;
    pub const APPLY_BROKER_ID: i32 = 1013;
    pub const NOT_LEADER: i32 = 2007;
    pub const BROKER_METADATA_NOT_EXIST: i32 = 2008;
    pub const MASTER_STILL_EXIST: i32 = 2011;
}

/// How often a master looks at its confirm offset without an acknowledgement or append
/// prompting it (the in-sync set changed).
const CONFIRM_TICK: Duration = Duration::from_millis(200);

/// What the broker knows of its group from the controllers.
#[derive(Debug, Clone, Default)]
struct GroupView {
    master_id: Option<i64>,
    master_addr: Option<String>,
    master_epoch: i32,
    sync_state_set: BTreeSet<i64>,
    sync_state_set_epoch: i32,
    /// Slaves being added to the set: waited for already, not yet agreed.
    joining: BTreeSet<i64>,
}

pub(crate) struct ControllerMode {
    identity_path: PathBuf,
    broker_id: Mutex<Option<i64>>,
    view: Mutex<GroupView>,
    /// A NOTIFY_BROKER_ROLE_CHANGED arrived: look at the group now.
    changed: Notify,
    /// Stops the tasks of the current role when it changes.
    role_tasks: Mutex<Option<CancellationToken>>,
    leader: tokio::sync::Mutex<Option<(String, Connection)>>,
    /// When the controllers last answered: a master that has not heard from them for a
    /// heartbeat timeout may already have been replaced, so it stops taking writes.
    last_contact: Mutex<Option<std::time::Instant>>,
    /// Per controller address: when the last heartbeat it answered was sent. The leader
    /// judges this broker alive from heartbeats, so the lease also ends a timeout after the
    /// last heartbeat the leader is known to have received.
    heartbeat_answered: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// The controller address answering as leader, for the lease.
    leader_addr: Mutex<Option<String>>,
}

/// A request about this broker's group: cluster and broker name set.
fn group_request(code: i32, config: &BrokerConfig) -> RemotingCommand {
    RemotingCommand::request(code)
        .with_field("clusterName", &config.cluster_name)
        .with_field("brokerName", &config.broker_name)
}

fn parse_identity(text: &str) -> Option<(String, String, i64, Option<String>)> {
    let mut parts = text.trim().split('#');
    let cluster = parts.next()?.to_string();
    let name = parts.next()?.to_string();
    let id = parts.next()?.parse().ok()?;
    Some((cluster, name, id, parts.next().map(str::to_string)))
}

impl ControllerMode {
    pub(crate) fn open(root: &Path) -> std::io::Result<Self> {
        let identity_path = root.join("brokerIdentity");
        let broker_id = match std::fs::read_to_string(&identity_path) {
            Ok(text) => parse_identity(&text).map(|(_, _, id, _)| id),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(ControllerMode {
            identity_path,
            broker_id: Mutex::new(broker_id),
            view: Mutex::new(GroupView::default()),
            changed: Notify::new(),
            role_tasks: Mutex::new(None),
            leader: tokio::sync::Mutex::new(None),
            last_contact: Mutex::new(None),
            heartbeat_answered: Mutex::new(Default::default()),
            leader_addr: Mutex::new(None),
        })
    }

    pub(crate) fn broker_id(&self) -> Option<i64> {
        *self.broker_id.lock().expect("broker id lock")
    }

    /// The master's epoch and the in-sync set as the controllers last told this broker.
    pub(crate) fn agreed_sync_state(&self) -> (i32, BTreeSet<i64>) {
        let v = self.view.lock().expect("group view lock");
        (v.master_epoch, v.sync_state_set.clone())
    }

    /// The in-sync set as this master last agreed it with the controllers, with the slaves
    /// it is adding (Apache's union while synchronizing): a send waits for all of them.
    pub(crate) fn sync_state_set(&self) -> BTreeSet<i64> {
        let v = self.view.lock().expect("group view lock");
        v.sync_state_set.union(&v.joining).copied().collect()
    }

    /// Refuses a send while this master's lease is out. The lease holds for a heartbeat
    /// timeout from the later of two moments being old: the last request the leader
    /// answered naming this broker master, and the last heartbeat the leader answered (it
    /// judges this broker alive from heartbeats alone). Both count from when they were
    /// sent, so the lease ends before the leader can count this broker dead and elect
    /// another master, whatever the network drops after.
    pub(crate) fn check_lease(&self, config: &BrokerConfig) -> Result<(), PutError> {
        let timeout = Duration::from_millis(config.controller_heartbeat_timeout_ms);
        let fresh = |at: Option<std::time::Instant>| at.is_some_and(|at| at.elapsed() < timeout);
        let named_master = *self.last_contact.lock().expect("lease lock");
        let leader = self.leader_addr.lock().expect("leader lock").clone();
        let heard = leader.and_then(|addr| {
            self.heartbeat_answered
                .lock()
                .expect("heartbeat lock")
                .get(&addr)
                .copied()
        });
        if fresh(named_master) && fresh(heard) {
            Ok(())
        } else {
            Err(PutError::LeaseExpired)
        }
    }

    /// A heartbeat to `addr` sent at `sent` was answered.
    fn heartbeat_answered(&self, addr: &str, sent: std::time::Instant) {
        self.heartbeat_answered
            .lock()
            .expect("heartbeat lock")
            .insert(addr.to_string(), sent);
    }

    /// The connection to `addr` is being dropped: the controller may take that for this
    /// broker's death at once, so nothing sent over it may hold the lease up any more.
    fn forget_heartbeats(&self, addr: &str) {
        self.heartbeat_answered
            .lock()
            .expect("heartbeat lock")
            .remove(addr);
    }

    /// Refuses a send while fewer brokers are in sync than `minInSyncReplicas`.
    pub(crate) fn check_in_sync_replicas(&self, config: &BrokerConfig) -> Result<(), PutError> {
        let in_sync = self.sync_state_set().len().max(1) as u32;
        if in_sync < config.min_in_sync_replicas {
            return Err(PutError::InSyncReplicasNotEnough);
        }
        Ok(())
    }

    /// Waits, as the configuration asks, until the in-sync slaves hold the messages.
    pub(crate) async fn wait_replicated(
        &self,
        config: &BrokerConfig,
        ha: &ferromq_ha::HaMaster,
        results: &[AppendResult],
    ) -> Result<(), PutError> {
        let end = results.last().map_or(0, |r| r.end_offset);
        let timeout = Duration::from_millis(config.slave_timeout_ms);
        let outcome = if config.all_ack_in_sync_state_set {
            let me = self.broker_id().unwrap_or(-1);
            let others: BTreeSet<i64> = self
                .sync_state_set()
                .into_iter()
                .filter(|id| *id != me)
                .collect();
            ha.wait_all(&others, end, timeout).await
        } else if config.effective_in_sync_replicas() > 1 {
            ha.wait_replicated(end, timeout).await
        } else {
            Ok(())
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(ferromq_ha::ReplicaWait::NotAvailable) => {
                Err(PutError::SlaveNotAvailable(results.to_vec()))
            }
            Err(ferromq_ha::ReplicaWait::Timeout) => Err(PutError::SlaveTimeout(results.to_vec())),
        }
    }

    /// NOTIFY_BROKER_ROLE_CHANGED: the controllers elected a master.
    pub(crate) fn role_changed(&self) {
        self.changed.notify_one();
    }

    fn write_identity(&self, text: &str, temp: bool) -> std::io::Result<()> {
        let path = if temp {
            self.identity_path.with_file_name("brokerIdentity-temp")
        } else {
            self.identity_path.clone()
        };
        std::fs::write(&path, text)?;
        std::fs::File::open(&path)?.sync_all()
    }
}

impl Broker {
    /// Runs controller mode until `shutdown`.
    pub(crate) async fn controller_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let id = loop {
            match self.obtain_broker_id().await {
                Ok(id) => break id,
                Err(e) => {
                    warn!(error = %e, "getting a broker id from the controllers failed; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
            }
        };
        info!(
            broker_id = id,
            "controller mode: this broker's id in its group"
        );
        tokio::spawn(self.clone().heartbeat_loop(id, shutdown.clone()));
        tokio::spawn(self.replication_client(Some(id), shutdown.clone()));
        let mut registered = false;
        let mut last_sync = None::<tokio::time::Instant>;
        loop {
            let config = self.config();
            let mut period = Duration::from_millis(config.sync_broker_metadata_period_ms);
            if self.role() == Role::Master {
                // A master renews its lease (see `check_lease`) well within the timeout.
                period = period.min(Duration::from_millis(
                    config.controller_heartbeat_timeout_ms / 3,
                ));
            }
            let due = !registered
                || self.role() == Role::Fenced
                || last_sync.is_none_or(|t| t.elapsed() >= period);
            if due {
                let step = if registered {
                    self.sync_role(id, &shutdown).await
                } else {
                    self.register_to_controller(id)
                        .await
                        .map(|()| registered = true)
                };
                match step {
                    Ok(()) => last_sync = Some(tokio::time::Instant::now()),
                    Err(e) => warn!(error = %e, "controller mode"),
                }
            }
            if self.role() == Role::Master {
                if let Err(e) = self.maintain_sync_state_set(id).await {
                    debug!(error = %e, "reporting the in-sync set");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                () = self.controller.changed.notified() => last_sync = None,
                () = tokio::time::sleep(TICK) => {}
            }
        }
        if let Some(t) = self
            .controller
            .role_tasks
            .lock()
            .expect("role tasks lock")
            .take()
        {
            t.cancel();
        }
    }

    /// Sends a request to the controllers' leader, finding it first when needed.
    async fn call_controller(&self, req: RemotingCommand) -> Result<RemotingCommand, String> {
        for _ in 0..2 {
            let conn = {
                let mut leader = self.controller.leader.lock().await;
                match leader.as_ref().filter(|(_, c)| !c.is_closed()) {
                    Some((_, c)) => c.clone(),
                    None => {
                        let found = self.find_leader().await?;
                        *self.controller.leader_addr.lock().expect("leader lock") =
                            Some(found.0.clone());
                        *leader = Some(found.clone());
                        found.1
                    }
                }
            };
            match conn.invoke(req.clone(), CALL_TIMEOUT).await {
                Ok(resp) if resp.code == code::NOT_LEADER => {}
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    debug!(error = %e, "calling the controller leader failed");
                    // What is queued on it would arrive stale once the network heals.
                    conn.close();
                }
            }
            *self.controller.leader.lock().await = None;
            *self.controller.leader_addr.lock().expect("leader lock") = None;
        }
        Err("the controllers' leader did not answer".into())
    }

    async fn find_leader(&self) -> Result<(String, Connection), String> {
        for addr in &self.config().controller_addrs {
            let Ok(conn) = ferromq_remoting::connect(addr, Arc::new(NoInbound), CALL_TIMEOUT).await
            else {
                continue;
            };
            let Ok(meta) = conn
                .invoke(
                    RemotingCommand::request(code::GET_METADATA_INFO),
                    CALL_TIMEOUT,
                )
                .await
            else {
                continue;
            };
            if meta.field("isLeader") == Some("true") {
                return Ok((addr.clone(), conn));
            }
            if let Some(leader) = meta
                .field("controllerLeaderAddress")
                .filter(|l| !l.is_empty())
            {
                if let Ok(c) =
                    ferromq_remoting::connect(leader, Arc::new(NoInbound), CALL_TIMEOUT).await
                {
                    return Ok((leader.to_string(), c));
                }
            }
        }
        Err(format!(
            "no controller leader among {}",
            self.config().controller_addrs.join(";")
        ))
    }

    /// The broker's id in its group: from `brokerIdentity`, else applied for (the
    /// application is kept in `brokerIdentity-temp` until it succeeds, so a crash
    /// in between retries the same id).
    async fn obtain_broker_id(&self) -> Result<i64, String> {
        if let Some(id) = self.controller.broker_id() {
            return Ok(id);
        }
        let config = self.config();
        let temp_path = self
            .controller
            .identity_path
            .with_file_name("brokerIdentity-temp");
        let pending = std::fs::read_to_string(&temp_path)
            .ok()
            .and_then(|t| parse_identity(&t))
            .and_then(|(_, _, id, code)| code.map(|c| (id, c)));
        let (id, check_code) = match pending {
            Some(p) => p,
            None => {
                let next = self
                    .call_controller(group_request(code::GET_NEXT_BROKER_ID, &config))
                    .await?;
                let id: i64 = next
                    .field("nextBrokerId")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("no nextBrokerId in the answer: {:?}", next.remark))?;
                let check_code = format!("{};{}", config.advertised_addr(), crate::now_ms());
                self.controller
                    .write_identity(
                        &format!(
                            "{}#{}#{id}#{check_code}",
                            config.cluster_name, config.broker_name
                        ),
                        true,
                    )
                    .map_err(|e| e.to_string())?;
                (id, check_code)
            }
        };
        let applied = self
            .call_controller(
                group_request(code::APPLY_BROKER_ID, &config)
                    .with_field("appliedBrokerId", id)
                    .with_field("registerCheckCode", &check_code),
            )
            .await?;
        if applied.code != response::SUCCESS {
            let _ = std::fs::remove_file(&temp_path);
            return Err(format!("id {id} refused: {:?}", applied.remark));
        }
        self.controller
            .write_identity(
                &format!("{}#{}#{id}", config.cluster_name, config.broker_name),
                false,
            )
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&temp_path);
        *self.controller.broker_id.lock().expect("broker id lock") = Some(id);
        Ok(id)
    }

    async fn register_to_controller(&self, id: i64) -> Result<(), String> {
        let config = self.config();
        let resp = self
            .call_controller(
                group_request(code::REGISTER_BROKER, &config)
                    .with_field("brokerId", id)
                    .with_field("brokerAddress", config.advertised_addr()),
            )
            .await?;
        if resp.code != response::SUCCESS {
            return Err(format!(
                "registering with the controller: {:?}",
                resp.remark
            ));
        }
        Ok(())
    }

    /// Sends a heartbeat to every controller each `brokerHeartbeatInterval`, one loop per
    /// controller so that one unreachable controller delays no other's heartbeats.
    async fn heartbeat_loop(self: Arc<Self>, id: i64, shutdown: CancellationToken) {
        let loops = self
            .config()
            .controller_addrs
            .clone()
            .into_iter()
            .map(|addr| {
                let broker = self.clone();
                let shutdown = shutdown.clone();
                async move { broker.heartbeat_one(addr, id, shutdown).await }
            });
        futures::future::join_all(loops).await;
    }

    async fn heartbeat_one(&self, addr: String, id: i64, shutdown: CancellationToken) {
        let mut conn: Option<Connection> = None;
        let mut last_answer = std::time::Instant::now();
        loop {
            let config = self.config();
            let store = self.store.store();
            let epoch = store.epochs().last().map_or(-1, |e| e.epoch);
            let beat = group_request(code::BROKER_HEARTBEAT, &config)
                .with_field("brokerAddr", config.advertised_addr())
                .with_field("brokerId", id)
                .with_field("epoch", epoch)
                .with_field("maxOffset", store.complete_offset())
                .with_field("confirmOffset", store.read_limit())
                .with_field(
                    "heartbeatTimeoutMills",
                    config.controller_heartbeat_timeout_ms,
                )
                .with_field("electionPriority", config.broker_election_priority);
            let interval = Duration::from_millis(config.broker_heartbeat_interval_ms);
            // Half the controllers' patience: late enough for a busy controller, early
            // enough that the next heartbeat still comes in time.
            let timeout = Duration::from_millis(config.controller_heartbeat_timeout_ms);
            let patience = timeout / 2;
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                conn = ferromq_remoting::connect(&addr, Arc::new(NoInbound), CALL_TIMEOUT)
                    .await
                    .ok();
            }
            if let Some(c) = &conn {
                let sent = std::time::Instant::now();
                match c.invoke(beat, patience).await {
                    Ok(resp) if resp.code == response::SUCCESS => {
                        self.controller.heartbeat_answered(&addr, sent);
                        last_answer = sent;
                    }
                    outcome if c.is_closed() || last_answer.elapsed() >= timeout => {
                        // Silent for the controllers' whole patience: they count this broker
                        // dead already, so closing tells them nothing new. The lease stops
                        // counting on the connection first. A fresh one recovers at once
                        // once the network heals, where this one would wait out TCP's
                        // retransmission backoff with stale heartbeats queued.
                        debug!(controller = %addr, ?outcome, "controller silent; reconnecting");
                        self.controller.forget_heartbeats(&addr);
                        c.close();
                        conn = None;
                    }
                    // Late: a busy controller. Closing would make it count this broker dead
                    // at once.
                    _ => {}
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Asks the controllers who the group's master is and takes the role that follows; with
    /// no master, asks to be elected.
    async fn sync_role(
        self: &Arc<Self>,
        id: i64,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let config = self.config();
        // Taken before asking: a lease renewed by this answer ends no later than the
        // controllers' patience with a heartbeat sent after it.
        let asked_at = std::time::Instant::now();
        let info = self
            .call_controller(
                RemotingCommand::request(code::GET_REPLICA_INFO)
                    .with_field("brokerName", &config.broker_name),
            )
            .await?;
        if info.code == code::BROKER_METADATA_NOT_EXIST {
            return self.register_to_controller(id).await;
        }
        if info.code != response::SUCCESS {
            return Err(format!("replica info: {:?}", info.remark));
        }
        let answer = match info
            .field("masterBrokerId")
            .and_then(|v| v.parse::<i64>().ok())
        {
            Some(_) => info,
            None => {
                let elected = self
                    .call_controller(
                        group_request(code::ELECT_MASTER, &config)
                            .with_field("brokerId", id)
                            .with_field("designateElect", false),
                    )
                    .await?;
                if elected.code != response::SUCCESS && elected.code != code::MASTER_STILL_EXIST {
                    return Err(format!(
                        "no master, and electing this broker failed: {:?}",
                        elected.remark
                    ));
                }
                elected
            }
        };
        self.adopt(id, &answer, shutdown).await?;
        // Only an answer naming this broker master at its own epoch renews the lease: a
        // master resuming after a pause must not take writes on the strength of an answer
        // that is about to make it a slave.
        let named_master = answer
            .field("masterBrokerId")
            .and_then(|v| v.parse::<i64>().ok())
            == Some(id);
        let epoch = answer
            .field("masterEpoch")
            .and_then(|v| v.parse::<i32>().ok());
        let current = self
            .controller
            .view
            .lock()
            .expect("group view lock")
            .master_epoch;
        if named_master && epoch == Some(current) && self.role() == Role::Master {
            *self.controller.last_contact.lock().expect("lease lock") = Some(asked_at);
        }
        Ok(())
    }

    /// Takes the role a controller answer (replica info or an election) implies.
    async fn adopt(
        self: &Arc<Self>,
        id: i64,
        answer: &RemotingCommand,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let master: i64 = answer
            .field("masterBrokerId")
            .and_then(|v| v.parse().ok())
            .ok_or("the answer names no master")?;
        let epoch: i32 = answer
            .field("masterEpoch")
            .and_then(|v| v.parse().ok())
            .ok_or("the answer has no masterEpoch")?;
        let master_addr = answer
            .field("masterAddress")
            .unwrap_or_default()
            .to_string();
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct SetBody {
            #[serde(default)]
            sync_state_set: BTreeSet<i64>,
            #[serde(default)]
            sync_state_set_epoch: i32,
        }
        let set: SetBody = serde_json::from_slice(&answer.body).unwrap_or_default();
        let set_epoch = answer
            .field("syncStateSetEpoch")
            .and_then(|v| v.parse().ok())
            .unwrap_or(set.sync_state_set_epoch);
        let (known_epoch, known_master) = {
            let v = self.controller.view.lock().expect("group view lock");
            (v.master_epoch, v.master_id)
        };
        let role = self.role();
        let newer = epoch > known_epoch || role == Role::Fenced || known_master != Some(master);
        if master == id {
            if newer || role != Role::Master {
                self.become_master(epoch, set.sync_state_set, set_epoch, shutdown)
                    .await?;
            }
        } else if newer || role != Role::Slave || self.master_ha_addr.borrow().is_none() {
            self.become_slave(master, &master_addr, epoch, shutdown)
                .await?;
        }
        Ok(())
    }

    async fn become_master(
        self: &Arc<Self>,
        epoch: i32,
        set: BTreeSet<i64>,
        set_epoch: i32,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        // Stop copying first: nothing from the old master may land after the new epoch.
        self.master_ha_addr.send_replace(None);
        let store = self.store.store().clone();
        tokio::task::spawn_blocking(move || store.begin_epoch(epoch))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("starting epoch {epoch} in the log: {e}"))?;
        {
            let mut v = self.controller.view.lock().expect("group view lock");
            v.master_id = self.controller.broker_id();
            v.master_addr = Some(self.config().advertised_addr());
            v.master_epoch = epoch;
            v.sync_state_set = set;
            v.sync_state_set_epoch = set_epoch;
            v.joining.clear();
        }
        self.topics.set_state_version(epoch);
        let queues = self.store.store().queue_stats();
        if let Err(e) = self
            .topics
            .adopt_from_log(&queues, self.config().default_topic_queue_nums)
        {
            warn!(error = %e, "saving the topics adopted from the log failed");
        }
        *self.role.write().expect("role lock") = Role::Master;
        *self.master_addr.lock().expect("master address lock") = None;
        // What consumers committed here as a slave is now the group's own record.
        self.offsets.forget_unsent();
        if let Some(ha) = &self.ha_master {
            ha.set_serving(true);
        }
        let token = self.restart_role_tasks(shutdown);
        tokio::spawn(self.clone().confirm_loop(token.clone()));
        tokio::spawn(self.clone().schedule_loop(token.clone()));
        tokio::spawn(self.clone().timer_loop(token.clone()));
        tokio::spawn(self.clone().transaction_check_loop(token));
        info!(epoch, "controller mode: this broker is now the master");
        self.request_registration();
        Ok(())
    }

    async fn become_slave(
        self: &Arc<Self>,
        master: i64,
        master_addr: &str,
        epoch: i32,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let ha_addr = self.master_ha_address(master_addr).await?;
        // Before anything else: slaves must not go on copying from a broker that is no
        // longer the master (its log will be cut back to agree with the new one).
        if let Some(ha) = &self.ha_master {
            ha.set_serving(false);
        }
        {
            let mut v = self.controller.view.lock().expect("group view lock");
            v.master_id = Some(master);
            v.master_addr = Some(master_addr.to_string());
            v.master_epoch = epoch;
        }
        self.topics.set_state_version(epoch);
        // Pulls waiting for this broker's own confirmations: the new master decides now.
        self.store.confirmed(u64::MAX);
        *self.role.write().expect("role lock") = Role::Slave;
        *self.master_addr.lock().expect("master address lock") = Some(master_addr.to_string());
        let token = self.restart_role_tasks(shutdown);
        tokio::spawn(self.clone().slave_sync_loop(token));
        self.master_ha_addr.send_replace(Some(ha_addr.clone()));
        info!(epoch, master = master_addr, ha = %ha_addr, "controller mode: this broker is now a slave");
        self.request_registration();
        Ok(())
    }

    /// The master's HA address, asked of the master itself (EXCHANGE_BROKER_HA_INFO).
    async fn master_ha_address(&self, master_addr: &str) -> Result<String, String> {
        let conn = ferromq_remoting::connect(master_addr, Arc::new(NoInbound), CALL_TIMEOUT)
            .await
            .map_err(|e| format!("reaching the master {master_addr}: {e}"))?;
        let resp = conn
            .invoke(
                RemotingCommand::request(code::EXCHANGE_BROKER_HA_INFO),
                CALL_TIMEOUT,
            )
            .await
            .map_err(|e| format!("asking the master {master_addr} for its HA address: {e}"))?;
        conn.close();
        resp.field("masterHaAddress")
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("the master {master_addr} gave no HA address"))
    }

    /// As master: consumers read what every in-sync broker holds (Apache's confirm offset),
    /// never a record that an election could still cut away. Moves on every slave's
    /// acknowledgement and every append; a change of the set is caught by the tick.
    async fn confirm_loop(self: Arc<Self>, token: CancellationToken) {
        if self.config().read_uncommitted {
            self.store.store().set_read_limit(u64::MAX);
            self.store.confirmed(u64::MAX);
            return;
        }
        let Some(ha) = self.ha_master.clone() else {
            return;
        };
        let mut acks = ha.acknowledgements();
        let mut log_end = self.store.log_end();
        loop {
            self.advance_confirm(&ha);
            tokio::select! {
                _ = token.cancelled() => return,
                r = acks.changed() => if r.is_err() { return },
                r = log_end.changed() => if r.is_err() { return },
                () = tokio::time::sleep(CONFIRM_TICK) => {}
            }
        }
    }

    fn advance_confirm(&self, ha: &ferromq_ha::HaMaster) {
        let store = self.store.store();
        let me = self.controller.broker_id();
        let (_, set) = self.controller.agreed_sync_state();
        let others: BTreeSet<i64> = set.into_iter().filter(|id| Some(*id) != me).collect();
        let end = store.complete_offset();
        let confirm = if others.is_empty() {
            Some(end)
        } else {
            ha.acknowledged_by_all(&others).map(|acked| acked.min(end))
        };
        // Never back: a record once shown stays shown.
        if let Some(confirm) = confirm.filter(|c| *c > store.read_limit()) {
            store.set_read_limit(confirm);
            self.store.confirmed(confirm);
        }
    }

    fn restart_role_tasks(&self, shutdown: &CancellationToken) -> CancellationToken {
        let token = shutdown.child_token();
        if let Some(old) = self
            .controller
            .role_tasks
            .lock()
            .expect("role tasks lock")
            .replace(token.clone())
        {
            old.cancel();
        }
        token
    }

    /// As master: puts the slaves that keep up into the in-sync set, and takes out those
    /// that stopped, agreeing each change with the controllers. A slave joins the set this
    /// master waits for before the controllers hear of it, and leaves it only after.
    async fn maintain_sync_state_set(&self, id: i64) -> Result<(), String> {
        let Some(ha) = &self.ha_master else {
            return Ok(());
        };
        let limit = self.config().ha_max_time_slave_not_catchup_ms;
        let mut desired: BTreeSet<i64> = ha
            .slaves()
            .iter()
            .filter(|s| s.caught_up_ms_ago.is_some_and(|ago| ago <= limit))
            .filter_map(|s| s.broker_id)
            .collect();
        desired.insert(id);
        let (current, master_epoch, set_epoch) = {
            let v = self.controller.view.lock().expect("group view lock");
            (
                v.sync_state_set.clone(),
                v.master_epoch,
                v.sync_state_set_epoch,
            )
        };
        if desired == current {
            return Ok(());
        }
        self.controller
            .view
            .lock()
            .expect("group view lock")
            .joining = desired.difference(&current).copied().collect();
        let body = serde_json::json!({"syncStateSet": desired, "syncStateSetEpoch": set_epoch});
        let resp = self
            .call_controller(
                RemotingCommand::request(code::ALTER_SYNC_STATE_SET)
                    .with_field("brokerName", &self.config().broker_name)
                    .with_field("masterBrokerId", id)
                    .with_field("masterEpoch", master_epoch)
                    .with_body(serde_json::to_vec(&body).expect("sets serialize")),
            )
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.controller
                    .view
                    .lock()
                    .expect("group view lock")
                    .joining
                    .clear();
                return Err(e);
            }
        };
        if resp.code != response::SUCCESS {
            self.controller
                .view
                .lock()
                .expect("group view lock")
                .joining
                .clear();
            // Stale epochs: look at the group again.
            self.controller.role_changed();
            return Err(format!(
                "altering the in-sync set to {desired:?}: {:?}",
                resp.remark
            ));
        }
        let new_epoch = resp
            .field("newSyncStateSetEpoch")
            .and_then(|v| v.parse().ok())
            .unwrap_or(set_epoch + 1);
        info!(set = ?desired, epoch = new_epoch, "in-sync set changed");
        let mut v = self.controller.view.lock().expect("group view lock");
        v.sync_state_set = desired;
        v.sync_state_set_epoch = new_epoch;
        v.joining.clear();
        Ok(())
    }
}
