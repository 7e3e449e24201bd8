//! `controller.conf`: Apache's controller keys (the DLedger ones name the raft group,
//! its peers and this node; FerroMQ runs openraft over them whatever `controllerType` says).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// How a controller node runs; keys are Apache's (`controller.conf`).
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `controllerDLegerGroup`.
    pub group: String,
    /// `controllerDLegerPeers`: `n0-host:port;n1-host:port;…`, this node among them.
    pub peers: Vec<(String, String)>,
    /// `controllerDLegerSelfId`.
    pub self_id: String,
    /// `controllerStorePath`.
    pub store_path: PathBuf,
    /// `scanInactiveMasterInterval`, how often the leader looks for dead masters.
    pub scan_interval: Duration,
    /// `enableElectUncleanMaster`: elect a broker outside the in-sync set when nobody in
    /// it is alive (it may lack acknowledged messages).
    pub elect_unclean_master: bool,
    /// `notifyBrokerRoleChanged`.
    pub notify_broker_role_changed: bool,
}

/// The keys a controller reads from `controller.conf`.
const CONTROLLER_KEYS: &[&str] = &[
    "controllerDLegerGroup",
    "controllerDLegerPeers",
    "controllerDLegerSelfId",
    "controllerStorePath",
    "scanInactiveMasterInterval",
    "enableElectUncleanMaster",
    "notifyBrokerRoleChanged",
];

/// Every key a `controller.conf` or `namesrv.conf` may hold (a name server may embed a
/// controller): for tools that map other names onto keys, such as `FERROMQ_*` variables.
pub fn key_names() -> impl Iterator<Item = &'static str> {
    CONTROLLER_KEYS
        .iter()
        .chain(NAMESRV_KEYS)
        .chain(ACCEPTED_WITHOUT_EFFECT)
        .copied()
}

impl ControllerConfig {
    /// A single node on `addr`, storing under `store_path`.
    pub fn single(addr: &str, store_path: PathBuf) -> Self {
        ControllerConfig {
            group: "FerroMQController".into(),
            peers: vec![("n0".into(), addr.into())],
            self_id: "n0".into(),
            store_path,
            scan_interval: Duration::from_secs(1),
            elect_unclean_master: false,
            notify_broker_role_changed: true,
        }
    }

    /// Parses `controllerDLegerPeers`.
    pub fn parse_peers(value: &str) -> Result<Vec<(String, String)>, String> {
        let peers: Result<Vec<(String, String)>, String> = value
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (id, addr) = p
                    .split_once('-')
                    .ok_or_else(|| format!("peer '{p}' is not id-host:port"))?;
                let ok = addr
                    .rsplit_once(':')
                    .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
                if id.is_empty() || !ok {
                    return Err(format!("peer '{p}' is not id-host:port"));
                }
                Ok((id.to_string(), addr.to_string()))
            })
            .collect();
        let peers = peers?;
        if peers.is_empty() {
            return Err("no peers".into());
        }
        let ids: BTreeSet<&String> = peers.iter().map(|(id, _)| id).collect();
        if ids.len() != peers.len() {
            return Err("peer ids repeat".into());
        }
        Ok(peers)
    }

    pub(crate) fn raft_id(&self, id: &str) -> u64 {
        self.peers
            .iter()
            .position(|(p, _)| p == id)
            .map_or(u64::MAX, |i| i as u64)
    }

    /// This node's address, where it listens.
    pub fn self_addr(&self) -> Option<&str> {
        self.peers
            .iter()
            .find(|(id, _)| *id == self.self_id)
            .map(|(_, a)| a.as_str())
    }
}

/// Keys of Apache's controller FerroMQ accepts and ignores.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "controllerType",
    "controllerThreadPoolNums",
    "controllerRequestThreadPoolQueueCapacity",
    "mappedFileSize",
    "isProcessReadEvent",
    "scanNotActiveBrokerInterval",
    "electMasterMaxRetryCount",
    "configBlackList",
    "configStorePath",
    "rocketmqHome",
    "metricsExporterType",
];

/// Keys a name server reads for itself, which a controller embedded in it skips.
const NAMESRV_KEYS: &[&str] = &["listenPort", "kvConfigPath", "enableControllerInNamesrv"];

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "invalid value '{v}' for {key}: expected true or false"
        )),
    }
}

