//! Access control compatible with Apache RocketMQ's plain ACL (`plain_acl.yml`): white
//! addresses, accounts with an access and secret key, admin flag, default and per-resource
//! permissions. Requests are verified by the signature the clients compute
//! ([`ferromq_protocol::acl`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use ferromq_protocol::acl::{signature, ACCESS_KEY, SIGNATURE};
use ferromq_protocol::body::HeartbeatData;
use ferromq_protocol::code::request;
use ferromq_protocol::RemotingCommand;
use serde::Deserialize;
use tracing::{info, warn};

use crate::topic::RETRY_GROUP_TOPIC_PREFIX;

/// Permission bits, as Apache's `Permission`.
pub const DENY: u8 = 1;
pub const ANY: u8 = 1 << 1;
pub const PUB: u8 = 1 << 2;
pub const SUB: u8 = 1 << 3;

/// How often the file is checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Codes only admin accounts may call: Apache's five, and FerroMQ's own mutating ones.
const ADMIN_CODES: [i32; 7] = [
    request::UPDATE_AND_CREATE_TOPIC,
    request::UPDATE_AND_CREATE_TOPIC_LIST,
    request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST,
    request::UPDATE_BROKER_CONFIG,
    request::DELETE_TOPIC_IN_BROKER,
    request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    request::DELETE_SUBSCRIPTIONGROUP,
];

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AclFile {
    #[serde(default)]
    global_white_remote_addresses: Vec<String>,
    #[serde(default)]
    accounts: Vec<AccountFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountFile {
    access_key: Scalar,
    secret_key: Scalar,
    #[serde(default)]
    white_remote_address: Option<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    default_topic_perm: Option<String>,
    #[serde(default)]
    default_group_perm: Option<String>,
    #[serde(default)]
    topic_perms: Vec<String>,
    #[serde(default)]
    group_perms: Vec<String>,
}

impl AclFile {
    /// An empty file is one without accounts.
    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(AclFile::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }
}

/// Keys may be written as numbers (`secretKey: 12345678`), as Apache's loader allows.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(i64),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Number(n) => n.to_string(),
        }
    }
}

struct Account {
    secret_key: String,
    white: Option<AddressPattern>,
    admin: bool,
    default_topic_perm: u8,
    default_group_perm: u8,
    /// Topics by name and groups as `%RETRY%group`, as Apache keeps them.
    perms: HashMap<String, u8>,
}

/// One `plain_acl.yml` account, for the import into ACL 2.0.
pub struct MigratedAccount {
    pub access_key: String,
    pub secret_key: String,
    pub admin: bool,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    /// `(name, PERM)` pairs.
    pub topic_perms: Vec<(String, String)>,
    pub group_perms: Vec<(String, String)>,
}

/// A parsed `plain_acl.yml`.
pub struct PlainAcl {
    global_white: Vec<AddressPattern>,
    accounts: HashMap<String, Account>,
}

/// `PUB`, `SUB`, `PUB|SUB`/`SUB|PUB`; anything else denies, as in Apache.
fn parse_perm(s: Option<&str>) -> u8 {
    match s.map(str::trim) {
        Some("PUB") => PUB,
        Some("SUB") => SUB,
        Some("PUB|SUB") | Some("SUB|PUB") => PUB | SUB,
        _ => DENY,
    }
}

/// Apache's `Permission.checkPermission`.
fn permitted(needed: u8, owned: u8) -> bool {
    if owned & DENY != 0 {
        return false;
    }
    if needed & ANY != 0 {
        return owned & (PUB | SUB) != 0;
    }
    needed & owned != 0
}

