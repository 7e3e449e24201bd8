//! The FerroMQ broker: request processors over the store, client and offset tables,
//! long polling, name-server registration and housekeeping.
//!
//! The broker owns no sockets of its own making: [`Broker::serve`] takes a bound
//! listener, so the binary (or a test) decides where it listens.

pub mod acl;
pub mod auth;
pub mod client;
pub mod config;
mod controller_mode;
pub mod disk;
pub mod error;
pub mod filter;
pub mod forbidden;
pub mod groups;
pub mod life;
pub mod metrics;
pub mod offset;
mod persist;
pub mod pop;
mod processor;
pub mod pull_hold;
mod register;
pub mod request_mode;
pub mod schedule;
mod slave;
mod stats;
pub mod store_service;
pub mod timer;
pub mod topic;
pub mod transaction;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferromq_protocol::code::request;
use ferromq_protocol::message::{MessageExt, MAX_PROPERTIES_BYTES};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, InboundHandler, ServerConfig};
use ferromq_store::{AppendResult, MessageStore, PutMessage, StoreConfig};
use schedule::ScheduleService;
use store_service::PutError;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::{BrokerConfig, ConfigError};
pub use error::BrokerError;
pub use pop::{PopRequest, PoppedMessage};
pub use processor::send::{OutgoingMessage, SendOutcome, SendRequest, Shortfall};

use client::{ClientManager, CHANNEL_EXPIRY};
use offset::ConsumerOffsetManager;
use stats::BrokerStats;
use store_service::StoreService;
use topic::TopicConfigManager;

/// How often committed consumer offsets are written to disk.
/// How often silent clients are looked for.
const CLIENT_SCAN_INTERVAL: Duration = Duration::from_secs(10);
/// How often POP messages past their retries are dead-lettered and the POP journal synced.
const POP_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often retention is considered.
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Who a broker is in its group: fixed by `brokerRole` in classic mode, decided by the
/// controller in controller mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Slave,
    /// Controller mode, before the controller has said: the broker takes no writes and
    /// does not register with the name servers.
    Fenced,
}