impl ControllerConfig {
    /// Reads the controller keys of a properties file over the defaults (a single node on
    /// 127.0.0.1:9878 storing under `default_store`). Returns warnings for unknown keys;
    /// refuses bad values and a `controllerDLegerSelfId` that is not a peer.
    pub fn from_properties(
        map: &HashMap<String, String>,
        default_store: PathBuf,
    ) -> Result<(Self, Vec<String>), String> {
        let mut c = ControllerConfig::single("127.0.0.1:9878", default_store);
        let mut warnings = Vec::new();
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            let v = map[k].trim();
            match k.as_str() {
                "controllerDLegerGroup" if !v.is_empty() => c.group = v.to_string(),
                "controllerDLegerPeers" => {
                    c.peers = Self::parse_peers(v).map_err(|e| format!("invalid value '{v}' for controllerDLegerPeers: {e}"))?
                }
                "controllerDLegerSelfId" if !v.is_empty() => c.self_id = v.to_string(),
                "controllerStorePath" if !v.is_empty() => c.store_path = PathBuf::from(v),
                "scanInactiveMasterInterval" => {
                    let ms: u64 = v
                        .parse()
                        .ok()
                        .filter(|ms| (100..=600_000).contains(ms))
                        .ok_or_else(|| format!("invalid value '{v}' for scanInactiveMasterInterval: expected 100 to 600000 ms"))?;
                    c.scan_interval = Duration::from_millis(ms);
                }
                "enableElectUncleanMaster" => c.elect_unclean_master = parse_bool(k, v)?,
                "notifyBrokerRoleChanged" => c.notify_broker_role_changed = parse_bool(k, v)?,
                k if NAMESRV_KEYS.contains(&k) => {}
                k if ACCEPTED_WITHOUT_EFFECT.contains(&k) => warnings.push(format!(
                    "configuration key {k} is accepted for compatibility but has no effect in FerroMQ's controller"
                )),
                "controllerDLegerGroup" | "controllerDLegerSelfId" | "controllerStorePath" => {
                    return Err(format!("{k} must not be empty"))
                }
                k => warnings.push(format!("unknown configuration key {k} ignored")),
            }
        }
        if c.self_addr().is_none() {
            return Err(format!(
                "controllerDLegerSelfId {} is not among controllerDLegerPeers",
                c.self_id
            ));
        }
        Ok((c, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<(ControllerConfig, Vec<String>), String> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ControllerConfig::from_properties(&map, PathBuf::from("/tmp/c"))
    }

    #[test]
    fn apaches_three_node_keys_are_read() {
        let (c, warnings) = parse(&[
            ("controllerDLegerGroup", "group1"),
            (
                "controllerDLegerPeers",
                "n0-127.0.0.1:9878;n1-127.0.0.1:9868;n2-127.0.0.1:9858",
            ),
            ("controllerDLegerSelfId", "n1"),
            ("controllerStorePath", "/data/ctl"),
            ("enableElectUncleanMaster", "false"),
            ("controllerType", "DLedger"),
        ])
        .unwrap();
        assert_eq!(c.self_addr(), Some("127.0.0.1:9868"));
        assert_eq!(c.raft_id("n2"), 2);
        assert_eq!(c.store_path, PathBuf::from("/data/ctl"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn bad_values_and_a_self_outside_the_peers_are_refused() {
        for (pairs, needle) in [
            (
                vec![("controllerDLegerPeers", "n0:127.0.0.1:9878")],
                "controllerDLegerPeers",
            ),
            (
                vec![(
                    "controllerDLegerPeers",
                    "n0-127.0.0.1:9878;n0-127.0.0.1:9879",
                )],
                "repeat",
            ),
            (vec![("controllerDLegerSelfId", "n5")], "not among"),
            (
                vec![("enableElectUncleanMaster", "yes")],
                "enableElectUncleanMaster",
            ),
            (
                vec![("scanInactiveMasterInterval", "5")],
                "scanInactiveMasterInterval",
            ),
        ] {
            let err = parse(&pairs).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let (_, warnings) = parse(&[("noSuchKey", "1")]).unwrap();
        assert!(warnings[0].contains("noSuchKey"));
    }
}