impl PlainAcl {
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| AclError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file = AclFile::parse(text)?;
        let global_white = file
            .global_white_remote_addresses
            .iter()
            .filter(|a| !a.trim().is_empty())
            .map(|a| AddressPattern::parse(a))
            .collect::<Result<_, _>>()?;
        let mut accounts = HashMap::new();
        for a in file.accounts {
            let (access_key, secret_key) = (a.access_key.into_string(), a.secret_key.into_string());
            if access_key.len() < 7 || secret_key.len() < 7 {
                return Err(format!(
                    "the accessKey={access_key} and its secretKey must be at least 7 characters"
                ));
            }
            let white = match a.white_remote_address.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(p) => Some(AddressPattern::parse(p)?),
            };
            let mut perms = HashMap::new();
            for (entries, prefix) in [
                (&a.topic_perms, ""),
                (&a.group_perms, RETRY_GROUP_TOPIC_PREFIX),
            ] {
                for entry in entries {
                    let (name, perm) = entry.split_once('=').ok_or_else(|| {
                        format!("permission entry {entry:?} of {access_key} is not name=PERM")
                    })?;
                    perms.insert(format!("{prefix}{}", name.trim()), parse_perm(Some(perm)));
                }
            }
            let account = Account {
                secret_key,
                white,
                admin: a.admin,
                default_topic_perm: parse_perm(a.default_topic_perm.as_deref()),
                default_group_perm: parse_perm(a.default_group_perm.as_deref()),
                perms,
            };
            // The first account with a key wins, as in Apache.
            accounts.entry(access_key).or_insert(account);
        }
        Ok(PlainAcl {
            global_white,
            accounts,
        })
    }

    /// The accounts of a `plain_acl.yml` as ACL 2.0's import reads them (Apache's
    /// `AuthMigrator`): permission entries that are not `name=PERM` are skipped.
    pub fn accounts_for_migration(text: &str) -> Result<Vec<MigratedAccount>, String> {
        let file = AclFile::parse(text)?;
        let split = |entries: Vec<String>| {
            entries
                .iter()
                .filter_map(|e| e.split_once('='))
                .map(|(name, perm)| (name.trim().to_string(), perm.trim().to_string()))
                .collect()
        };
        Ok(file
            .accounts
            .into_iter()
            .map(|a| MigratedAccount {
                access_key: a.access_key.into_string(),
                secret_key: a.secret_key.into_string(),
                admin: a.admin,
                default_topic_perm: a.default_topic_perm,
                default_group_perm: a.default_group_perm,
                topic_perms: split(a.topic_perms),
                group_perms: split(a.group_perms),
            })
            .collect())
    }

    /// Checks a request from `ip`; the error is the refusal's reason.
    pub fn check(&self, req: &RemotingCommand, ip: IpAddr) -> Result<(), String> {
        let signed = |account: &Account| {
            req.field(SIGNATURE) == Some(signature(req, &account.secret_key).as_str())
        };
        self.verify(ip, req.field(ACCESS_KEY), signed, |account, access_key| {
            if ADMIN_CODES.contains(&req.code) && !account.admin {
                return Err(format!(
                    "Need admin permission for request code={}, but accessKey={access_key} is not",
                    req.code
                ));
            }
            Self::check_resources(account, access_key, &needed_permissions(req)?)
        })
    }

    /// What every call goes through, whichever front: a white address passes; else the
    /// access key's account, its own white address, the signature (`signed` checks it with
    /// the account's secret key), then `then`.
    fn verify(
        &self,
        ip: IpAddr,
        access_key: Option<&str>,
        signed: impl FnOnce(&Account) -> bool,
        then: impl FnOnce(&Account, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.global_white.iter().any(|p| p.matches(ip)) {
            return Ok(());
        }
        let Some(access_key) = access_key else {
            return Err("No accessKey is configured".into());
        };
        let Some(account) = self.accounts.get(access_key) else {
            return Err(format!("No acl config for {access_key}"));
        };
        if account.white.as_ref().is_some_and(|p| p.matches(ip)) {
            return Ok(());
        }
        if !signed(account) {
            return Err(format!("Check signature failed for accessKey={access_key}"));
        }
        then(account, access_key)
    }
}