/// The sockets a broker serves, bound by its caller.
pub struct Listeners {
    /// Clients and tools (`listenPort`).
    pub main: TcpListener,
    /// Apache's "VIP channel" (listenPort − 2): the same requests on a second port, which
    /// Apache's admin tools and dashboard use by default.
    pub fast_channel: Option<TcpListener>,
    /// Slaves replicating from this master (`haListenPort`).
    pub ha: Option<TcpListener>,
}

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening the message store failed: {0}")]
    Store(#[from] ferromq_store::StoreError),
    #[error("TLS is configured but cannot be used: {0}")]
    Tls(#[from] ferromq_remoting::TlsError),
    #[error("aclEnable=true, but the ACL file cannot be used: {0}")]
    Acl(#[from] acl::AclError),
    #[error("ACL 2.0 cannot start: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("reading broker metadata under {path} failed: {source}")]
    Metadata {
        path: String,
        source: std::io::Error,
    },
}

pub struct Broker {
    config: std::sync::RwLock<Arc<BrokerConfig>>,
    /// Present when `aclEnable=true`.
    acl: Option<Arc<acl::AclService>>,
    /// ACL 2.0's users and policies; checks requests when enabled.
    auth: Arc<auth::AuthService>,
    /// Present when a TLS certificate is configured.
    tls: Option<ferromq_remoting::TlsServer>,
    store: Arc<StoreService>,
    topics: TopicConfigManager,
    offsets: ConsumerOffsetManager,
    schedule: ScheduleService,
    timers: timer::TimerService,
    transactions: transaction::TransactionService,
    groups: groups::SubscriptionGroupManager,
    forbidden: forbidden::GroupForbidden,
    /// What POP consumers were handed and have not acknowledged.
    pop: pop::PopService,
    /// Who pulled what and which commits passed it (`messageLife`).
    life: life::LifeRecords,
    /// PULL or POP per topic and group, for QUERY_ASSIGNMENT.
    request_modes: request_mode::RequestModeManager,
    locks: processor::lock::LockManager,
    clients: ClientManager,
    stats: BrokerStats,
    metrics: metrics::BrokerMetrics,
    refusal_log: processor::RefusalLog,
    register_now: Notify,
    pending_registration: std::sync::Mutex<register::PendingRegistration>,
    /// One registration at a time, so an older topic snapshot never reaches a name
    /// server after a newer one.
    registering: tokio::sync::Mutex<()>,
    store_host: SocketAddr,
    started: Instant,
    boot_ms: i64,
    uniq_counter: AtomicU64,
    /// A slave's master, as the name server last answered its registration.
    master_addr: std::sync::Mutex<Option<String>>,
    /// Replication to slaves; present on a master.
    ha_master: Option<Arc<ferromq_ha::HaMaster>>,
    /// A slave's master HA address: `haMasterAddress`, else the name server's answer.
    master_ha_addr: tokio::sync::watch::Sender<Option<String>>,
    /// How a slave's replication stands.
    ha_slave_status: Arc<std::sync::Mutex<ferromq_ha::SlaveStatus>>,
    /// Who this broker is in its group now.
    role: std::sync::RwLock<Role>,
    /// Controller mode: the controller-given id, the group's epochs and in-sync set.
    controller: controller_mode::ControllerMode,
    /// Moves with every run-time configuration change (GET_BROKER_CONFIG's `version`).
    config_version: AtomicU64,
    namesrv_conns: std::sync::Mutex<std::collections::HashMap<String, Connection>>,
    /// Other fronts, through which their clients are reached (check-backs, thread stacks).
    client_fronts: std::sync::RwLock<Vec<Arc<dyn client::ClientFront>>>,
}

/// The topics every broker carries, as this configuration describes them.
fn system_topics(config: &BrokerConfig) -> topic::SystemTopics<'_> {
    topic::SystemTopics {
        cluster_name: &config.cluster_name,
        broker_name: &config.broker_name,
        auto_create_topic: config.auto_create_topic,
        default_queues: config.default_topic_queue_nums,
        cluster_topic_enable: config.cluster_topic_enable,
        broker_topic_enable: config.broker_topic_enable,
        trace_topic: config
            .trace_topic_enable
            .then_some(config.msg_trace_topic_name.as_str()),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The store host written into records: brokerIP1 resolved once, with the listen port.
/// An ACL 1.0 style resource (a topic, or a group as `%RETRY%group`) and permission as
/// ACL 2.0 asks for it: SUB is Sub, PUB Pub, ANY either.
fn front_need(name: &str, perm: u8) -> auth::Need {
    use auth::model::{Action, ResourceType};
    let actions: &'static [Action] = match perm {
        acl::PUB => &[Action::Pub],
        acl::SUB => &[Action::Sub],
        _ => &[Action::Pub, Action::Sub],
    };
    match name.strip_prefix(topic::RETRY_GROUP_TOPIC_PREFIX) {
        Some(group) => auth::Need {
            kind: ResourceType::Group,
            name: group.to_string(),
            actions,
        },
        None => auth::Need {
            kind: ResourceType::Topic,
            name: name.to_string(),
            actions,
        },
    }
}

/// A comma list of request codes (the ACL 2.0 whitelists).
fn code_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

fn resolve_store_host(config: &BrokerConfig) -> SocketAddr {
    if let Ok(ip) = config.broker_ip1.parse::<IpAddr>() {
        return SocketAddr::new(ip, config.listen_port);
    }
    match (config.broker_ip1.as_str(), config.listen_port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(addr) => addr,
        None => {
            warn!(broker_ip1 = %config.broker_ip1, "brokerIP1 does not resolve; using 127.0.0.1 in message ids");
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), config.listen_port)
        }
    }
}

