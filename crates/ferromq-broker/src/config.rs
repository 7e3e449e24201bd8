//! Broker configuration in Apache's `broker.conf` (Java properties) format.
//!
//! Keys are Apache's names. Unknown keys produce a warning naming them; a value that
//! does not parse stops start-up with the key, the value and what is allowed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ferromq_store::FlushMode;

/// Apache keys that are accepted for compatibility but have no effect in FerroMQ.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "diskMaxUsedSpaceRatio",
    "sendMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "useReentrantLockWhenPutMessage",
    "transientStorePoolEnable",
    "warmMapedFileEnable",
    "mapedFileSizeConsumeQueue",
    "mappedFileSizeConsumeQueue",
    "storePathConsumeQueue",
    "storePathIndex",
    "storeCheckpoint",
    "abortFile",
    "waitTimeMillsInSendQueue",
    "osPageCacheBusyTimeOutMills",
    "metricsInDelta",
    "enableStatsMetrics",
    "enableConnectionMetrics",
    "enableLagAndDlqMetrics",
    "enableTransactionMetrics",
    "enableMessageStoreMetrics",
    "enablePopMetrics",
    // ACL 2.0 caches: FerroMQ keeps the users and policies in memory, uncached lookups.
    "userCacheMaxNum",
    "userCacheExpiredSecond",
    "userCacheRefreshSecond",
    "aclCacheMaxNum",
    "aclCacheExpiredSecond",
    "aclCacheRefreshSecond",
    "statefulAuthenticationCacheMaxNum",
    "statefulAuthenticationCacheExpiredSecond",
    "statefulAuthorizationCacheMaxNum",
    "statefulAuthorizationCacheExpiredSecond",
];

/// ACL 2.0's pluggable classes: FerroMQ has its own, which do what Apache's defaults do.
/// Apache's default class names (and the stateful strategies) are accepted; others refused.
const AUTH_CLASS_KEYS: &[(&str, &[&str])] = &[
    ("authenticationProvider", &["DefaultAuthenticationProvider"]),
    (
        "authenticationMetadataProvider",
        &["LocalAuthenticationMetadataProvider"],
    ),
    (
        "authenticationStrategy",
        &[
            "StatelessAuthenticationStrategy",
            "StatefulAuthenticationStrategy",
        ],
    ),
    ("authorizationProvider", &["DefaultAuthorizationProvider"]),
    (
        "authorizationMetadataProvider",
        &["LocalAuthorizationMetadataProvider"],
    ),
    (
        "authorizationStrategy",
        &[
            "StatelessAuthorizationStrategy",
            "StatefulAuthorizationStrategy",
        ],
    ),
];

/// `brokerRole`: a master, or a slave that copies its master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    /// Answers a send once stored here; slaves copy behind.
    AsyncMaster,
    /// Answers a send once `inSyncReplicas` − 1 slaves hold it too.
    SyncMaster,
    Slave,
}

impl BrokerRole {
    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value '{value}' for {key}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
    #[error("cannot read configuration file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("unknown configuration key {key}")]
    UnknownKey { key: String },
    #[error(
        "{key} cannot change while the broker runs: set it in broker.conf and restart the broker"
    )]
    NeedsRestart { key: String },
}