impl PlainAcl {
    /// Whether `account` holds the permission each resource needs (topics by name, groups
    /// as `%RETRY%group`).
    fn check_resources(
        account: &Account,
        access_key: &str,
        resources: &[(String, u8)],
    ) -> Result<(), String> {
        for (resource, needed) in resources {
            let is_group = resource.starts_with(RETRY_GROUP_TOPIC_PREFIX);
            let owned = account.perms.get(resource).copied().unwrap_or(if is_group {
                account.default_group_perm
            } else {
                account.default_topic_perm
            });
            if !permitted(*needed, owned) {
                let (kind, name) = match resource.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) {
                    Some(group) => ("group", group),
                    None => ("topic", resource.as_str()),
                };
                return Err(format!(
                    "No permission for {kind}:{name} (accessKey={access_key})"
                ));
            }
        }
        Ok(())
    }

    /// Checks a 5.x client's gRPC call: its `authorization` header signed over its
    /// `x-mq-date-time`, then the permissions on the resources the call touches.
    ///
    /// # Errors
    /// Why the call is refused, in Apache's words where it has them.
    pub fn check_grpc(
        &self,
        authorization: Option<&str>,
        date_time: &str,
        resources: &[(String, u8)],
        ip: IpAddr,
    ) -> Result<(), String> {
        let signed_header = authorization.and_then(ferromq_protocol::acl::parse_grpc_authorization);
        let signed = |account: &Account| {
            signed_header.is_some_and(|(_, signature)| {
                ferromq_protocol::acl::grpc_signature(&account.secret_key, date_time)
                    .eq_ignore_ascii_case(signature)
            })
        };
        self.verify(
            ip,
            signed_header.map(|(key, _)| key),
            signed,
            |account, access_key| Self::check_resources(account, access_key, resources),
        )
    }
}

/// The resources a request touches and the permission each needs (Apache's
/// `PlainAccessValidator.parse`). Codes not listed need only a valid signature.
fn needed_permissions(req: &RemotingCommand) -> Result<Vec<(String, u8)>, String> {
    let retry = |field: &str| {
        req.field(field)
            .map(|g| (format!("{RETRY_GROUP_TOPIC_PREFIX}{g}"), SUB))
    };
    let topic = |field: &str, perm: u8| req.field(field).map(|t| (t.to_string(), perm));
    let send = |topic_key: &str, group_key: &str| match req.field(topic_key) {
        Some(t) if t.starts_with(RETRY_GROUP_TOPIC_PREFIX) => retry(group_key),
        Some(t) => Some((t.to_string(), PUB)),
        None => None,
    };
    let needed = match req.code {
        request::SEND_MESSAGE => vec![send("topic", "group")],
        request::SEND_MESSAGE_V2 => vec![send("b", "a")],
        request::CONSUMER_SEND_MSG_BACK => vec![retry("group")],
        request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => {
            vec![topic("topic", SUB), retry("consumerGroup")]
        }
        request::QUERY_MESSAGE => vec![topic("topic", SUB)],
        request::UNREGISTER_CLIENT | request::GET_CONSUMER_LIST_BY_GROUP => {
            vec![retry("consumerGroup")]
        }
        request::UPDATE_CONSUMER_OFFSET => vec![retry("consumerGroup"), topic("topic", SUB)],
        request::HEART_BEAT => {
            let data: HeartbeatData = serde_json::from_slice(&req.body)
                .map_err(|e| format!("invalid heartbeat body: {e}"))?;
            let mut needed = Vec::new();
            for c in data.consumer_data_set {
                needed.push(Some((
                    format!("{RETRY_GROUP_TOPIC_PREFIX}{}", c.group_name),
                    SUB,
                )));
                for s in c.subscription_data_set {
                    needed.push(Some((s.topic, SUB)));
                }
            }
            needed
        }
        _ => vec![],
    };
    Ok(needed.into_iter().flatten().collect())
}

/// A white-address entry: `*`, an exact address, a comma list, `a.b.c.{1,2}`, or one
/// wildcard or range segment (`192.168.0.*`, `10.1.1-5.*`, `192.168.1.1-100`).
#[derive(Debug, Clone, PartialEq)]
enum AddressPattern {
    Any,
    Exact(Vec<IpAddr>),
    /// Per IPv4 octet: the inclusive range it must fall in.
    Octets([(u8, u8); 4]),
}