impl Broker {
    /// Opens the store (recovering it) and the metadata, and starts the store threads.
    ///
    /// # Errors
    /// The store or metadata cannot be read.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, OpenError> {
        let mut store_config = StoreConfig::new(&config.store_root);
        store_config.commit_log_dir = config.store_commit_log.clone();
        store_config.segment_bytes = config.commit_log_segment_bytes;
        store_config.flush_mode = config.flush_mode;
        let acl = match config.acl_enable {
            true => Some(Arc::new(acl::AclService::open(&config.plain_acl_file)?)),
            false => None,
        };
        let auth = Arc::new(auth::AuthService::open(
            &config.store_root,
            auth::AuthSettings {
                authentication_enabled: config.authentication_enabled,
                authorization_enabled: config.authorization_enabled,
                init_user: config.init_authentication_user.clone(),
                inner_credentials: config.inner_client_authentication_credentials.clone(),
                authentication_whitelist: code_list(&config.authentication_whitelist),
                authorization_whitelist: code_list(&config.authorization_whitelist),
                migrate_from: config
                    .migrate_auth_from_v1_enabled
                    .then(|| config.plain_acl_file.clone()),
                cluster_name: config.cluster_name.clone(),
            },
        )?);
        let tls = match (&config.tls_cert_path, &config.tls_key_path) {
            (Some(cert), Some(key)) => {
                let mode = config
                    .tls_mode
                    .unwrap_or(ferromq_remoting::TlsMode::Permissive);
                info!(?mode, cert = %cert.display(), "TLS for clients");
                Some(ferromq_remoting::TlsServer::from_pem_files(
                    cert, key, mode,
                )?)
            }
            _ => None,
        };
        let store = Arc::new(MessageStore::open(store_config)?);
        let meta_err = |source| OpenError::Metadata {
            path: config.store_root.display().to_string(),
            source,
        };
        let topics = TopicConfigManager::open(&config.store_root, &system_topics(&config))
            .map_err(meta_err)?;
        let offsets = ConsumerOffsetManager::open(&config.store_root).map_err(meta_err)?;
        let groups =
            groups::SubscriptionGroupManager::open(&config.store_root).map_err(meta_err)?;
        let forbidden = forbidden::GroupForbidden::open(&config.store_root).map_err(meta_err)?;
        let schedule =
            ScheduleService::open(&config.store_root, config.message_delay_levels_ms.clone())
                .map_err(meta_err)?;
        let timers = timer::TimerService::open(&config.store_root, config.timer_max_delay_sec)?;
        let transactions =
            transaction::TransactionService::open(&config.store_root, &store).map_err(meta_err)?;
        let pop = pop::PopService::open(&config.store_root).map_err(meta_err)?;
        let request_modes =
            request_mode::RequestModeManager::open(&config.store_root).map_err(meta_err)?;
        let mut disk_paths = vec![config.store_root.clone()];
        disk_paths.extend(config.store_commit_log.clone());
        let metrics = metrics::BrokerMetrics::new(&config);
        let store = StoreService::start(
            store,
            config.flush_mode,
            Duration::from_millis(config.flush_interval_ms),
            Duration::from_millis(config.sync_flush_timeout_ms),
            disk::DiskGuard::new(disk_paths, f64::from(config.disk_space_warning_percent)),
            store_service::FlushObserver {
                fsync_ms: metrics.fsync_latency.clone(),
                group_commit: metrics.group_commit.clone(),
            },
        );
        let serves_slaves =
            config.enable_controller_mode || config.broker_role != config::BrokerRole::Slave;
        let role = match (config.enable_controller_mode, config.broker_role) {
            (true, _) => Role::Fenced,
            (false, config::BrokerRole::Slave) => Role::Slave,
            (false, _) => Role::Master,
        };
        let ha_master = serves_slaves.then(|| {
            let ha = ferromq_ha::HaMaster::new(
                store.store().clone(),
                store.log_end(),
                ferromq_ha::MasterConfig {
                    transfer_batch: config.ha_transfer_batch_size,
                    heartbeat: Duration::from_millis(config.ha_send_heartbeat_interval_ms),
                    housekeeping: Duration::from_millis(config.ha_housekeeping_interval_ms),
                    acks_needed: config.effective_in_sync_replicas().saturating_sub(1) as usize,
                    max_gap_in_sync: config.ha_max_gap_not_in_sync,
                    auto_switch: config.enable_controller_mode,
                },
            );
            // In controller mode a broker serves slaves only once the controllers make it
            // master.
            ha.set_serving(!config.enable_controller_mode);
            ha
        });
        let master_ha_addr = tokio::sync::watch::channel(config.ha_master_address.clone()).0;
        let controller =
            controller_mode::ControllerMode::open(&config.store_root).map_err(meta_err)?;
        let life = life::LifeRecords::new(config.enable_message_life, now_ms());
        Ok(Arc::new_cyclic(|me| {
            metrics.watch(me.clone());
            Broker {
                role: std::sync::RwLock::new(role),
                controller,
                ha_master,
                master_ha_addr,
                ha_slave_status: Default::default(),
                store_host: resolve_store_host(&config),
                config: std::sync::RwLock::new(Arc::new(config)),
                acl,
                auth,
                tls,
                store,
                topics,
                offsets,
                schedule,
                timers,
                transactions,
                groups,
                forbidden,
                pop,
                life,
                request_modes,
                locks: Default::default(),
                clients: ClientManager::default(),
                stats: BrokerStats::default(),
                metrics,
                refusal_log: Default::default(),
                register_now: Notify::new(),
                pending_registration: Default::default(),
                registering: tokio::sync::Mutex::new(()),
                started: Instant::now(),
                boot_ms: now_ms(),
                uniq_counter: AtomicU64::new(0),
                config_version: AtomicU64::new(0),
                master_addr: Default::default(),
                namesrv_conns: Default::default(),
                client_fronts: Default::default(),
            }
        }))
    }

    /// The broker's metrics, to serve (`render`).
    pub fn metrics(&self) -> &metrics::BrokerMetrics {
        &self.metrics
    }

    /// Who this broker is in its group now.
    pub fn role(&self) -> Role {
        *self.role.read().expect("role lock")
    }

    /// The id this broker registers with the name servers under: 0 while master.
    pub(crate) fn registered_broker_id(&self) -> i64 {
        match (self.config().enable_controller_mode, self.role()) {
            (true, Role::Master) => 0,
            (true, _) => self.controller.broker_id().unwrap_or(-1),
            (false, _) => self.config().broker_id,
        }
    }

    /// The configuration in force: `updateBrokerConfig` replaces it while the broker runs.
    pub fn config(&self) -> Arc<BrokerConfig> {
        self.config.read().expect("config lock").clone()
    }

    /// Checks another front's call against the ACL (`aclEnable=true`); always passes
    /// without one. `resources` are topics by name and groups as `%RETRY%group`, each
    /// with the [`acl`] permission bits it needs.
    ///
    /// # Errors
    /// Why the ACL refuses the call.
    pub fn check_front_access(
        &self,
        authorization: Option<&str>,
        date_time: &str,
        resources: &[(String, u8)],
        ip: IpAddr,
    ) -> Result<(), String> {
        if self.auth.checks_enabled() {
            let needs: Vec<auth::Need> = resources
                .iter()
                .map(|(name, perm)| front_need(name, *perm))
                .collect();
            return self.auth.check_grpc(authorization, date_time, &needs, ip);
        }
        match &self.acl {
            None => Ok(()),
            Some(acl) => acl.check_grpc(authorization, date_time, resources, ip),
        }
    }

    /// Lists another front's client beside the remoting clients (admin, dashboards).
    pub fn register_front_client(&self, client: client::FrontClient) {
        self.clients.upsert_front_client(client);
    }

    pub fn unregister_front_client(&self, client_id: &str) {
        self.clients.remove_front_client(client_id);
    }

    /// Lets the broker reach another front's clients (transaction check-backs, thread
    /// stacks for GET_CONSUMER_RUNNING_INFO).
    pub fn add_client_front(&self, front: Arc<dyn client::ClientFront>) {
        self.client_fronts
            .write()
            .expect("client fronts lock")
            .push(front);
    }

    /// A topic's configuration, if the broker has the topic.
    pub fn topic(&self, topic: &str) -> Option<ferromq_protocol::body::TopicConfig> {
        self.topics.get(topic)
    }

    /// A consumer group's configuration, if one was created (else Apache's defaults apply).
    pub fn subscription_group(&self, group: &str) -> Option<groups::SubscriptionGroupConfig> {
        self.groups.get(group)
    }

    /// The TLS settings for clients, when a certificate is configured.
    pub fn tls(&self) -> Option<&ferromq_remoting::TlsServer> {
        self.tls.as_ref()
    }

    /// Registers with the name servers once, waiting for the answers.
    pub async fn register_once(&self) {
        register::register_all(self).await;
    }

    /// Serves clients and slaves on `listeners` and runs housekeeping until `shutdown`; then
    /// stops accepting, unregisters from name servers, persists offsets and flushes the
    /// store.
    pub async fn serve(self: Arc<Self>, listeners: Listeners, shutdown: CancellationToken) {
        let Listeners {
            main: listener,
            fast_channel,
            ha,
        } = listeners;
        let tasks = tokio_util::task::TaskTracker::new();
        tasks.spawn(register::registration_loop(self.clone(), shutdown.clone()));
        tasks.spawn(self.clone().housekeeping(shutdown.clone()));
        tasks.spawn(self.clone().answer_held_pulls(shutdown.clone()));
        if let Some(acl) = &self.acl {
            tasks.spawn(acl.clone().watch(shutdown.clone()));
        }
        if let (Some(master), Some(ha)) = (&self.ha_master, ha) {
            tasks.spawn(master.clone().serve(ha, shutdown.clone()));
        }
        if self.config().enable_controller_mode {
            // The controller decides the role; the tasks of each role start and stop with it.
            tasks.spawn(self.clone().controller_loop(shutdown.clone()));
        } else if self.config().broker_role == config::BrokerRole::Slave {
            // A slave delivers nothing itself: its master's delayed, timer and transactional
            // messages are its master's to deliver.
            tasks.spawn(self.clone().slave_sync_loop(shutdown.clone()));
            tasks.spawn(self.replication_client(None, shutdown.clone()));
        } else {
            tasks.spawn(self.clone().schedule_loop(shutdown.clone()));
            tasks.spawn(self.clone().timer_loop(shutdown.clone()));
            tasks.spawn(self.clone().transaction_check_loop(shutdown.clone()));
        }
        let server_config = ServerConfig {
            max_connections: self.config().max_connections,
            idle_timeout: Duration::from_secs(self.config().idle_timeout_secs),
            tls: self.tls.clone(),
            ..Default::default()
        };
        if let Some(l) = fast_channel {
            tasks.spawn(ferromq_remoting::serve(
                l,
                self.clone(),
                server_config.clone(),
                shutdown.clone(),
            ));
        }
        ferromq_remoting::serve(listener, self.clone(), server_config, shutdown.clone()).await;
        tasks.close();
        tasks.wait().await;
        register::unregister_all(&self).await;
        for conn in self
            .namesrv_conns
            .lock()
            .expect("namesrv connections lock")
            .drain()
        {
            conn.1.close();
        }
        if let Err(e) = self.offsets.persist() {
            warn!(error = %e, "persisting consumer offsets failed");
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
        info!("broker stopped");
    }

    async fn housekeeping(self: Arc<Self>, shutdown: CancellationToken) {
        let mut offsets = tokio::time::interval(Duration::from_millis(
            self.config().flush_consumer_offset_interval_ms,
        ));
        let mut clients = tokio::time::interval(CLIENT_SCAN_INTERVAL);
        let mut pop = tokio::time::interval(POP_SWEEP_INTERVAL);
        let mut retention = tokio::time::interval(RETENTION_CHECK_INTERVAL);
        let mut stats =
            tokio::time::interval(Duration::from_millis(stats::SAMPLE_INTERVAL_MS as u64));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = stats.tick() => self.stats.sample(now_ms()),
                _ = pop.tick() => self.pop_sweep().await,
                _ = offsets.tick() => {
                    if let Err(e) = self.offsets.persist() {
                        warn!(error = %e, "persisting consumer offsets failed");
                    }
                }
                _ = clients.tick() => {
                    for conn in self.clients.expired(CHANNEL_EXPIRY) {
                        info!(peer = %conn.peer(), "client silent for 120 s; closing its connection");
                        conn.close();
                    }
                }
                _ = retention.tick() => self.clone().run_retention_if_due().await,
            }
        }
    }

    async fn run_retention_if_due(self: Arc<Self>) {
        let hour = ((now_ms() / 3_600_000) % 24) as u32;
        if !self.config().delete_when.contains(&hour) {
            return;
        }
        let cutoff = std::time::SystemTime::now()
            - Duration::from_secs(self.config().file_reserved_hours * 3600);
        let store = self.store.store().clone();
        match tokio::task::spawn_blocking(move || store.delete_expired(cutoff)).await {
            Ok(Ok(min)) => tracing::debug!(min_offset = min, "retention checked"),
            Ok(Err(e)) => warn!(error = %e, "deleting expired files failed"),
            Err(e) => warn!(error = %e, "retention task failed"),
        }
    }

    /// Stores messages: sets the store host, moves delayed ones to the schedule topic,
    /// encodes and appends them. Under SYNC_FLUSH waits for the fsync unless told not to.
    pub(crate) async fn put_messages(
        &self,
        msgs: Vec<MessageExt>,
        wait_flush: bool,
    ) -> Result<Vec<AppendResult>, PutError> {
        self.put(msgs, wait_flush, false).await
    }

    /// Stores delayed and timer messages that have come due: they keep their delay and
    /// timer properties, as Apache delivers them, and are never delayed again.
    pub(crate) async fn put_due_messages(
        &self,
        msgs: Vec<MessageExt>,
    ) -> Result<Vec<AppendResult>, PutError> {
        self.put(msgs, false, true).await
    }

    async fn put(
        &self,
        msgs: Vec<MessageExt>,
        wait_flush: bool,
        due: bool,
    ) -> Result<Vec<AppendResult>, PutError> {
        if self.role() != Role::Master {
            return Err(PutError::Slave);
        }
        let mut puts = Vec::with_capacity(msgs.len());
        let mut scheduled = false;
        let mut timed = false;
        for mut m in msgs {
            m.store_host = self.store_host;
            let internal = m.topic == transaction::HALF_TOPIC || m.topic == transaction::OP_TOPIC;
            if internal || due {
                // Half messages wait for their decision, not for a delay.
            } else if self.schedule.apply(&mut m) {
                scheduled = true;
            } else {
                timed |= self.timers.apply(&mut m).map_err(PutError::Illegal)?;
            }
            if m.properties.len() > MAX_PROPERTIES_BYTES {
                return Err(PutError::Illegal(format!(
                    "the message properties length {} exceeds {MAX_PROPERTIES_BYTES}",
                    m.properties.len()
                )));
            }
            let mut record = BytesMut::with_capacity(m.encoded_len());
            m.encode(&mut record);
            puts.push(PutMessage::new(m.topic, m.queue_id, &m.properties, record));
        }
        let config = self.config();
        if config.enable_controller_mode {
            self.controller.check_lease(&config)?;
            self.controller.check_in_sync_replicas(&config)?;
        }
        let results = self.store.put(puts, wait_flush).await?;
        if config.enable_controller_mode {
            if let (Some(ha), true) = (&self.ha_master, wait_flush) {
                self.controller
                    .wait_replicated(&config, ha, &results)
                    .await?;
            }
        } else if let (config::BrokerRole::SyncMaster, Some(ha), true) =
            (config.broker_role, &self.ha_master, wait_flush)
        {
            let end = results.last().map_or(0, |r| r.end_offset);
            let timeout = Duration::from_millis(config.slave_timeout_ms);
            match ha.wait_replicated(end, timeout).await {
                Ok(()) => {}
                Err(ferromq_ha::ReplicaWait::NotAvailable) => {
                    return Err(PutError::SlaveNotAvailable(results))
                }
                Err(ferromq_ha::ReplicaWait::Timeout) => {
                    return Err(PutError::SlaveTimeout(results))
                }
            }
        }
        if scheduled {
            self.schedule.notify_stored();
        }
        if timed {
            self.timers.notify_stored();
        }
        Ok(results)
    }

    /// Copies the master's log while this broker is a slave (it idles while no master HA
    /// address is known). `auto_switch`: the broker's controller id, in controller mode.
    pub(crate) fn replication_client(
        &self,
        auto_switch: Option<i64>,
        shutdown: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let waker = self.store.waker().clone();
        let config = self.config();
        ferromq_ha::run_slave(
            self.store.store().clone(),
            self.master_ha_addr.subscribe(),
            Arc::new(move || waker.wake_all()),
            self.ha_slave_status.clone(),
            ferromq_ha::SlaveConfig {
                heartbeat: Duration::from_millis(config.ha_send_heartbeat_interval_ms),
                housekeeping: Duration::from_millis(config.ha_housekeeping_interval_ms),
                auto_switch,
                read_uncommitted: config.read_uncommitted,
                ..Default::default()
            },
            shutdown,
        )
    }

    /// Asks the registration task to send the whole topic table now (a topic was deleted,
    /// the table replaced, the broker's role or permission changed).
    pub(crate) fn request_registration(&self) {
        self.pending_registration
            .lock()
            .expect("pending registration lock")
            .whole();
        self.register_now.notify_one();
    }

    /// Asks the registration task to announce these created or updated topics now.
    pub(crate) fn announce_topics(&self, names: impl IntoIterator<Item = String>) {
        self.pending_registration
            .lock()
            .expect("pending registration lock")
            .topics(names);
        self.register_now.notify_one();
    }

    /// Tells every member of a group to rebalance.
    pub(crate) fn notify_consumer_ids_changed(&self, group: &str) {
        let conns = self.clients.consumer_connections(group);
        if conns.is_empty() {
            return;
        }
        let group = group.to_string();
        tokio::spawn(async move {
            for conn in conns {
                let cmd = RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED)
                    .with_field("consumerGroup", &group);
                let mut cmd = cmd;
                cmd.language = ferromq_protocol::LanguageCode::Java;
                let _ = conn.invoke_oneway(cmd).await;
            }
        });
    }

    /// A unique message id for messages that arrive without one: broker IP, process id,
    /// boot time and a counter, 32 hex characters like the clients' ids.
    pub(crate) fn next_uniq_key(&self) -> String {
        let n = self.uniq_counter.fetch_add(1, Ordering::Relaxed);
        let ip = match self.store_host.ip() {
            IpAddr::V4(v4) => u32::from(v4),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                u32::from_be_bytes([o[12], o[13], o[14], o[15]])
            }
        };
        format!(
            "{ip:08X}{:04X}{:08X}{n:012X}",
            std::process::id() as u16,
            self.boot_ms as u32
        )
    }
}

impl InboundHandler for Broker {
    async fn on_request(
        &self,
        conn: Connection,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let code = request.code;
        let started = Instant::now();
        let (answer, parked) = metrics::tracking_parks(self.process(&conn, &request)).await;
        if let Some(a) = &answer {
            self.log_refusal(&conn, &request, a);
        } else if parked && !request.is_oneway() {
            // Held: the hold loop counts it when it answers.
            return None;
        }
        self.metrics.rpc(
            code,
            answer.as_ref().map(|a| a.code),
            parked,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        answer
    }

    fn on_close(&self, conn: &Connection) {
        for group in self.clients.connection_closed(conn.id()) {
            info!(peer = %conn.peer(), group = %group, "consumer left");
            self.notify_consumer_ids_changed(&group);
        }
    }
}