/// Everything the broker reads from `broker.conf`, with Apache's defaults unless noted.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `brokerClusterName`, default `DefaultCluster`.
    pub cluster_name: String,
    /// `brokerName`, default `broker-a`.
    pub broker_name: String,
    /// `brokerId`: 0 = master.
    pub broker_id: i64,
    /// `namesrvAddr`: `host:port` list separated by `;`.
    pub namesrv_addrs: Vec<String>,
    /// `listenPort`, default 10911.
    pub listen_port: u16,
    /// `brokerIP1`: the address clients are told to use. FerroMQ defaults to 127.0.0.1
    /// (Apache guesses a local interface, a classic source of unreachable brokers).
    pub broker_ip1: String,
    /// `storePathRootDir`, default `./ferromq-data`.
    pub store_root: PathBuf,
    /// `storePathCommitLog`, default `<root>/commitlog`.
    pub store_commit_log: Option<PathBuf>,
    /// `mapedFileSizeCommitLog` (or `mappedFileSizeCommitLog`), bytes, default 1 GiB.
    pub commit_log_segment_bytes: u64,
    /// `flushDiskType`: `ASYNC_FLUSH` (default) or `SYNC_FLUSH`.
    pub flush_mode: FlushMode,
    /// `flushIntervalCommitLog`, ms between background fsyncs under ASYNC_FLUSH, default 500.
    pub flush_interval_ms: u64,
    /// `flushConsumerOffsetInterval`, ms between writes of committed consumer offsets to
    /// disk, default 5000 as in Apache: after a crash, consumers resume from offsets at most
    /// this old, so it bounds redelivered messages.
    pub flush_consumer_offset_interval_ms: u64,
    /// `syncFlushTimeout`, ms a SYNC_FLUSH send waits before FLUSH_DISK_TIMEOUT, default 5000.
    pub sync_flush_timeout_ms: u64,
    /// `diskSpaceWarningLevelRatio`, percent of the store's file system in use from which
    /// sends are refused (until space returns), default 90 as in Apache.
    pub disk_space_warning_percent: u32,
    /// `autoCreateTopicEnable`, default true.
    pub auto_create_topic: bool,
    /// `autoCreateSubscriptionGroup`, default true.
    pub auto_create_subscription_group: bool,
    /// `defaultTopicQueueNums`, default 4.
    pub default_topic_queue_nums: i32,
    /// `maxMessageSize`, bytes, default 4 MiB.
    pub max_message_size: usize,
    /// `fileReservedTime`, hours a commit-log segment is kept, default 72.
    pub file_reserved_hours: u64,
    /// `deleteWhen`: hours of the day (UTC) when expired files are deleted, default `04`.
    pub delete_when: Vec<u32>,
    /// `messageDelayLevel`, default `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`.
    pub message_delay_levels_ms: Vec<u64>,
    /// `transactionCheckInterval`, ms, default 60000.
    pub transaction_check_interval_ms: u64,
    /// `transactionTimeOut`, ms, default 6000.
    pub transaction_timeout_ms: u64,
    /// `transactionCheckMax`, default 15.
    pub transaction_check_max: u32,
    /// `registerNameServerPeriod`, ms, clamped to 10 s – 60 s, default 30000.
    pub register_name_server_period_ms: u64,
    /// `forceRegister`: the periodic registration always sends the whole topic table
    /// (default true, as Apache); when false it first asks each name server
    /// (QUERY_DATA_VERSION) and sends the table only to one whose copy is stale.
    pub force_register: bool,
    /// `aclEnable`: check requests against the plain ACL file, default false.
    pub acl_enable: bool,
    /// `plainAclFile` (FerroMQ): the `plain_acl.yml` to use, default `conf/plain_acl.yml`
    /// (where Apache looks under ROCKETMQ_HOME). Reloaded when it changes.
    pub plain_acl_file: PathBuf,
    /// `priorityOrderAsc`: POP of a PRIORITY topic takes the highest queue (the highest
    /// priority) first, as Apache's default true; false takes queue 0 first.
    pub priority_order_asc: bool,
    /// `authenticationEnabled` (ACL 2.0): requests must be signed by a known user.
    pub authentication_enabled: bool,
    /// `authorizationEnabled` (ACL 2.0): requests need a policy allowing them.
    pub authorization_enabled: bool,
    /// `initAuthenticationUser`: `{"username":…,"password":…}`, a super user made at start.
    pub init_authentication_user: Option<String>,
    /// `innerClientAuthenticationCredentials`: `{"accessKey":…,"secretKey":…}`, a super
    /// user made at start that the broker's own clients (a slave's sync) sign with.
    pub inner_client_authentication_credentials: Option<String>,
    /// `authenticationWhitelist` / `authorizationWhitelist`: request codes that skip the check.
    pub authentication_whitelist: String,
    pub authorization_whitelist: String,
    /// `migrateAuthFromV1Enabled`: import `plainAclFile`'s accounts at start.
    pub migrate_auth_from_v1_enabled: bool,
    /// The ACL 2.0 class keys as given (checked by [`AUTH_CLASS_KEYS`]).
    pub auth_classes: BTreeMap<String, String>,
    /// `tls.server.mode`: `disabled`, `permissive` (TLS and plaintext on one port) or
    /// `enforcing`, as Apache's property; default `permissive` when a certificate is
    /// given, else `disabled`.
    pub tls_mode: Option<ferromq_remoting::TlsMode>,
    /// `tls.server.certPath` and `tls.server.keyPath`: PEM certificate chain and key.
    pub tls_cert_path: Option<PathBuf>,
    pub tls_key_path: Option<PathBuf>,
    /// `maxConnections` (FerroMQ): connections served at once, default 10000.
    pub max_connections: usize,
    /// `enablePropertyFilter`: allow SQL92 subscriptions, default false.
    pub enable_property_filter: bool,
    /// `slaveReadEnable`: consumers may read from slaves while the master lives (a master
    /// sends a lagging consumer to `whichBrokerWhenConsumeSlowly`), default false. A slave
    /// whose master is gone serves reads either way.
    pub slave_read_enable: bool,
    /// `accessMessageInMemoryMaxRatio`: a consumer further behind the log's end than this
    /// share of the machine's memory (percent, default 40) reads from disk; with
    /// `slaveReadEnable` the master sends it to a slave.
    pub access_message_in_memory_max_ratio: u32,
    /// `readUnCommitted`: in controller mode, consumers may read records not every in-sync
    /// broker holds yet (which an election may cut away), default false.
    pub read_uncommitted: bool,
    /// `timerMaxDelaySec`: how far ahead a timer message may be due, default 3 days.
    pub timer_max_delay_sec: u64,
    /// Apache proxy's `defaultInvisibleTimeMills`: how long a push consumer's delivery
    /// (gRPC `auto_renew`) is hidden before its renewal, default 60 s.
    pub default_invisible_time_ms: u64,
    /// Apache proxy's `renewAheadTimeMillis`: renew this long before it would reappear, 10 s.
    pub renew_ahead_time_ms: u64,
    /// Apache proxy's `renewMaxTimeMillis`: renew one delivery for at most this long, 3 h.
    pub renew_max_time_ms: u64,
    /// `serverChannelMaxIdleTimeSeconds`: a client completing no request for this long is
    /// disconnected, default 120.
    pub idle_timeout_secs: u64,
    /// `clusterTopicEnable`: the topic named after the cluster is readable and writable, so
    /// that tools find a route for `createTopic(clusterName, …)`; default true.
    pub cluster_topic_enable: bool,
    /// `brokerTopicEnable`: likewise for the topic named after the broker; default true.
    pub broker_topic_enable: bool,
    /// `traceTopicEnable`: the broker carries the message-trace topic; default false.
    pub trace_topic_enable: bool,
    /// `msgTraceTopicName`, default `RMQ_SYS_TRACE_TOPIC`.
    pub msg_trace_topic_name: String,
    /// `regionId`, default `DefaultRegion`: written on sent messages (`MSG_REGION`) and
    /// send answers, where clients' traces read it.
    pub region_id: String,
    /// `recallMessageEnable`: whether RECALL_MESSAGE may withdraw timer messages. Apache's
    /// default is false; FerroMQ's is true, since only the sender holds a message's handle.
    pub recall_message_enable: bool,
    /// `allowRecallWhenBrokerNotWriteable` (Apache's default, true): recalls go on while the
    /// broker's write permission is wiped.
    pub allow_recall_when_broker_not_writeable: bool,
    /// Request-reply: replies are stored in the reply topic as well as pushed to their
    /// requester (`storeReplyMessageEnable`, default true).
    pub store_reply_message_enable: bool,
    /// `traceOn`, default true: whether clients should trace what goes through here
    /// (`TRACE_ON` on sent messages and send answers).
    pub trace_on: bool,
    /// `enableMessageLife` (FerroMQ), default true: remember pulls and offset commits per
    /// queue (a few KB each) so `messageLife` can say who read a message and when.
    pub enable_message_life: bool,
    /// `brokerPermission`: 6 = read and write, 4 = read only (sends refused), 2 = write
    /// only; changed at run time to drain a broker.
    pub broker_permission: i32,
    /// `metricsExporterType`: `PROM` serves the metrics on their own port besides the
    /// dashboard's `/metrics`; `DISABLE` (default) does not.
    pub metrics_prom_exporter: bool,
    /// `metricsPromExporterPort`, default 5557.
    pub metrics_prom_port: u16,
    /// `metricsPromExporterHost`: the address it binds; empty (default) means `brokerIP1`.
    pub metrics_prom_host: String,
    /// `metricsLabel`: `key:value,key:value` added to every series.
    pub metrics_labels: Vec<(String, String)>,
    /// `metricsOtelCardinalityLimit`: label sets per metric at most, default 50000.
    pub metrics_cardinality_limit: usize,
    /// `enableRequestMetrics`: count messages and bytes in and out, default true.
    pub enable_request_metrics: bool,
    /// `enableRemotingMetrics`: time every request, default true.
    pub enable_remoting_metrics: bool,
    /// `brokerRole`: `ASYNC_MASTER` (default), `SYNC_MASTER` or `SLAVE` (with `brokerId` ≥ 1).
    pub broker_role: BrokerRole,
    /// `brokerIP2`: the host slaves reach this broker's HA port on, default `brokerIP1`.
    pub broker_ip2: Option<String>,
    /// `haListenPort`: where a master takes its slaves, default `listenPort` + 1.
    pub ha_listen_port: Option<u16>,
    /// `grpcServerPort` (Apache's proxy key): the gRPC front's port. `standalone` serves it
    /// on 8081 unless this says otherwise; `broker` serves it only when this is set.
    pub grpc_server_port: Option<u16>,
    /// `haMasterAddress`: a slave's fixed master HA address; without it the slave follows
    /// the one the name server names.
    pub ha_master_address: Option<String>,
    /// `haTransferBatchSize`: the largest replication frame body, default 32 KiB.
    pub ha_transfer_batch_size: usize,
    /// `haSendHeartbeatInterval`, ms, default 5000.
    pub ha_send_heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval`: a replication connection silent this long is dropped,
    /// ms, default 20000.
    pub ha_housekeeping_interval_ms: u64,
    /// `haMaxGapNotInSync`: a slave further behind does not count for `SYNC_MASTER`,
    /// bytes, default 256 MiB.
    pub ha_max_gap_not_in_sync: u64,
    /// `inSyncReplicas`: copies (the master's included) a `SYNC_MASTER` send waits for.
    /// Apache defaults to 1, which makes its `SYNC_MASTER` answer before any slave holds
    /// the message; FerroMQ defaults to 2 under `SYNC_MASTER`, so the role means what it
    /// says. Ignored by `ASYNC_MASTER`.
    pub in_sync_replicas: Option<u32>,
    /// `slaveTimeout`: ms a `SYNC_MASTER` send waits for slaves before
    /// `FLUSH_SLAVE_TIMEOUT`, default 3000.
    pub slave_timeout_ms: u64,
    /// `enableControllerMode`: the controllers in `controllerAddr` decide who is master;
    /// `brokerRole` and `brokerId` are then ignored.
    pub enable_controller_mode: bool,
    /// `controllerAddr`: controller nodes, `host:port` separated by `;`.
    pub controller_addrs: Vec<String>,
    /// `controllerHeartBeatTimeoutMills`: how long a heartbeat keeps this broker alive in
    /// the controllers' eyes, default 10000.
    pub controller_heartbeat_timeout_ms: u64,
    /// `brokerHeartbeatInterval`, ms between heartbeats to the controllers, default 1000.
    pub broker_heartbeat_interval_ms: u64,
    /// `syncBrokerMetadataPeriod`, ms between checks of the group's master, default 5000.
    pub sync_broker_metadata_period_ms: u64,
    /// `allAckInSyncStateSet`: a send waits until every in-sync broker holds it, default
    /// false.
    pub all_ack_in_sync_state_set: bool,
    /// `minInSyncReplicas`: sends are refused while fewer brokers are in sync, default 1.
    pub min_in_sync_replicas: u32,
    /// `haMaxTimeSlaveNotCatchup`: a slave not caught up for this long leaves the in-sync
    /// set, ms, default 15000.
    pub ha_max_time_slave_not_catchup_ms: u64,
    /// `brokerElectionPriority`: lower is preferred when a master is elected.
    pub broker_election_priority: i32,
    /// The `broker.conf` this configuration was read from, where run-time changes are
    /// written back (not a key).
    pub file: Option<PathBuf>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            namesrv_addrs: vec![],
            listen_port: 10911,
            broker_ip1: "127.0.0.1".into(),
            store_root: PathBuf::from("ferromq-data"),
            store_commit_log: None,
            commit_log_segment_bytes: 1 << 30,
            flush_mode: FlushMode::Async,
            flush_interval_ms: 500,
            flush_consumer_offset_interval_ms: 5_000,
            sync_flush_timeout_ms: 5000,
            disk_space_warning_percent: 90,
            auto_create_topic: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 4,
            max_message_size: 4 * 1024 * 1024,
            file_reserved_hours: 72,
            delete_when: vec![4],
            message_delay_levels_ms: parse_delay_levels(
                "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h",
            )
            .expect("default delay levels parse"),
            transaction_check_interval_ms: 60_000,
            transaction_timeout_ms: 6_000,
            transaction_check_max: 15,
            register_name_server_period_ms: 30_000,
            force_register: true,
            max_connections: 10_000,
            acl_enable: false,
            priority_order_asc: true,
            authentication_enabled: false,
            authorization_enabled: false,
            init_authentication_user: None,
            inner_client_authentication_credentials: None,
            authentication_whitelist: String::new(),
            authorization_whitelist: String::new(),
            migrate_auth_from_v1_enabled: false,
            auth_classes: BTreeMap::new(),
            tls_mode: None,
            tls_cert_path: None,
            tls_key_path: None,
            plain_acl_file: PathBuf::from("conf/plain_acl.yml"),
            enable_property_filter: false,
            slave_read_enable: false,
            access_message_in_memory_max_ratio: 40,
            read_uncommitted: false,
            timer_max_delay_sec: 3 * 24 * 3600,
            default_invisible_time_ms: 60_000,
            renew_ahead_time_ms: 10_000,
            renew_max_time_ms: 3 * 3600 * 1000,
            idle_timeout_secs: 120,
            cluster_topic_enable: true,
            broker_topic_enable: true,
            trace_topic_enable: false,
            msg_trace_topic_name: "RMQ_SYS_TRACE_TOPIC".into(),
            region_id: "DefaultRegion".into(),
            trace_on: true,
            store_reply_message_enable: true,
            recall_message_enable: true,
            allow_recall_when_broker_not_writeable: true,
            enable_message_life: true,
            broker_permission: 6,
            metrics_prom_exporter: false,
            metrics_prom_port: 5557,
            metrics_prom_host: String::new(),
            metrics_labels: Vec::new(),
            metrics_cardinality_limit: 50_000,
            enable_request_metrics: true,
            enable_remoting_metrics: true,
            broker_role: BrokerRole::AsyncMaster,
            broker_ip2: None,
            ha_listen_port: None,
            grpc_server_port: None,
            ha_master_address: None,
            ha_transfer_batch_size: 32 * 1024,
            ha_send_heartbeat_interval_ms: 5_000,
            ha_housekeeping_interval_ms: 20_000,
            ha_max_gap_not_in_sync: 256 * 1024 * 1024,
            in_sync_replicas: None,
            slave_timeout_ms: 3_000,
            enable_controller_mode: false,
            controller_addrs: vec![],
            controller_heartbeat_timeout_ms: 10_000,
            broker_heartbeat_interval_ms: 1_000,
            sync_broker_metadata_period_ms: 5_000,
            all_ack_in_sync_state_set: false,
            min_in_sync_replicas: 1,
            ha_max_time_slave_not_catchup_ms: 15_000,
            broker_election_priority: i32::MAX,
            file: None,
        }
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match value.parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(invalid(
            key,
            value,
            &format!("an integer from {min} to {max}"),
        )),
    }
}

/// `metricsLabel`: `key:value` pairs separated by commas, keys valid as Prometheus label
/// names.
fn parse_metrics_labels(key: &str, value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let expected = "key:value pairs separated by commas, keys made of letters, digits and _";
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once(':') {
            Some((k, v))
                if !k.is_empty()
                    && !k.starts_with(|c: char| c.is_ascii_digit())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(invalid(key, value, expected)),
        })
        .collect()
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

/// Parses `1s 5s 1m 2h 1d` into milliseconds.
pub fn parse_delay_levels(value: &str) -> Option<Vec<u64>> {
    let levels: Option<Vec<u64>> = value
        .split_whitespace()
        .map(|tok| {
            // The unit is the last character, which need not be one byte.
            let (unit_at, _) = tok.char_indices().last()?;
            let (num, unit) = tok.split_at(unit_at);
            let n: u64 = num.parse().ok()?;
            let ms = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return None,
            };
            n.checked_mul(ms)
        })
        .collect();
    levels.filter(|l| !l.is_empty())
}

fn parse_addr_list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let addrs: Vec<String> = value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for a in &addrs {
        let ok = a
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(invalid(key, value, "host:port entries separated by ';'"));
        }
    }
    Ok(addrs)
}

/// Parses a properties file as Java's `Properties.load` does (ISO-8859-1).
///
/// The bytes are decoded here and handed to the parser as UTF-8: java-properties 2.0.0
/// panics on input it sniffs for a byte-order mark and finds cut short (a file holding
/// the single byte 0xFF, found by fuzzing), and text decoded from ISO-8859-1 never starts
/// like a byte-order mark.
pub fn parse_properties(bytes: &[u8]) -> Result<HashMap<String, String>, String> {
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    let mut map = HashMap::new();
    java_properties::PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8)
        .read_into(|k, v| {
            map.insert(k, v);
        })
        .map_err(|e| e.to_string())?;
    Ok(map)
}

/// One `broker.conf` key: how to read it into the configuration and print it back.
struct Key {
    name: &'static str,
    /// Another spelling Apache accepts for the same key.
    alias: Option<&'static str>,
    /// Whether `updateBrokerConfig` may change it while the broker runs: the key is read
    /// where it is used, so a change takes effect at once.
    runtime: bool,
    get: fn(&BrokerConfig) -> String,
    set: fn(&mut BrokerConfig, &str, &str) -> Result<(), ConfigError>,
}

macro_rules! key {
    ($name:literal, runtime = $rt:literal, |$c:ident| $get:expr, |$cs:ident, $k:ident, $v:ident| $set:expr) => {
        Key {
            name: $name,
            alias: None,
            runtime: $rt,
            get: |$c| $get,
            set: |$cs, $k, $v| {
                $set;
                Ok(())
            },
        }
    };
}

fn flush_name(mode: FlushMode) -> &'static str {
    match mode {
        FlushMode::Async => "ASYNC_FLUSH",
        FlushMode::Sync => "SYNC_FLUSH",
    }
}

fn path_string(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or(String::new(), |p| p.display().to_string())
}

/// Every key FerroMQ reads, once: parsing, printing and run-time changes all go through it.
#[rustfmt::skip]
const KEYS: &[Key] = &[
    key!("aclEnable", runtime = false, |c| c.acl_enable.to_string(), |c, k, v| c.acl_enable = parse_bool(k, v)?),
    key!("priorityOrderAsc", runtime = true, |c| c.priority_order_asc.to_string(), |c, k, v| c.priority_order_asc = parse_bool(k, v)?),
    key!("authenticationEnabled", runtime = false, |c| c.authentication_enabled.to_string(), |c, k, v| c.authentication_enabled = parse_bool(k, v)?),
    key!("authorizationEnabled", runtime = false, |c| c.authorization_enabled.to_string(), |c, k, v| c.authorization_enabled = parse_bool(k, v)?),
    key!("initAuthenticationUser", runtime = false, |c| c.init_authentication_user.clone().unwrap_or_default(), |c, k, v| c.init_authentication_user = json_object(k, v)?),
    key!("innerClientAuthenticationCredentials", runtime = false, |c| c.inner_client_authentication_credentials.clone().unwrap_or_default(), |c, k, v| c.inner_client_authentication_credentials = json_object(k, v)?),
    key!("authenticationWhitelist", runtime = false, |c| c.authentication_whitelist.clone(), |c, _k, v| c.authentication_whitelist = v.to_string()),
    key!("authorizationWhitelist", runtime = false, |c| c.authorization_whitelist.clone(), |c, _k, v| c.authorization_whitelist = v.to_string()),
    key!("migrateAuthFromV1Enabled", runtime = false, |c| c.migrate_auth_from_v1_enabled.to_string(), |c, k, v| c.migrate_auth_from_v1_enabled = parse_bool(k, v)?),
    key!("authenticationProvider", runtime = false, |c| auth_class(c, "authenticationProvider"), |c, k, v| set_auth_class(c, k, v)?),
    key!("authenticationMetadataProvider", runtime = false, |c| auth_class(c, "authenticationMetadataProvider"), |c, k, v| set_auth_class(c, k, v)?),
    key!("authenticationStrategy", runtime = false, |c| auth_class(c, "authenticationStrategy"), |c, k, v| set_auth_class(c, k, v)?),
    key!("authorizationProvider", runtime = false, |c| auth_class(c, "authorizationProvider"), |c, k, v| set_auth_class(c, k, v)?),
    key!("authorizationMetadataProvider", runtime = false, |c| auth_class(c, "authorizationMetadataProvider"), |c, k, v| set_auth_class(c, k, v)?),
    key!("authorizationStrategy", runtime = false, |c| auth_class(c, "authorizationStrategy"), |c, k, v| set_auth_class(c, k, v)?),
    key!("allAckInSyncStateSet", runtime = false, |c| c.all_ack_in_sync_state_set.to_string(), |c, k, v| c.all_ack_in_sync_state_set = parse_bool(k, v)?),
    key!("autoCreateSubscriptionGroup", runtime = true, |c| c.auto_create_subscription_group.to_string(), |c, k, v| c.auto_create_subscription_group = parse_bool(k, v)?),
    key!("autoCreateTopicEnable", runtime = true, |c| c.auto_create_topic.to_string(), |c, k, v| c.auto_create_topic = parse_bool(k, v)?),
    key!("brokerClusterName", runtime = false, |c| c.cluster_name.clone(), |c, k, v| c.cluster_name = non_empty(k, v)?),
    key!("brokerIP1", runtime = false, |c| c.broker_ip1.clone(), |c, k, v| {
        if v.is_empty() {
            return Err(invalid(k, v, "an IP address or host name clients can reach"));
        }
        c.broker_ip1 = v.to_string()
    }),
    key!("brokerElectionPriority", runtime = false, |c| c.broker_election_priority.to_string(), |c, k, v| c.broker_election_priority = parse_num(k, v, i32::MIN, i32::MAX)?),
    key!("brokerHeartbeatInterval", runtime = false, |c| c.broker_heartbeat_interval_ms.to_string(), |c, k, v| c.broker_heartbeat_interval_ms = parse_num(k, v, 100u64, 60_000)?),
    key!("brokerIP2", runtime = false, |c| c.ha_host().to_string(), |c, k, v| c.broker_ip2 = Some(non_empty(k, v)?)),
    // -1: "the controller assigns it" (controller mode).
    key!("brokerId", runtime = false, |c| c.broker_id.to_string(), |c, k, v| c.broker_id = parse_num(k, v, -1i64, i64::MAX)?),
    key!("brokerName", runtime = false, |c| c.broker_name.clone(), |c, k, v| c.broker_name = non_empty(k, v)?),
    key!("brokerPermission", runtime = true, |c| c.broker_permission.to_string(), |c, k, v| {
        c.broker_permission = match parse_num(k, v, 0i32, 7)? {
            p if p & 1 == 0 => p,
            _ => return Err(invalid(k, v, "6 (read and write), 4 (read only), 2 (write only) or 0")),
        }
    }),
    key!("brokerRole", runtime = false, |c| c.broker_role.name().to_string(), |c, k, v| {
        c.broker_role = match v {
            "ASYNC_MASTER" => BrokerRole::AsyncMaster,
            "SYNC_MASTER" => BrokerRole::SyncMaster,
            "SLAVE" => BrokerRole::Slave,
            _ => return Err(invalid(k, v, "ASYNC_MASTER, SYNC_MASTER or SLAVE")),
        }
    }),
    key!("accessMessageInMemoryMaxRatio", runtime = true, |c| c.access_message_in_memory_max_ratio.to_string(), |c, k, v| c.access_message_in_memory_max_ratio = parse_num(k, v, 0u32, 100)?),
    key!("brokerTopicEnable", runtime = true, |c| c.broker_topic_enable.to_string(), |c, k, v| c.broker_topic_enable = parse_bool(k, v)?),
    key!("clusterTopicEnable", runtime = true, |c| c.cluster_topic_enable.to_string(), |c, k, v| c.cluster_topic_enable = parse_bool(k, v)?),
    key!("controllerAddr", runtime = false, |c| c.controller_addrs.join(";"), |c, k, v| c.controller_addrs = parse_addr_list(k, v)?),
    key!("controllerHeartBeatTimeoutMills", runtime = false, |c| c.controller_heartbeat_timeout_ms.to_string(), |c, k, v| c.controller_heartbeat_timeout_ms = parse_num(k, v, 1_000u64, 600_000)?),
    key!("defaultTopicQueueNums", runtime = true, |c| c.default_topic_queue_nums.to_string(), |c, k, v| c.default_topic_queue_nums = parse_num(k, v, 1i32, 1024)?),
    key!("deleteWhen", runtime = true, |c| c.delete_when.iter().map(|h| format!("{h:02}")).collect::<Vec<_>>().join(";"), |c, k, v| {
        let hours: Option<Vec<u32>> = v.split(';').map(|h| h.trim().parse::<u32>().ok().filter(|h| *h < 24)).collect();
        c.delete_when = hours.filter(|h| !h.is_empty()).ok_or_else(|| invalid(k, v, "hours 00-23 separated by ';'"))?
    }),
    key!("diskSpaceWarningLevelRatio", runtime = false, |c| c.disk_space_warning_percent.to_string(), |c, k, v| c.disk_space_warning_percent = parse_num(k, v, 1u32, 99)?),
    key!("enableControllerMode", runtime = false, |c| c.enable_controller_mode.to_string(), |c, k, v| c.enable_controller_mode = parse_bool(k, v)?),
    key!("enablePropertyFilter", runtime = true, |c| c.enable_property_filter.to_string(), |c, k, v| c.enable_property_filter = parse_bool(k, v)?),
    key!("fileReservedTime", runtime = true, |c| c.file_reserved_hours.to_string(), |c, k, v| c.file_reserved_hours = parse_num(k, v, 1u64, 24 * 365 * 100)?),
    key!("flushConsumerOffsetInterval", runtime = false, |c| c.flush_consumer_offset_interval_ms.to_string(), |c, k, v| c.flush_consumer_offset_interval_ms = parse_num(k, v, 10u64, 600_000)?),
    key!("forceRegister", runtime = false, |c| c.force_register.to_string(), |c, k, v| c.force_register = parse_bool(k, v)?),
    key!("flushDiskType", runtime = false, |c| flush_name(c.flush_mode).to_string(), |c, k, v| {
        c.flush_mode = match v {
            "ASYNC_FLUSH" => FlushMode::Async,
            "SYNC_FLUSH" => FlushMode::Sync,
            _ => return Err(invalid(k, v, "ASYNC_FLUSH or SYNC_FLUSH")),
        }
    }),
    key!("enableRemotingMetrics", runtime = false, |c| c.enable_remoting_metrics.to_string(), |c, k, v| c.enable_remoting_metrics = parse_bool(k, v)?),
    key!("enableRequestMetrics", runtime = false, |c| c.enable_request_metrics.to_string(), |c, k, v| c.enable_request_metrics = parse_bool(k, v)?),
    key!("flushIntervalCommitLog", runtime = false, |c| c.flush_interval_ms.to_string(), |c, k, v| c.flush_interval_ms = parse_num(k, v, 1u64, 60_000)?),
    key!("haHousekeepingInterval", runtime = false, |c| c.ha_housekeeping_interval_ms.to_string(), |c, k, v| c.ha_housekeeping_interval_ms = parse_num(k, v, 1_000u64, 3_600_000)?),
    key!("grpcServerPort", runtime = false, |c| c.grpc_server_port.map_or_else(String::new, |p| p.to_string()), |c, k, v| c.grpc_server_port = Some(parse_num(k, v, 1u16, u16::MAX)?)),
    key!("haListenPort", runtime = false, |c| c.ha_port().to_string(), |c, k, v| c.ha_listen_port = Some(parse_num(k, v, 1u16, u16::MAX)?)),
    key!("haMaxTimeSlaveNotCatchup", runtime = false, |c| c.ha_max_time_slave_not_catchup_ms.to_string(), |c, k, v| c.ha_max_time_slave_not_catchup_ms = parse_num(k, v, 1_000u64, 3_600_000)?),
    key!("haMasterAddress", runtime = false, |c| c.ha_master_address.clone().unwrap_or_default(), |c, k, v| {
        // Apache ignores an address shorter than 6 characters, an empty one included.
        c.ha_master_address = match v.len() {
            0..=5 => None,
            _ => Some(parse_addr_list(k, v)?.into_iter().next().ok_or_else(|| invalid(k, v, "host:port"))?),
        }
    }),
    key!("haMaxGapNotInSync", runtime = false, |c| c.ha_max_gap_not_in_sync.to_string(), |c, k, v| c.ha_max_gap_not_in_sync = parse_num(k, v, 1u64, u64::MAX / 2)?),
    key!("haSendHeartbeatInterval", runtime = false, |c| c.ha_send_heartbeat_interval_ms.to_string(), |c, k, v| c.ha_send_heartbeat_interval_ms = parse_num(k, v, 100u64, 600_000)?),
    key!("haTransferBatchSize", runtime = false, |c| c.ha_transfer_batch_size.to_string(), |c, k, v| c.ha_transfer_batch_size = parse_num(k, v, 1024usize, 4 * 1024 * 1024)?),
    key!("inSyncReplicas", runtime = false, |c| c.effective_in_sync_replicas().to_string(), |c, k, v| c.in_sync_replicas = Some(parse_num(k, v, 1u32, 64)?)),
    key!("listenPort", runtime = false, |c| c.listen_port.to_string(), |c, k, v| c.listen_port = parse_num(k, v, 0u16, u16::MAX)?),
    Key { alias: Some("mappedFileSizeCommitLog"), ..key!("mapedFileSizeCommitLog", runtime = false, |c| c.commit_log_segment_bytes.to_string(), |c, k, v| c.commit_log_segment_bytes = parse_num(k, v, 64 * 1024u64, 1u64 << 40)?) },
    key!("maxConnections", runtime = false, |c| c.max_connections.to_string(), |c, k, v| c.max_connections = parse_num(k, v, 1usize, 1_000_000)?),
    key!("metricsExporterType", runtime = false, |c| if c.metrics_prom_exporter { "PROM" } else { "DISABLE" }.to_string(), |c, k, v| {
        c.metrics_prom_exporter = match v {
            "PROM" | "2" => true,
            "DISABLE" | "0" => false,
            "OTLP_GRPC" | "LOG" | "1" | "3" => return Err(invalid(k, v, "PROM or DISABLE (FerroMQ exports metrics for Prometheus only)")),
            _ => return Err(invalid(k, v, "PROM or DISABLE")),
        }
    }),
    key!("metricsLabel", runtime = false, |c| c.metrics_labels.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(","), |c, k, v| c.metrics_labels = parse_metrics_labels(k, v)?),
    key!("metricsOtelCardinalityLimit", runtime = false, |c| c.metrics_cardinality_limit.to_string(), |c, k, v| c.metrics_cardinality_limit = parse_num(k, v, 2usize, 10_000_000)?),
    key!("metricsPromExporterHost", runtime = false, |c| c.metrics_prom_host.clone(), |c, _k, v| c.metrics_prom_host = v.to_string()),
    key!("metricsPromExporterPort", runtime = false, |c| c.metrics_prom_port.to_string(), |c, k, v| c.metrics_prom_port = parse_num(k, v, 1u16, 65535)?),
    key!("maxMessageSize", runtime = true, |c| c.max_message_size.to_string(), |c, k, v| c.max_message_size = parse_num(k, v, 1usize, 64 * 1024 * 1024)?),
    key!("messageDelayLevel", runtime = false, |c| c.message_delay_levels_ms.iter().map(|ms| format!("{}s", ms / 1000)).collect::<Vec<_>>().join(" "), |c, k, v| {
        c.message_delay_levels_ms = parse_delay_levels(v)
            .ok_or_else(|| invalid(k, v, "durations like '1s 5s 10s 1m 2h 1d' separated by spaces"))?
    }),
    key!("minInSyncReplicas", runtime = false, |c| c.min_in_sync_replicas.to_string(), |c, k, v| c.min_in_sync_replicas = parse_num(k, v, 1u32, 64)?),
    key!("msgTraceTopicName", runtime = false, |c| c.msg_trace_topic_name.clone(), |c, k, v| {
        crate::topic::validate_topic_name(v).map_err(|why| invalid(k, v, &format!("a valid topic name ({why})")))?;
        c.msg_trace_topic_name = v.to_string()
    }),
    key!("namesrvAddr", runtime = false, |c| c.namesrv_addrs.join(";"), |c, k, v| c.namesrv_addrs = parse_addr_list(k, v)?),
    key!("plainAclFile", runtime = false, |c| c.plain_acl_file.display().to_string(), |c, k, v| c.plain_acl_file = PathBuf::from(non_empty(k, v)?)),
    key!("readUnCommitted", runtime = false, |c| c.read_uncommitted.to_string(), |c, k, v| c.read_uncommitted = parse_bool(k, v)?),
    key!("regionId", runtime = false, |c| c.region_id.clone(), |c, k, v| c.region_id = non_empty(k, v)?),
    key!("registerNameServerPeriod", runtime = false, |c| c.register_name_server_period_ms.to_string(), |c, k, v| {
        c.register_name_server_period_ms = parse_num(k, v, 1u64, u64::MAX / 2)?.clamp(10_000, 60_000)
    }),
    key!("serverChannelMaxIdleTimeSeconds", runtime = false, |c| c.idle_timeout_secs.to_string(), |c, k, v| c.idle_timeout_secs = parse_num(k, v, 1u64, 86_400)?),
    key!("slaveReadEnable", runtime = true, |c| c.slave_read_enable.to_string(), |c, k, v| c.slave_read_enable = parse_bool(k, v)?),
    key!("slaveTimeout", runtime = false, |c| c.slave_timeout_ms.to_string(), |c, k, v| c.slave_timeout_ms = parse_num(k, v, 1u64, 600_000)?),
    key!("syncBrokerMetadataPeriod", runtime = false, |c| c.sync_broker_metadata_period_ms.to_string(), |c, k, v| c.sync_broker_metadata_period_ms = parse_num(k, v, 100u64, 600_000)?),
    key!("storePathCommitLog", runtime = false, |c| path_string(&c.store_commit_log), |c, k, v| c.store_commit_log = Some(PathBuf::from(non_empty(k, v)?))),
    key!("storePathRootDir", runtime = false, |c| c.store_root.display().to_string(), |c, k, v| c.store_root = PathBuf::from(non_empty(k, v)?)),
    key!("syncFlushTimeout", runtime = false, |c| c.sync_flush_timeout_ms.to_string(), |c, k, v| c.sync_flush_timeout_ms = parse_num(k, v, 1u64, 600_000)?),
    key!("defaultInvisibleTimeMills", runtime = false, |c| c.default_invisible_time_ms.to_string(), |c, k, v| c.default_invisible_time_ms = parse_num(k, v, 1000u64, 12 * 3600 * 1000)?),
    key!("renewAheadTimeMillis", runtime = false, |c| c.renew_ahead_time_ms.to_string(), |c, k, v| c.renew_ahead_time_ms = parse_num(k, v, 100u64, 3600 * 1000)?),
    key!("renewMaxTimeMillis", runtime = false, |c| c.renew_max_time_ms.to_string(), |c, k, v| c.renew_max_time_ms = parse_num(k, v, 1000u64, 7 * 24 * 3600 * 1000)?),
    key!("timerMaxDelaySec", runtime = false, |c| c.timer_max_delay_sec.to_string(), |c, k, v| c.timer_max_delay_sec = parse_num(k, v, 1u64, 366 * 24 * 3600)?),
    key!("tls.server.certPath", runtime = false, |c| path_string(&c.tls_cert_path), |c, k, v| c.tls_cert_path = Some(PathBuf::from(non_empty(k, v)?))),
    key!("tls.server.keyPath", runtime = false, |c| path_string(&c.tls_key_path), |c, k, v| c.tls_key_path = Some(PathBuf::from(non_empty(k, v)?))),
    key!("tls.server.mode", runtime = false, |c| c.tls_mode.map_or(String::new(), |m| m.to_string()), |c, k, v| {
        c.tls_mode = Some(v.parse().map_err(|e: String| invalid(k, v, &e))?)
    }),
    key!("enableMessageLife", runtime = false, |c| c.enable_message_life.to_string(), |c, k, v| c.enable_message_life = parse_bool(k, v)?),
    key!("recallMessageEnable", runtime = true, |c| c.recall_message_enable.to_string(), |c, k, v| c.recall_message_enable = parse_bool(k, v)?),
    key!("allowRecallWhenBrokerNotWriteable", runtime = true, |c| c.allow_recall_when_broker_not_writeable.to_string(), |c, k, v| c.allow_recall_when_broker_not_writeable = parse_bool(k, v)?),
    key!("storeReplyMessageEnable", runtime = true, |c| c.store_reply_message_enable.to_string(), |c, k, v| c.store_reply_message_enable = parse_bool(k, v)?),
    key!("traceOn", runtime = true, |c| c.trace_on.to_string(), |c, k, v| c.trace_on = parse_bool(k, v)?),
    key!("traceTopicEnable", runtime = false, |c| c.trace_topic_enable.to_string(), |c, k, v| c.trace_topic_enable = parse_bool(k, v)?),
    key!("transactionCheckInterval", runtime = true, |c| c.transaction_check_interval_ms.to_string(), |c, k, v| c.transaction_check_interval_ms = parse_num(k, v, 1u64, u64::MAX / 2)?),
    key!("transactionCheckMax", runtime = true, |c| c.transaction_check_max.to_string(), |c, k, v| c.transaction_check_max = parse_num(k, v, 1u32, 10_000)?),
    key!("transactionTimeOut", runtime = true, |c| c.transaction_timeout_ms.to_string(), |c, k, v| c.transaction_timeout_ms = parse_num(k, v, 0u64, u64::MAX / 2)?),
];

/// Every key `broker.conf` may hold: those FerroMQ reads (with Apache's other spellings)
/// and those it accepts without effect. For tools that map other names onto keys, such as
/// `FERROMQ_*` environment variables.
pub fn key_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .flat_map(|k| std::iter::once(k.name).chain(k.alias))
        .chain(ACCEPTED_WITHOUT_EFFECT.iter().copied())
}

fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|k| k.name == name || k.alias == Some(name))
}

impl BrokerConfig {
    /// Reads a `broker.conf` file over the defaults. Returns the config and one warning
    /// per key that is unknown or has no effect.
    pub fn from_file(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let map = parse_properties(&bytes).map_err(|reason| ConfigError::Read {
            path: path.into(),
            reason,
        })?;
        let mut cfg = BrokerConfig {
            file: Some(path.to_path_buf()),
            ..BrokerConfig::default()
        };
        let warnings = cfg.apply(&map)?;
        Ok((cfg, warnings))
    }

    /// Applies key/value pairs. Returns warnings for unknown and ineffective keys.
    pub fn apply(&mut self, map: &HashMap<String, String>) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for name in keys {
            let v = map[name].trim();
            match find_key(name) {
                Some(key) => (key.set)(self, name, v)?,
                None if ACCEPTED_WITHOUT_EFFECT.contains(&name.as_str()) => warnings.push(format!(
                    "configuration key {name} is accepted for compatibility but has no effect in FerroMQ"
                )),
                None => warnings.push(format!("unknown configuration key {name} ignored")),
            }
        }
        self.validate()?;
        if self.broker_role == BrokerRole::AsyncMaster
            && self.in_sync_replicas.is_some_and(|n| n > 1)
        {
            warnings.push(
                "inSyncReplicas has no effect under brokerRole=ASYNC_MASTER, which answers sends once stored here".into(),
            );
        }
        if self.enable_controller_mode && map.contains_key("brokerRole") {
            warnings.push(
                "brokerRole has no effect with enableControllerMode=true: the controller decides who is master".into(),
            );
        }
        if self.broker_role != BrokerRole::Slave && self.ha_master_address.is_some() {
            warnings.push("haMasterAddress has no effect on a master".into());
        }
        Ok(warnings)
    }

    /// The configuration with `changes` made while the broker runs, as Apache's
    /// `updateBrokerConfig`. Refuses, naming the key, a key that is unknown or that only a
    /// restart can change, and any value `broker.conf` would refuse.
    pub fn with_runtime_changes(
        &self,
        changes: &HashMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut next = self.clone();
        for (name, value) in changes {
            let key =
                find_key(name).ok_or_else(|| ConfigError::UnknownKey { key: name.clone() })?;
            if !key.runtime {
                return Err(ConfigError::NeedsRestart { key: name.clone() });
            }
            (key.set)(&mut next, name, value.trim())?;
        }
        next.validate()?;
        Ok(next)
    }

    /// Checks the combinations of keys that no single value can break.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.acl_enable && (self.authentication_enabled || self.authorization_enabled) {
            return Err(invalid(
                "aclEnable",
                "true",
                "false when authenticationEnabled or authorizationEnabled is true: plain ACL 1.0 and ACL 2.0 \
                 cannot both check requests (migrateAuthFromV1Enabled=true imports plainAclFile into ACL 2.0)",
            ));
        }
        if self.enable_controller_mode {
            if self.controller_addrs.is_empty() {
                return Err(invalid(
                    "controllerAddr",
                    "",
                    "the controllers' host:port list with enableControllerMode=true",
                ));
            }
        } else if self.broker_id < 0 {
            return Err(invalid(
                "brokerId",
                &self.broker_id.to_string(),
                "0 or more (-1 only with enableControllerMode=true)",
            ));
        }
        match (self.broker_role, self.broker_id) {
            _ if self.enable_controller_mode => {}
            (BrokerRole::Slave, 0) => {
                return Err(invalid(
                    "brokerId",
                    "0",
                    "an id of 1 or more with brokerRole=SLAVE (0 is the master's)",
                ))
            }
            (BrokerRole::AsyncMaster | BrokerRole::SyncMaster, id) if id != 0 => {
                return Err(invalid(
                    "brokerId",
                    &id.to_string(),
                    "0 for a master; a slave needs brokerRole=SLAVE",
                ))
            }
            _ => {}
        }
        if self.renew_ahead_time_ms >= self.default_invisible_time_ms {
            return Err(invalid(
                "renewAheadTimeMillis",
                &self.renew_ahead_time_ms.to_string(),
                "less than defaultInvisibleTimeMills, or deliveries would be renewed without end",
            ));
        }
        if let Some(grpc) = self.grpc_server_port {
            if grpc == self.listen_port || grpc == self.ha_port() {
                return Err(invalid(
                    "grpcServerPort",
                    &grpc.to_string(),
                    "a port other than listenPort and haListenPort",
                ));
            }
        }
        let ha = self.ha_port();
        if ha == self.listen_port || Some(ha) == self.listen_port.checked_sub(2) {
            return Err(invalid(
                "haListenPort",
                &ha.to_string(),
                "a port other than listenPort and listenPort - 2 (the VIP channel)",
            ));
        }
        let tls_wanted = !matches!(
            self.tls_mode,
            None | Some(ferromq_remoting::TlsMode::Disabled)
        );
        match (&self.tls_cert_path, &self.tls_key_path) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    "tls.server.certPath",
                    &path_string(&self.tls_cert_path),
                    "tls.server.certPath and tls.server.keyPath given together",
                ))
            }
            (None, None) if tls_wanted => {
                return Err(invalid(
                    "tls.server.mode",
                    "permissive/enforcing",
                    "tls.server.certPath and tls.server.keyPath for TLS",
                ))
            }
            _ => {}
        }
        if self.max_message_size as u64 + 1024 > self.commit_log_segment_bytes {
            return Err(invalid(
                "mapedFileSizeCommitLog",
                &self.commit_log_segment_bytes.to_string(),
                &format!(
                    "a size larger than maxMessageSize ({}) plus 1 KiB",
                    self.max_message_size
                ),
            ));
        }
        Ok(())
    }

    /// The effective configuration as `broker.conf` lines, keys sorted.
    pub fn to_properties(&self) -> String {
        KEYS.iter()
            .map(|k| format!("{}={}\n", k.name, (k.get)(self)))
            .collect()
    }

    /// One key's value as `broker.conf` spells it.
    pub fn get(&self, name: &str) -> Option<String> {
        find_key(name).map(|k| (k.get)(self))
    }

    /// The host slaves reach this broker's HA port on (`brokerIP2`, else `brokerIP1`).
    pub fn ha_host(&self) -> &str {
        self.broker_ip2.as_deref().unwrap_or(&self.broker_ip1)
    }

    /// `haListenPort`, or `listenPort` + 1.
    pub fn ha_port(&self) -> u16 {
        self.ha_listen_port
            .unwrap_or_else(|| self.listen_port.wrapping_add(1))
    }

    /// The HA address registered with the name servers, `brokerIP2:haListenPort`.
    pub fn ha_server_addr(&self) -> String {
        let host = self.ha_host();
        if host.contains(':') {
            format!("[{host}]:{}", self.ha_port())
        } else {
            format!("{host}:{}", self.ha_port())
        }
    }

    /// Copies a `SYNC_MASTER` send waits for, the master's included.
    pub fn effective_in_sync_replicas(&self) -> u32 {
        self.in_sync_replicas.unwrap_or(match self.broker_role {
            BrokerRole::SyncMaster => 2,
            _ => 1,
        })
    }

    /// Address clients are given, `brokerIP1:listenPort`.
    pub fn advertised_addr(&self) -> String {
        if self.broker_ip1.contains(':') {
            format!("[{}]:{}", self.broker_ip1, self.listen_port)
        } else {
            format!("{}:{}", self.broker_ip1, self.listen_port)
        }
    }
}

/// `text`, a `broker.conf`, with `changes` made: a line that sets one of the keys gets the
/// new value in place, so comments and order survive; keys the file lacks are appended.
pub fn rewrite_properties(text: &str, changes: &BTreeMap<String, String>) -> String {
    let mut pending: BTreeMap<&str, &str> = changes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut continued = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let is_comment = trimmed.starts_with('#') || trimmed.starts_with('!');
        let key = trimmed
            .split(|c: char| c == '=' || c == ':' || c.is_whitespace())
            .next()
            .unwrap_or("");
        // A line continuing the previous one's value is never a key of its own.
        match (continued || is_comment, pending.remove(key)) {
            (false, Some(value)) => {
                out.push_str(key);
                out.push('=');
                out.push_str(value);
            }
            (_, Some(value)) => {
                pending.insert(key, value);
                out.push_str(line);
            }
            (_, None) => out.push_str(line),
        }
        out.push('\n');
        continued = !is_comment && line.ends_with('\\');
    }
    for (key, value) in pending {
        out.push_str(&format!("{key}={value}\n"));
    }
    out
}

/// A JSON object value (the ACL 2.0 start-up users); empty means none.
fn json_object(key: &str, v: &str) -> Result<Option<String>, ConfigError> {
    if v.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(serde_json::Value::Object(_)) => Ok(Some(v.to_string())),
        _ => Err(invalid(
            key,
            v,
            "a JSON object such as {\"username\":\"…\",\"password\":\"…\"}",
        )),
    }
}

fn auth_class(c: &BrokerConfig, key: &str) -> String {
    c.auth_classes.get(key).cloned().unwrap_or_default()
}

/// An ACL 2.0 class key: empty, or one of Apache's classes FerroMQ does the work of.
fn set_auth_class(c: &mut BrokerConfig, key: &str, v: &str) -> Result<(), ConfigError> {
    let known = AUTH_CLASS_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[][..], |(_, names)| *names);
    let simple = v.rsplit('.').next().unwrap_or(v);
    if !v.is_empty() && !known.contains(&simple) {
        return Err(invalid(
            key,
            v,
            &format!(
                "empty or Apache's {} (FerroMQ cannot load Java classes; its own ACL 2.0 does what they do)",
                known.join(" or ")
            ),
        ));
    }
    c.auth_classes.insert(key.to_string(), v.to_string());
    Ok(())
}

fn non_empty(key: &str, v: &str) -> Result<String, ConfigError> {
    if v.is_empty() {
        Err(invalid(key, v, "a non-empty value"))
    } else {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_as_java_reads_them_and_odd_bytes_do_not_panic() {
        // A lone 0xFF once panicked the parser (fuzzing); ISO-8859-1 as in Java.
        assert_eq!(parse_properties(b"\xff").unwrap().len(), 1);
        let map = parse_properties(b"brokerName=caf\xe9\n# c\nlistenPort = 10911\n").unwrap();
        assert_eq!(map["brokerName"], "caf\u{e9}");
        assert_eq!(map["listenPort"], "10911");
        assert_eq!(parse_properties(b"a=\\u00e9").unwrap()["a"], "\u{e9}");
    }

    fn apply(pairs: &[(&str, &str)]) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut cfg = BrokerConfig::default();
        let w = cfg.apply(&map)?;
        Ok((cfg, w))
    }

    #[test]
    fn apache_broker_conf_keys_are_read() {
        let (cfg, warnings) = apply(&[
            ("brokerClusterName", "C1"),
            ("brokerName", "b1"),
            ("brokerId", "0"),
            ("namesrvAddr", "127.0.0.1:9876;127.0.0.2:9876"),
            ("listenPort", "10921"),
            ("brokerIP1", "192.0.2.10"),
            ("flushDiskType", "SYNC_FLUSH"),
            ("deleteWhen", "04;10"),
            ("messageDelayLevel", "1s 2m 1h 1d"),
        ])
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cfg.namesrv_addrs, vec!["127.0.0.1:9876", "127.0.0.2:9876"]);
        assert_eq!(cfg.flush_mode, FlushMode::Sync);
        assert_eq!(cfg.advertised_addr(), "192.0.2.10:10921");
        assert_eq!(cfg.delete_when, vec![4, 10]);
        assert_eq!(
            cfg.message_delay_levels_ms,
            vec![1_000, 120_000, 3_600_000, 86_400_000]
        );
    }

    #[test]
    fn slave_and_master_ids_must_agree_with_the_role() {
        let (cfg, _) = apply(&[("brokerRole", "SLAVE"), ("brokerId", "1")]).unwrap();
        assert_eq!(cfg.broker_role, BrokerRole::Slave);
        let err = apply(&[("brokerRole", "SLAVE")]).unwrap_err().to_string();
        assert!(err.contains("brokerId") && err.contains("SLAVE"), "{err}");
        let err = apply(&[("brokerId", "2")]).unwrap_err().to_string();
        assert!(err.contains("brokerId") && err.contains("SLAVE"), "{err}");
        let (cfg, warnings) = apply(&[("brokerRole", "SYNC_MASTER")]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            cfg.effective_in_sync_replicas(),
            2,
            "a slave must hold it too"
        );
        let (cfg, warnings) = apply(&[("inSyncReplicas", "3")]).unwrap();
        assert_eq!(cfg.broker_role, BrokerRole::AsyncMaster);
        assert!(
            warnings.iter().any(|w| w.contains("inSyncReplicas")),
            "{warnings:?}"
        );
        assert!(apply(&[("brokerRole", "LEADER")]).is_err());
    }

    #[test]
    fn ha_ports_default_next_to_the_listen_port_and_must_not_collide() {
        let (cfg, _) = apply(&[("listenPort", "20911")]).unwrap();
        assert_eq!(cfg.ha_port(), 20912);
        assert_eq!(cfg.ha_server_addr(), "127.0.0.1:20912");
        let (cfg, _) = apply(&[("brokerIP2", "10.0.0.2"), ("haListenPort", "3000")]).unwrap();
        assert_eq!(cfg.ha_server_addr(), "10.0.0.2:3000");
        for port in ["10911", "10909"] {
            let err = apply(&[("haListenPort", port)]).unwrap_err().to_string();
            assert!(err.contains("haListenPort"), "{err}");
        }
        let (cfg, _) = apply(&[("grpcServerPort", "18081")]).unwrap();
        assert_eq!(cfg.grpc_server_port, Some(18081));
        for port in ["10911", "10912", "0", "x"] {
            let err = apply(&[("grpcServerPort", port)]).unwrap_err().to_string();
            assert!(err.contains("grpcServerPort"), "{err}");
        }
        let (cfg, _) = apply(&[
            ("brokerRole", "SLAVE"),
            ("brokerId", "1"),
            ("haMasterAddress", "127.0.0.1:10912"),
        ])
        .unwrap();
        assert_eq!(cfg.ha_master_address.as_deref(), Some("127.0.0.1:10912"));
        assert!(apply(&[("haMasterAddress", "nonsense-address")]).is_err());
    }

    #[test]
    fn unknown_keys_warn_by_name() {
        let (_, warnings) = apply(&[("noSuchKey", "1"), ("warmMapedFileEnable", "true")]).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(warnings.iter().any(|w| w.contains("noSuchKey")));
    }

    #[test]
    fn bad_values_name_key_value_and_expectation() {
        for (k, v, expect) in [
            ("flushDiskType", "SOMETIMES", "ASYNC_FLUSH or SYNC_FLUSH"),
            ("listenPort", "99999", "0 to 65535"),
            ("autoCreateTopicEnable", "yes", "true or false"),
            ("namesrvAddr", "localhost", "host:port"),
            ("messageDelayLevel", "1s 5x", "durations"),
            ("deleteWhen", "25", "hours"),
            (
                "renewAheadTimeMillis",
                "60000",
                "less than defaultInvisibleTimeMills",
            ),
            ("defaultInvisibleTimeMills", "500", "1000 to"),
        ] {
            let err = apply(&[(k, v)]).unwrap_err().to_string();
            assert!(
                err.contains(k) && err.contains(v) && err.contains(expect),
                "{err}"
            );
        }
    }

    #[test]
    fn delay_levels_with_multibyte_units_are_refused_not_a_panic() {
        // Found by the config fuzz target.
        assert_eq!(parse_delay_levels("1\u{e9}"), None);
        assert_eq!(parse_delay_levels("\u{1F600}"), None);
        assert!(apply(&[("messageDelayLevel", "5\u{e9} 1s")]).is_err());
    }

    #[test]
    fn every_key_prints_what_it_reads() {
        let cfg = BrokerConfig::default();
        let map = parse_properties(cfg.to_properties().as_bytes()).unwrap();
        let mut again = BrokerConfig::default();
        // Empty optional paths print empty and are not read back.
        let map: HashMap<String, String> = map.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        assert!(again.apply(&map).unwrap().is_empty());
        assert_eq!(again.to_properties(), cfg.to_properties());
    }

    #[test]
    fn runtime_changes_take_changeable_keys_and_refuse_the_rest() {
        let cfg = BrokerConfig::default();
        let change = |k: &str, v: &str| {
            let map = HashMap::from([(k.to_string(), v.to_string())]);
            cfg.with_runtime_changes(&map)
        };
        let next = change("brokerPermission", "4").unwrap();
        assert_eq!(next.broker_permission, 4);
        assert_eq!(next.get("brokerPermission").as_deref(), Some("4"));
        assert!(matches!(
            change("listenPort", "1"),
            Err(ConfigError::NeedsRestart { .. })
        ));
        assert!(matches!(
            change("noSuchKey", "1"),
            Err(ConfigError::UnknownKey { .. })
        ));
        let err = change("brokerPermission", "5").unwrap_err().to_string();
        assert!(
            err.contains("brokerPermission") && err.contains('5'),
            "{err}"
        );
        // Cross-key checks hold for run-time changes too.
        assert!(change("maxMessageSize", "67108864").is_ok());
        let small = BrokerConfig {
            commit_log_segment_bytes: 1 << 20,
            ..BrokerConfig::default()
        };
        let map = HashMap::from([("maxMessageSize".to_string(), "2097152".to_string())]);
        assert!(small.with_runtime_changes(&map).is_err());
    }

    #[test]
    fn rewritten_broker_conf_keeps_comments_and_order() {
        let text = "# the cluster\nbrokerName = b1\nbrokerPermission=6\n#brokerPermission=2\nlistenPort:10911\n";
        let changes = BTreeMap::from([
            ("brokerPermission".to_string(), "4".to_string()),
            ("fileReservedTime".to_string(), "48".to_string()),
        ]);
        assert_eq!(
            rewrite_properties(text, &changes),
            "# the cluster\nbrokerName = b1\nbrokerPermission=4\n#brokerPermission=2\nlistenPort:10911\nfileReservedTime=48\n"
        );
    }

    #[test]
    fn segment_smaller_than_max_message_is_refused() {
        let err = apply(&[
            ("mapedFileSizeCommitLog", "1048576"),
            ("maxMessageSize", "2097152"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("mapedFileSizeCommitLog"));
    }
}