impl AddressPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bad = || format!("invalid white address {text:?}");
        if t == "*" || t == "*.*.*.*" || t == "*:*:*:*:*:*:*:*" {
            return Ok(AddressPattern::Any);
        }
        if let Some((prefix, set)) = t.rsplit_once('.').filter(|(_, last)| last.starts_with('{')) {
            let set = set
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .ok_or_else(bad)?;
            let exact = set
                .split(',')
                .map(|last| {
                    format!("{prefix}.{}", last.trim())
                        .parse::<IpAddr>()
                        .map_err(|_| bad())
                })
                .collect::<Result<_, _>>()?;
            return Ok(AddressPattern::Exact(exact));
        }
        if t.contains(',') {
            let exact = t
                .split(',')
                .map(|a| a.trim().parse::<IpAddr>().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            return Ok(AddressPattern::Exact(exact));
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(AddressPattern::Exact(vec![ip]));
        }
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 4 {
            return Err(bad());
        }
        let mut octets = [(0u8, 255u8); 4];
        for (slot, part) in octets.iter_mut().zip(&parts) {
            *slot = match *part {
                "*" => (0, 255),
                p => match p.split_once('-') {
                    Some((lo, hi)) => {
                        let (lo, hi) = (
                            lo.parse().map_err(|_| bad())?,
                            hi.parse().map_err(|_| bad())?,
                        );
                        if lo > hi {
                            return Err(bad());
                        }
                        (lo, hi)
                    }
                    None => {
                        let v = p.parse().map_err(|_| bad())?;
                        (v, v)
                    }
                },
            };
        }
        Ok(AddressPattern::Octets(octets))
    }

    fn matches(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self {
            AddressPattern::Any => true,
            AddressPattern::Exact(list) => list.contains(&ip),
            AddressPattern::Octets(ranges) => match ip {
                IpAddr::V4(v4) => v4
                    .octets()
                    .iter()
                    .zip(ranges)
                    .all(|(o, (lo, hi))| (lo..=hi).contains(&o)),
                IpAddr::V6(_) => false,
            },
        }
    }
}

/// The ACL in force, reloaded when its file changes.
pub struct AclService {
    path: PathBuf,
    current: RwLock<(Arc<PlainAcl>, Option<SystemTime>)>,
}

impl AclService {
    /// Loads the file; a missing or invalid file is an error at start.
    pub fn open(path: &Path) -> Result<Self, AclError> {
        let acl = PlainAcl::load(path)?;
        info!(path = %path.display(), accounts = acl.accounts.len(), "ACL enabled");
        Ok(AclService {
            path: path.to_path_buf(),
            current: RwLock::new((Arc::new(acl), modified(path))),
        })
    }

    pub fn check(&self, req: &RemotingCommand, ip: IpAddr) -> Result<(), String> {
        let acl = self.current.read().expect("acl lock").0.clone();
        acl.check(req, ip)
    }

    /// See [`PlainAcl::check_grpc`].
    ///
    /// # Errors
    /// Why the call is refused.
    pub fn check_grpc(
        &self,
        authorization: Option<&str>,
        date_time: &str,
        resources: &[(String, u8)],
        ip: IpAddr,
    ) -> Result<(), String> {
        let acl = self.current.read().expect("acl lock").0.clone();
        acl.check_grpc(authorization, date_time, resources, ip)
    }

    /// Reloads the file if it changed; a bad new version is logged and the old one kept.
    pub fn reload_if_changed(&self) {
        let now = modified(&self.path);
        if now == self.current.read().expect("acl lock").1 {
            return;
        }
        match PlainAcl::load(&self.path) {
            Ok(acl) => {
                info!(path = %self.path.display(), accounts = acl.accounts.len(), "ACL reloaded");
                *self.current.write().expect("acl lock") = (Arc::new(acl), now);
            }
            Err(e) => {
                warn!(error = %e, "ACL file changed but cannot be used; keeping the previous one");
                self.current.write().expect("acl lock").1 = now;
            }
        }
    }

