//! Broker configuration in Apache's `broker.conf` (Java properties) format.
//!
//! Keys are Apache's names. Unknown keys produce a warning naming them; a value that
//! does not parse stops start-up with the key, the value and what is allowed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferromq_store::FlushMode;

/// Apache keys that are accepted for compatibility but have no effect in FerroMQ.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "brokerIP2",
    "haListenPort",
    "brokerRole",
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
    "traceTopicEnable",
    "slaveReadEnable",
    "waitTimeMillsInSendQueue",
    "osPageCacheBusyTimeOutMills",
];

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
    /// `aclEnable`: check requests against the plain ACL file, default false.
    pub acl_enable: bool,
    /// `plainAclFile` (FerroMQ): the `plain_acl.yml` to use, default `conf/plain_acl.yml`
    /// (where Apache looks under ROCKETMQ_HOME). Reloaded when it changes.
    pub plain_acl_file: PathBuf,
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
    /// `timerMaxDelaySec`: how far ahead a timer message may be due, default 3 days.
    pub timer_max_delay_sec: u64,
    /// `serverChannelMaxIdleTimeSeconds`: a client completing no request for this long is
    /// disconnected, default 120.
    pub idle_timeout_secs: u64,
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
            max_connections: 10_000,
            acl_enable: false,
            tls_mode: None,
            tls_cert_path: None,
            tls_key_path: None,
            plain_acl_file: PathBuf::from("conf/plain_acl.yml"),
            enable_property_filter: false,
            timer_max_delay_sec: 3 * 24 * 3600,
            idle_timeout_secs: 120,
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
        let mut cfg = BrokerConfig::default();
        let warnings = cfg.apply(&map)?;
        Ok((cfg, warnings))
    }

    /// Applies key/value pairs. Returns warnings for unknown and ineffective keys.
    pub fn apply(&mut self, map: &HashMap<String, String>) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let v = map[key].trim();
            match key.as_str() {
                "brokerClusterName" => self.cluster_name = non_empty(key, v)?,
                "brokerName" => self.broker_name = non_empty(key, v)?,
                "brokerId" => self.broker_id = parse_num(key, v, 0i64, i64::MAX)?,
                "namesrvAddr" => self.namesrv_addrs = parse_addr_list(key, v)?,
                "listenPort" => self.listen_port = parse_num(key, v, 0u16, u16::MAX)?,
                "brokerIP1" => {
                    if v.is_empty() {
                        return Err(invalid(key, v, "an IP address or host name clients can reach"));
                    }
                    self.broker_ip1 = v.to_string();
                }
                "storePathRootDir" => self.store_root = PathBuf::from(non_empty(key, v)?),
                "storePathCommitLog" => self.store_commit_log = Some(PathBuf::from(non_empty(key, v)?)),
                "mapedFileSizeCommitLog" | "mappedFileSizeCommitLog" => {
                    self.commit_log_segment_bytes = parse_num(key, v, 64 * 1024u64, 1u64 << 40)?
                }
                "flushDiskType" => {
                    self.flush_mode = match v {
                        "ASYNC_FLUSH" => FlushMode::Async,
                        "SYNC_FLUSH" => FlushMode::Sync,
                        _ => return Err(invalid(key, v, "ASYNC_FLUSH or SYNC_FLUSH")),
                    }
                }
                "flushIntervalCommitLog" => self.flush_interval_ms = parse_num(key, v, 1u64, 60_000)?,
                "flushConsumerOffsetInterval" => self.flush_consumer_offset_interval_ms = parse_num(key, v, 10u64, 600_000)?,
                "syncFlushTimeout" => self.sync_flush_timeout_ms = parse_num(key, v, 1u64, 600_000)?,
                "diskSpaceWarningLevelRatio" => self.disk_space_warning_percent = parse_num(key, v, 1u32, 99)?,
                "autoCreateTopicEnable" => self.auto_create_topic = parse_bool(key, v)?,
                "autoCreateSubscriptionGroup" => self.auto_create_subscription_group = parse_bool(key, v)?,
                "defaultTopicQueueNums" => self.default_topic_queue_nums = parse_num(key, v, 1i32, 1024)?,
                "maxMessageSize" => self.max_message_size = parse_num(key, v, 1usize, 64 * 1024 * 1024)?,
                "fileReservedTime" => self.file_reserved_hours = parse_num(key, v, 1u64, 24 * 365 * 100)?,
                "deleteWhen" => {
                    let hours: Option<Vec<u32>> =
                        v.split(';').map(|h| h.trim().parse::<u32>().ok().filter(|h| *h < 24)).collect();
                    self.delete_when = hours.filter(|h| !h.is_empty()).ok_or_else(|| invalid(key, v, "hours 00-23 separated by ';'"))?;
                }
                "messageDelayLevel" => {
                    self.message_delay_levels_ms = parse_delay_levels(v)
                        .ok_or_else(|| invalid(key, v, "durations like '1s 5s 10s 1m 2h 1d' separated by spaces"))?
                }
                "transactionCheckInterval" => self.transaction_check_interval_ms = parse_num(key, v, 1u64, u64::MAX / 2)?,
                "transactionTimeOut" => self.transaction_timeout_ms = parse_num(key, v, 0u64, u64::MAX / 2)?,
                "transactionCheckMax" => self.transaction_check_max = parse_num(key, v, 1u32, 10_000)?,
                "registerNameServerPeriod" => {
                    self.register_name_server_period_ms = parse_num(key, v, 1u64, u64::MAX / 2)?.clamp(10_000, 60_000)
                }
                "serverChannelMaxIdleTimeSeconds" => self.idle_timeout_secs = parse_num(key, v, 1u64, 86_400)?,
                "timerMaxDelaySec" => self.timer_max_delay_sec = parse_num(key, v, 1u64, 366 * 24 * 3600)?,
                "enablePropertyFilter" => self.enable_property_filter = parse_bool(key, v)?,
                "tls.server.mode" => {
                    self.tls_mode = Some(v.parse().map_err(|e: String| invalid(key, v, &e))?)
                }
                "tls.server.certPath" => self.tls_cert_path = Some(PathBuf::from(non_empty(key, v)?)),
                "tls.server.keyPath" => self.tls_key_path = Some(PathBuf::from(non_empty(key, v)?)),
                "aclEnable" => self.acl_enable = parse_bool(key, v)?,
                "plainAclFile" => self.plain_acl_file = PathBuf::from(non_empty(key, v)?),
                "maxConnections" => self.max_connections = parse_num(key, v, 1usize, 1_000_000)?,
                k if ACCEPTED_WITHOUT_EFFECT.contains(&k) => {
                    warnings.push(format!("configuration key {k} is accepted for compatibility but has no effect in FerroMQ"))
                }
                k => warnings.push(format!("unknown configuration key {k} ignored")),
            }
        }
        let tls_wanted = !matches!(
            self.tls_mode,
            None | Some(ferromq_remoting::TlsMode::Disabled)
        );
        match (&self.tls_cert_path, &self.tls_key_path) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    "tls.server.certPath",
                    &self
                        .tls_cert_path
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string()),
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
        Ok(warnings)
    }

    /// The effective configuration as `broker.conf` lines, keys sorted.
    pub fn to_properties(&self) -> String {
        let flush = match self.flush_mode {
            FlushMode::Async => "ASYNC_FLUSH",
            FlushMode::Sync => "SYNC_FLUSH",
        };
        let levels: Vec<String> = self
            .message_delay_levels_ms
            .iter()
            .map(|ms| format!("{}s", ms / 1000))
            .collect();
        let pairs: Vec<(&str, String)> = vec![
            (
                "autoCreateSubscriptionGroup",
                self.auto_create_subscription_group.to_string(),
            ),
            ("autoCreateTopicEnable", self.auto_create_topic.to_string()),
            ("brokerClusterName", self.cluster_name.clone()),
            ("brokerIP1", self.broker_ip1.clone()),
            ("brokerId", self.broker_id.to_string()),
            ("brokerName", self.broker_name.clone()),
            (
                "defaultTopicQueueNums",
                self.default_topic_queue_nums.to_string(),
            ),
            (
                "deleteWhen",
                self.delete_when
                    .iter()
                    .map(|h| format!("{h:02}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            (
                "enablePropertyFilter",
                self.enable_property_filter.to_string(),
            ),
            ("fileReservedTime", self.file_reserved_hours.to_string()),
            ("flushDiskType", flush.to_string()),
            ("flushIntervalCommitLog", self.flush_interval_ms.to_string()),
            (
                "flushConsumerOffsetInterval",
                self.flush_consumer_offset_interval_ms.to_string(),
            ),
            (
                "diskSpaceWarningLevelRatio",
                self.disk_space_warning_percent.to_string(),
            ),
            ("listenPort", self.listen_port.to_string()),
            (
                "mapedFileSizeCommitLog",
                self.commit_log_segment_bytes.to_string(),
            ),
            ("maxConnections", self.max_connections.to_string()),
            ("aclEnable", self.acl_enable.to_string()),
            ("plainAclFile", self.plain_acl_file.display().to_string()),
            ("maxMessageSize", self.max_message_size.to_string()),
            ("messageDelayLevel", levels.join(" ")),
            ("namesrvAddr", self.namesrv_addrs.join(";")),
            ("storePathRootDir", self.store_root.display().to_string()),
            ("syncFlushTimeout", self.sync_flush_timeout_ms.to_string()),
            ("timerMaxDelaySec", self.timer_max_delay_sec.to_string()),
            (
                "transactionCheckInterval",
                self.transaction_check_interval_ms.to_string(),
            ),
            (
                "transactionCheckMax",
                self.transaction_check_max.to_string(),
            ),
            (
                "transactionTimeOut",
                self.transaction_timeout_ms.to_string(),
            ),
        ];
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
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
    fn unknown_keys_warn_by_name() {
        let (_, warnings) = apply(&[("noSuchKey", "1"), ("brokerRole", "ASYNC_MASTER")]).unwrap();
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
    fn segment_smaller_than_max_message_is_refused() {
        let err = apply(&[
            ("mapedFileSizeCommitLog", "1048576"),
            ("maxMessageSize", "2097152"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("mapedFileSizeCommitLog"));
    }
}