    pub async fn watch(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RELOAD_CHECK) => self.reload_if_changed(),
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*

accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB

  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    admin: true
"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn signed(mut req: RemotingCommand, ak: &str, sk: &str) -> RemotingCommand {
        ferromq_protocol::acl::sign(&mut req, ak, sk);
        req
    }

    #[test]
    fn apache_sample_file_grants_and_refuses_as_apache_does() {
        let acl = PlainAcl::parse(SAMPLE).unwrap();
        let client = ip("127.0.0.1");
        let send = |topic: &str| RemotingCommand::request(10).with_field("topic", topic);
        assert!(acl
            .check(&signed(send("topicB"), "RocketMQ", "12345678"), client)
            .is_ok());
        let denied = acl.check(&signed(send("topicA"), "RocketMQ", "12345678"), client);
        assert!(denied.unwrap_err().contains("topic:topicA"));
        // Default topic permission DENY covers topics not listed; SUB alone cannot publish.
        assert!(acl
            .check(&signed(send("other"), "RocketMQ", "12345678"), client)
            .is_err());
        assert!(acl
            .check(&signed(send("topicC"), "RocketMQ", "12345678"), client)
            .is_err());
        // Wrong secret, unknown key, no key.
        let wrong = acl.check(&signed(send("topicB"), "RocketMQ", "wrong-secret"), client);
        assert!(wrong.unwrap_err().contains("Check signature failed"));
        assert!(acl
            .check(&signed(send("topicB"), "nobody-here", "12345678"), client)
            .unwrap_err()
            .contains("No acl config"));
        assert!(acl
            .check(&send("topicB"), client)
            .unwrap_err()
            .contains("No accessKey"));
        // A tampered body breaks the signature.
        let mut tampered = signed(send("topicB").with_body(&b"a"[..]), "RocketMQ", "12345678");
        tampered.body = bytes::Bytes::from_static(b"b");
        assert!(acl.check(&tampered, client).is_err());
        // Pull needs SUB on the topic and on the group's retry topic.
        let pull = |topic: &str, group: &str| {
            RemotingCommand::request(11)
                .with_field("topic", topic)
                .with_field("consumerGroup", group)
        };
        assert!(acl
            .check(
                &signed(pull("topicC", "groupC"), "RocketMQ", "12345678"),
                client
            )
            .is_ok());
        assert!(acl
            .check(
                &signed(pull("topicC", "groupA"), "RocketMQ", "12345678"),
                client
            )
            .is_err());
        assert!(acl
            .check(
                &signed(pull("topicC", "unlisted"), "RocketMQ", "12345678"),
                client
            )
            .is_ok());
        // Admin codes need an admin account.
        let create =
            RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC).with_field("topic", "t");
        let refused = acl.check(&signed(create.clone(), "RocketMQ", "12345678"), client);
        assert!(refused.unwrap_err().contains("Need admin permission"));
        assert!(acl
            .check(&signed(create.clone(), "rocketmq2", "12345678"), client)
            .is_ok());
        // White addresses: global ones skip everything; an account's skips its checks.
        assert!(acl.check(&create, ip("192.168.0.9")).is_ok());
        assert!(acl
            .check(
                &signed(send("x"), "rocketmq2", "bad-secret"),
                ip("192.168.1.7")
            )
            .is_ok());
        assert!(acl
            .check(
                &signed(send("x"), "rocketmq2", "bad-secret"),
                ip("192.168.2.7")
            )
            .is_err());
    }

    #[test]
    fn the_shipped_sample_file_loads() {
        let acl = PlainAcl::parse(include_str!("../../../conf/plain_acl.yml")).unwrap();
        assert_eq!(acl.accounts.len(), 2);
        assert!(acl.global_white.is_empty());
    }

    #[test]
    fn white_address_patterns() {
        let m = |p: &str, a: &str| AddressPattern::parse(p).unwrap().matches(ip(a));
        assert!(m("*", "1.2.3.4"));
        assert!(m("192.168.1.1-100", "192.168.1.100"));
        assert!(!m("192.168.1.1-100", "192.168.1.101"));
        assert!(m("10.10.1-5.*", "10.10.3.200"));
        assert!(!m("10.10.1-5.*", "10.10.6.1"));
        assert!(m("192.168.1.{1,2,3}", "192.168.1.2"));
        assert!(!m("192.168.1.{1,2,3}", "192.168.1.4"));
        assert!(m("127.0.0.1,10.0.0.1", "10.0.0.1"));
        assert!(m("127.0.0.1", "::ffff:127.0.0.1"));
        assert!(m("::1", "::1"));
        for bad in [
            "300.1.1.1-2",
            "1.2.3",
            "a.b.c.d",
            "1.2.3.9-1",
            "1.2.3.{1,x}",
        ] {
            assert!(AddressPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(PlainAcl::parse("accounts: [").is_err());
        let short = "accounts:\n  - accessKey: abc\n    secretKey: 12345678\n";
        assert!(PlainAcl::parse(short).err().unwrap().contains("at least 7"));
        let entry =
            "accounts:\n  - accessKey: abcdefg\n    secretKey: 12345678\n    topicPerms: [nope]\n";
        assert!(PlainAcl::parse(entry).err().unwrap().contains("name=PERM"));
        let addr = "globalWhiteRemoteAddresses: [\"1.2.3\"]\n";
        assert!(PlainAcl::parse(addr)
            .err()
            .unwrap()
            .contains("white address"));
    }
}
