//! ACL 2.0 (Apache RocketMQ 5.3+): users, their ACL policies, and the two checks each
//! request passes when enabled — authentication (`authenticationEnabled`: the clients' HMAC
//! signature, by user name and password) and authorization (`authorizationEnabled`: the
//! request's resources and actions against the user's policies; super users pass).
//!
//! Owns the users and policies tables (`<storePathRootDir>/config/auth/users.json` and
//! `acls.json`, replaced atomically on each change), the operations of codes 3001–3010,
//! the start-up users (`initAuthenticationUser`, `innerClientAuthenticationCredentials`),
//! and the one-time import of a plain ACL 1.0 file (`migrateAuthFromV1Enabled`).
//! Refusals carry Apache's messages, which name the user, the resource and the action.

pub mod model;
pub mod needs;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use ferromq_protocol::acl::{signature, ACCESS_KEY, SIGNATURE};
use ferromq_protocol::RemotingCommand;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use model::{
    parse_subject, subject_user, Acl, AclInfo, Action, Decision, NamePattern, Policy, PolicyEntry,
    PolicyType, Request, Resource, ResourceType, User, UserInfo, UserStatus, UserType,
};
pub use needs::Need;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading the ACL 2.0 tables: {0}")]
    Io(#[from] std::io::Error),
    #[error("{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("migrating the plain ACL file {path}: {reason}")]
    Migrate { path: PathBuf, reason: String },
}

/// The keys of `broker.conf` this module reads.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub authentication_enabled: bool,
    pub authorization_enabled: bool,
    /// `initAuthenticationUser`: `{"username":…,"password":…}`, created as a super user.
    pub init_user: Option<String>,
    /// `innerClientAuthenticationCredentials`: `{"accessKey":…,"secretKey":…}`, the broker's
    /// own clients (slaves syncing from their master); created as a super user.
    pub inner_credentials: Option<String>,
    /// Request codes that skip authentication (`authenticationWhitelist`, comma list).
    pub authentication_whitelist: Vec<String>,
    pub authorization_whitelist: Vec<String>,
    /// `migrateAuthFromV1Enabled`: import this plain ACL file's accounts at start.
    pub migrate_from: Option<PathBuf>,
    pub cluster_name: String,
}

/// An `innerClientAuthenticationCredentials` value.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InnerCredentials {
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Deserialize)]
struct InitUser {
    username: String,
    password: String,
}

/// A refused admin operation: Apache's response code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i32,
    pub remark: String,
}

fn no_permission(remark: impl Into<String>) -> Refusal {
    Refusal {
        code: ferromq_protocol::code::response::NO_PERMISSION,
        remark: remark.into(),
    }
}

#[derive(Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<UserInfo>,
}

#[derive(Default, Serialize, Deserialize)]
struct AclsFile {
    acls: Vec<AclInfo>,
}

#[derive(Default)]
struct Tables {
    users: BTreeMap<String, User>,
    /// By subject (`User:<name>`).
    acls: BTreeMap<String, Acl>,
}

pub struct AuthService {
    settings: AuthSettings,
    dir: PathBuf,
    tables: RwLock<Tables>,
}

impl AuthService {
    /// Loads the tables under `<store_root>/config/auth`, creates the start-up users and
    /// runs the ACL 1.0 import.
    ///
    /// # Errors
    /// A table cannot be read, or a start-up user or the file to import is malformed.
    pub fn open(store_root: &Path, settings: AuthSettings) -> Result<Self, AuthError> {
        let dir = store_root.join("config").join("auth");
        let mut tables = Tables::default();
        let users: UsersFile = crate::persist::load(&dir.join("users.json"))?.unwrap_or_default();
        for info in users.users {
            let user = stored_user(&info).map_err(|reason| AuthError::Config {
                key: "users.json",
                reason,
            })?;
            tables.users.insert(user.username.clone(), user);
        }
        let acls: AclsFile = crate::persist::load(&dir.join("acls.json"))?.unwrap_or_default();
        for info in acls.acls {
            let acl = model::acl_from_info(&info, "").map_err(|reason| AuthError::Config {
                key: "acls.json",
                reason,
            })?;
            tables.acls.insert(acl.subject.clone(), acl);
        }
        let service = AuthService {
            settings,
            dir,
            tables: RwLock::new(tables),
        };
        service.create_start_up_users()?;
        if let Some(path) = service.settings.migrate_from.clone() {
            service.migrate_plain_acl(&path)?;
        }
        if service.checks_enabled() {
            let tables = service.tables.read().expect("auth lock");
            info!(
                authentication = service.settings.authentication_enabled,
                authorization = service.settings.authorization_enabled,
                users = tables.users.len(),
                acls = tables.acls.len(),
                "ACL 2.0 enabled"
            );
        }
        Ok(service)
    }

    /// Whether requests are checked at all.
    pub fn checks_enabled(&self) -> bool {
        self.settings.authentication_enabled || self.settings.authorization_enabled
    }

    /// The credentials the broker's own clients sign with, when authentication is on.
    pub fn inner_credentials(&self) -> Option<InnerCredentials> {
        if !self.settings.authentication_enabled {
            return None;
        }
        self.settings
            .inner_credentials
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
    }

    fn create_start_up_users(&self) -> Result<(), AuthError> {
        let mut wanted = Vec::new();
        if let Some(text) = self
            .settings
            .init_user
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        {
            let u: InitUser = serde_json::from_str(text).map_err(|e| AuthError::Config {
                key: "initAuthenticationUser",
                reason: format!("{e}; expected {{\"username\":\"…\",\"password\":\"…\"}}"),
            })?;
            wanted.push(("initAuthenticationUser", u.username, u.password));
        }
        if let Some(text) = self
            .settings
            .inner_credentials
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        {
            let c: InnerCredentials =
                serde_json::from_str(text).map_err(|e| AuthError::Config {
                    key: "innerClientAuthenticationCredentials",
                    reason: format!("{e}; expected {{\"accessKey\":\"…\",\"secretKey\":\"…\"}}"),
                })?;
            wanted.push((
                "innerClientAuthenticationCredentials",
                c.access_key,
                c.secret_key,
            ));
        }
        for (key, username, password) in wanted {
            if username.trim().is_empty() || password.is_empty() {
                return Err(AuthError::Config {
                    key,
                    reason: "the user name and the password must not be empty".into(),
                });
            }
            // An existing user is left as it is, as Apache leaves it.
            if self.user(&username).is_none() {
                self.insert_user(User {
                    username,
                    password,
                    user_type: UserType::Super,
                    status: UserStatus::Enable,
                })?;
            }
        }
        Ok(())
    }

    /// Apache's `AuthMigrator`: each account not yet a user becomes one (admin accounts
    /// super users), its topic and group permissions a custom policy, its default
    /// permissions a default policy. White addresses are not carried over, as in Apache.
    fn migrate_plain_acl(&self, path: &Path) -> Result<(), AuthError> {
        let fail = |reason: String| AuthError::Migrate {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let accounts = crate::acl::PlainAcl::accounts_for_migration(&text).map_err(fail)?;
        let mut migrated = 0;
        for account in accounts {
            if self.user(&account.access_key).is_some() {
                continue;
            }
            self.insert_user(User {
                username: account.access_key.clone(),
                password: account.secret_key.clone(),
                user_type: if account.admin {
                    UserType::Super
                } else {
                    UserType::Normal
                },
                status: UserStatus::Enable,
            })?;
            let entry = |kind: ResourceType, pattern: NamePattern, perm: Option<&str>| {
                let perm = perm.map(str::trim).unwrap_or("");
                let actions = match perm {
                    "PUB" => vec![Action::Pub],
                    "SUB" => vec![Action::Sub],
                    "PUB|SUB" | "SUB|PUB" => vec![Action::Pub, Action::Sub],
                    _ => vec![Action::All],
                };
                PolicyEntry {
                    resource: Resource::Of(kind, pattern),
                    actions,
                    source_ips: Vec::new(),
                    decision: if perm.is_empty() || perm == "DENY" {
                        Decision::Deny
                    } else {
                        Decision::Allow
                    },
                }
            };
            let custom: Vec<PolicyEntry> = account
                .topic_perms
                .iter()
                .map(|(name, perm)| (ResourceType::Topic, name, perm))
                .chain(
                    account
                        .group_perms
                        .iter()
                        .map(|(name, perm)| (ResourceType::Group, name, perm)),
                )
                .map(|(kind, name, perm)| {
                    entry(kind, NamePattern::Literal(name.clone()), Some(perm))
                })
                .collect();
            let defaults: Vec<PolicyEntry> = [
                (ResourceType::Topic, &account.default_topic_perm),
                (ResourceType::Group, &account.default_group_perm),
            ]
            .into_iter()
            .filter_map(|(kind, perm)| {
                perm.as_deref()
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| entry(kind, NamePattern::Any, Some(p)))
            })
            .collect();
            let policies: Vec<Policy> = [
                (PolicyType::Custom, custom),
                (PolicyType::Default, defaults),
            ]
            .into_iter()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(policy_type, entries)| Policy {
                policy_type,
                entries,
            })
            .collect();
            if !policies.is_empty() {
                let subject = format!("User:{}", account.access_key);
                let mut tables = self.tables.write().expect("auth lock");
                tables
                    .acls
                    .insert(subject.clone(), Acl { subject, policies });
                self.persist_acls(&tables)?;
            }
            migrated += 1;
        }
        info!(path = %path.display(), migrated, "plain ACL accounts imported as ACL 2.0 users and policies");
        Ok(())
    }

    fn user(&self, name: &str) -> Option<User> {
        self.tables
            .read()
            .expect("auth lock")
            .users
            .get(name)
            .cloned()
    }

    fn insert_user(&self, user: User) -> std::io::Result<()> {
        let mut tables = self.tables.write().expect("auth lock");
        tables.users.insert(user.username.clone(), user);
        self.persist_users(&tables)
    }

    fn persist_users(&self, tables: &Tables) -> std::io::Result<()> {
        let file = UsersFile {
            users: tables.users.values().map(User::info).collect(),
        };
        crate::persist::store(&self.dir.join("users.json"), &file)
    }

    fn persist_acls(&self, tables: &Tables) -> std::io::Result<()> {
        let file = AclsFile {
            acls: tables.acls.values().map(Acl::info).collect(),
        };
        crate::persist::store(&self.dir.join("acls.json"), &file)
    }

    /// Checks a remoting request from `ip`: its signature, then its resources. The error is
    /// Apache's message for the refusal (answered with NO_PERMISSION).
    pub fn check(&self, req: &RemotingCommand, ip: IpAddr) -> Result<(), String> {
        let code = req.code.to_string();
        let access_key = req.field(ACCESS_KEY);
        if self.settings.authentication_enabled
            && !self.settings.authentication_whitelist.contains(&code)
        {
            let user = self.authenticated_user(access_key)?;
            if !signature_matches(req, &user.password) {
                return Err("check signature failed.".into());
            }
        }
        if self.settings.authorization_enabled
            && !self.settings.authorization_whitelist.contains(&code)
        {
            let needs = needs::needs(req, &self.settings.cluster_name)
                .map_err(|e| format!("parse authorization context error: {e}"))?;
            self.authorize(access_key, &needs, ip)?;
        }
        Ok(())
    }

    /// Checks a 5.x client's gRPC call: the `authorization` header signed over
    /// `x-mq-date-time`, then each resource the call touches.
    ///
    /// # Errors
    /// Apache's message for the refusal.
    pub fn check_grpc(
        &self,
        authorization: Option<&str>,
        date_time: &str,
        needs: &[Need],
        ip: IpAddr,
    ) -> Result<(), String> {
        let signed = authorization.and_then(ferromq_protocol::acl::parse_grpc_authorization);
        let access_key = signed.map(|(ak, _)| ak);
        if self.settings.authentication_enabled {
            if authorization.is_some() && signed.is_none() {
                return Err("authentication header is incorrect.".into());
            }
            let user = self.authenticated_user(access_key)?;
            let expected = ferromq_protocol::acl::grpc_signature(&user.password, date_time);
            if !signed.is_some_and(|(_, sig)| sig.eq_ignore_ascii_case(&expected)) {
                return Err("check signature failed.".into());
            }
        }
        if self.settings.authorization_enabled {
            self.authorize(access_key, needs, ip)?;
        }
        Ok(())
    }

    fn authenticated_user(&self, access_key: Option<&str>) -> Result<User, String> {
        let name = access_key
            .filter(|k| !k.is_empty())
            .ok_or("username cannot be null.")?;
        let user = self
            .user(name)
            .ok_or_else(|| format!("User:{name} is not found."))?;
        if user.status == UserStatus::Disable {
            return Err(format!("User:{name} is disabled."));
        }
        Ok(user)
    }

    /// Apache's `UserAuthorizationHandler` then `AclAuthorizationHandler`, for each need.
    fn authorize(
        &self,
        access_key: Option<&str>,
        needs: &[Need],
        ip: IpAddr,
    ) -> Result<(), String> {
        if needs.is_empty() {
            return Ok(());
        }
        let tables = self.tables.read().expect("auth lock");
        let name = access_key.filter(|k| !k.is_empty()).ok_or_else(|| {
            format!(
                "the request carries no AccessKey, so no user may access {}",
                resource_key(&needs[0])
            )
        })?;
        let user = tables
            .users
            .get(name)
            .ok_or_else(|| format!("User:{name} not found."))?;
        if user.status == UserStatus::Disable {
            return Err(format!("User:{name} is disabled."));
        }
        if user.user_type == UserType::Super {
            return Ok(());
        }
        let subject = format!("User:{name}");
        let source = ip.to_canonical().to_string();
        for need in needs {
            // Apache's message, then the action it needed, which Apache's leaves out.
            let deny = |detail: &str| {
                let actions: Vec<&str> = need.actions.iter().map(|a| a.name()).collect();
                format!(
                    "{subject} has no permission to access {} from {source}, {detail} The request needs {}.",
                    resource_key(need),
                    actions.join(" or ")
                )
            };
            let acl = tables
                .acls
                .get(&subject)
                .ok_or_else(|| deny("no matched policies."))?;
            let request = Request {
                resource: (need.kind, &need.name),
                actions: need.actions,
                source_ip: Some(ip),
            };
            match acl.deciding_entry(&request) {
                None => return Err(deny("no matched policies.")),
                Some(e) if e.decision == Decision::Deny => {
                    return Err(deny("the decision is deny."))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether the caller named by a request's `AccessKey` may manage super users: any
    /// caller when the request is unsigned (authentication off), else super users only.
    fn caller_is_not_super(&self, access_key: Option<&str>) -> Result<bool, Refusal> {
        let Some(name) = access_key.filter(|k| !k.is_empty()) else {
            return Ok(false);
        };
        let user = self
            .user(name)
            .ok_or_else(|| no_permission(format!("User:{name} is not found")))?;
        Ok(user.user_type != UserType::Super)
    }

    /// AUTH_CREATE_USER (3001).
    pub fn create_user(
        &self,
        caller: Option<&str>,
        username: &str,
        info: UserInfo,
    ) -> Result<(), Refusal> {
        let user_type = parse_user_type(info.user_type.as_deref())?.unwrap_or(UserType::Normal);
        if user_type == UserType::Super && self.caller_is_not_super(caller)? {
            return Err(system_error(
                "The super user can only be create by super user",
            ));
        }
        let password = info
            .password
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| no_permission("password can not be blank"))?;
        let status = parse_user_status(info.user_status.as_deref())?.unwrap_or(UserStatus::Enable);
        let mut tables = self.tables.write().expect("auth lock");
        if tables.users.contains_key(username) {
            return Err(no_permission("The user is existed"));
        }
        tables.users.insert(
            username.to_string(),
            User {
                username: username.to_string(),
                password,
                user_type,
                status,
            },
        );
        self.persist_users(&tables).map_err(io_refusal)
    }

    /// AUTH_UPDATE_USER (3002): the fields given replace the stored ones.
    pub fn update_user(
        &self,
        caller: Option<&str>,
        username: &str,
        info: UserInfo,
    ) -> Result<(), Refusal> {
        let user_type = parse_user_type(info.user_type.as_deref())?;
        let status = parse_user_status(info.user_status.as_deref())?;
        let caller_not_super = self.caller_is_not_super(caller)?;
        if user_type == Some(UserType::Super) && caller_not_super {
            return Err(system_error(
                "The super user can only be update by super user",
            ));
        }
        let mut tables = self.tables.write().expect("auth lock");
        let user = tables
            .users
            .get_mut(username)
            .ok_or_else(|| no_permission("The user is not exist"))?;
        if user.user_type == UserType::Super && caller_not_super {
            return Err(no_permission(
                "The super user can only be update by super user",
            ));
        }
        if let Some(p) = info.password.filter(|p| !p.trim().is_empty()) {
            user.password = p;
        }
        if let Some(t) = user_type {
            user.user_type = t;
        }
        if let Some(s) = status {
            user.status = s;
        }
        self.persist_users(&tables).map_err(io_refusal)
    }

    /// AUTH_DELETE_USER (3003): the user and its policies; a missing user is no error.
    pub fn delete_user(&self, caller: Option<&str>, username: &str) -> Result<(), Refusal> {
        let caller_not_super = self.caller_is_not_super(caller)?;
        let mut tables = self.tables.write().expect("auth lock");
        let Some(user) = tables.users.get(username) else {
            return Ok(());
        };
        if user.user_type == UserType::Super && caller_not_super {
            return Err(no_permission(
                "The super user can only be update by super user",
            ));
        }
        tables.users.remove(username);
        let had_acl = tables.acls.remove(&format!("User:{username}")).is_some();
        self.persist_users(&tables).map_err(io_refusal)?;
        if had_acl {
            self.persist_acls(&tables).map_err(io_refusal)?;
        }
        Ok(())
    }

    /// AUTH_GET_USER (3004).
    pub fn get_user(&self, username: &str) -> Option<UserInfo> {
        self.user(username).map(|u| u.info())
    }

    /// AUTH_LIST_USER (3005): users whose name contains `filter`.
    pub fn list_users(&self, filter: Option<&str>) -> Vec<UserInfo> {
        let tables = self.tables.read().expect("auth lock");
        tables
            .users
            .values()
            .filter(|u| filter.is_none_or(|f| f.trim().is_empty() || u.username.contains(f)))
            .map(User::info)
            .collect()
    }

    /// AUTH_CREATE_ACL and AUTH_UPDATE_ACL (3006, 3007): both merge into the subject's
    /// policies, as in Apache.
    pub fn put_acl(&self, subject: &str, info: &AclInfo) -> Result<(), Refusal> {
        let acl = model::acl_from_info(info, subject).map_err(no_permission)?;
        let mut tables = self.tables.write().expect("auth lock");
        if !tables.users.contains_key(subject_user(&acl.subject)) {
            return Err(no_permission(format!(
                "The subject of {} is not exist.",
                acl.subject
            )));
        }
        match tables.acls.get_mut(&acl.subject) {
            Some(old) => old.merge(acl.policies),
            None => {
                tables.acls.insert(acl.subject.clone(), acl);
            }
        }
        self.persist_acls(&tables).map_err(io_refusal)
    }

    /// AUTH_DELETE_ACL (3008): one resource's entry (of the custom policy unless named), or
    /// the whole ACL when no resource is given.
    pub fn delete_acl(
        &self,
        subject: &str,
        policy_type: Option<&str>,
        resource: Option<&str>,
    ) -> Result<(), Refusal> {
        let subject = parse_subject(subject).map_err(no_permission)?;
        let policy_type = match policy_type.filter(|t| !t.trim().is_empty()) {
            None => PolicyType::Custom,
            Some(t) => PolicyType::parse(t).ok_or_else(|| {
                no_permission(format!(
                    "The policy type {t:?} is not one of {}.",
                    PolicyType::names()
                ))
            })?,
        };
        let resource = resource
            .filter(|r| !r.trim().is_empty())
            .map(Resource::parse)
            .transpose()
            .map_err(no_permission)?;
        let mut tables = self.tables.write().expect("auth lock");
        if !tables.users.contains_key(subject_user(&subject)) {
            return Err(no_permission("The subject is not exist."));
        }
        let acl = tables
            .acls
            .get_mut(&subject)
            .ok_or_else(|| no_permission("The acl is not exist."))?;
        match resource {
            Some(r) => {
                acl.remove(policy_type, &r);
                if acl.policies.is_empty() {
                    tables.acls.remove(&subject);
                }
            }
            None => {
                tables.acls.remove(&subject);
            }
        }
        self.persist_acls(&tables).map_err(io_refusal)
    }

    /// AUTH_GET_ACL (3009).
    pub fn get_acl(&self, subject: &str) -> Result<Option<AclInfo>, Refusal> {
        let subject = parse_subject(subject).map_err(no_permission)?;
        let tables = self.tables.read().expect("auth lock");
        if !tables.users.contains_key(subject_user(&subject)) {
            return Err(no_permission("The subject is not exist."));
        }
        Ok(tables.acls.get(&subject).map(Acl::info))
    }

    /// AUTH_LIST_ACL (3010): subjects containing `subject_filter`, and of their entries those
    /// whose resource key contains `resource_filter` (Apache's `LocalAuthorizationMetadataProvider`).
    pub fn list_acls(
        &self,
        subject_filter: Option<&str>,
        resource_filter: Option<&str>,
    ) -> Vec<AclInfo> {
        let blank = |f: &Option<&str>| f.is_none_or(|f| f.trim().is_empty());
        let tables = self.tables.read().expect("auth lock");
        let mut out = Vec::new();
        for (subject, acl) in &tables.acls {
            if !blank(&subject_filter) && !subject.contains(subject_filter.unwrap_or_default()) {
                continue;
            }
            let mut acl = acl.clone();
            if let Some(filter) = resource_filter.filter(|f| !f.trim().is_empty()) {
                if !subject.contains(filter) {
                    for p in &mut acl.policies {
                        p.entries.retain(|e| e.resource.key().contains(filter));
                    }
                    acl.policies.retain(|p| !p.entries.is_empty());
                }
            }
            if !acl.policies.is_empty() {
                out.push(acl.info());
            }
        }
        out
    }
}

fn resource_key(need: &Need) -> String {
    Resource::Of(need.kind, NamePattern::Literal(need.name.clone())).key()
}

/// A stored user: the table holds every field.
fn stored_user(info: &UserInfo) -> Result<User, String> {
    Ok(User {
        username: info
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("a user without a name")?,
        password: info.password.clone().unwrap_or_default(),
        user_type: info
            .user_type
            .as_deref()
            .and_then(UserType::parse)
            .unwrap_or(UserType::Normal),
        status: info
            .user_status
            .as_deref()
            .and_then(UserStatus::parse)
            .unwrap_or(UserStatus::Enable),
    })
}

fn parse_user_type(text: Option<&str>) -> Result<Option<UserType>, Refusal> {
    match text.filter(|t| !t.trim().is_empty()) {
        None => Ok(None),
        Some(t) => UserType::parse(t).map(Some).ok_or_else(|| {
            no_permission(format!(
                "The user type {t:?} is not one of {}.",
                UserType::names()
            ))
        }),
    }
}

fn parse_user_status(text: Option<&str>) -> Result<Option<UserStatus>, Refusal> {
    match text.filter(|t| !t.trim().is_empty()) {
        None => Ok(None),
        Some(t) => UserStatus::parse(t).map(Some).ok_or_else(|| {
            no_permission(format!(
                "The user status {t:?} is not one of {}.",
                UserStatus::names()
            ))
        }),
    }
}

fn system_error(remark: &str) -> Refusal {
    Refusal {
        code: ferromq_protocol::code::response::SYSTEM_ERROR,
        remark: remark.into(),
    }
}

fn io_refusal(e: std::io::Error) -> Refusal {
    warn!(error = %e, "writing the ACL 2.0 tables failed");
    Refusal {
        code: ferromq_protocol::code::response::SYSTEM_ERROR,
        remark: format!("writing the ACL 2.0 tables failed: {e}"),
    }
}

/// Whether `req` is signed with `secret`. Clients newer than 4.9.3 sign
/// `_UNIQUE_KEY_QUERY` and older ones add it after signing, which Apache tells apart by
/// the request's version; both forms are accepted.
fn signature_matches(req: &RemotingCommand, secret: &str) -> bool {
    let Some(given) = req.field(SIGNATURE) else {
        return false;
    };
    if signature(req, secret) == given {
        return true;
    }
    req.field(UNIQUE_KEY_QUERY).is_some()
        && ferromq_protocol::acl::signature_with_all_fields(req, secret) == given
}

const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

#[cfg(test)]
mod tests {
    use super::*;

    fn service(settings: AuthSettings) -> (tempfile::TempDir, AuthService) {
        let dir = tempfile::tempdir().unwrap();
        let s = AuthService::open(dir.path(), settings).unwrap();
        (dir, s)
    }

    fn on() -> AuthSettings {
        AuthSettings {
            authentication_enabled: true,
            authorization_enabled: true,
            init_user: Some(r#"{"username":"root","password":"root-secret"}"#.into()),
            cluster_name: "DefaultCluster".into(),
            ..AuthSettings::default()
        }
    }

    fn signed(mut req: RemotingCommand, ak: &str, sk: &str) -> RemotingCommand {
        ferromq_protocol::acl::sign(&mut req, ak, sk);
        req
    }

    fn send(topic: &str) -> RemotingCommand {
        RemotingCommand::request(ferromq_protocol::code::request::SEND_MESSAGE_V2)
            .with_field("a", "pg")
            .with_field("b", topic)
    }

    fn user(name: &str) -> UserInfo {
        UserInfo {
            password: Some(format!("{name}-secret")),
            ..UserInfo::default()
        }
    }

    fn allow(resource: &str, actions: &[&str]) -> AclInfo {
        AclInfo {
            subject: None,
            policies: Some(vec![model::PolicyInfo {
                policy_type: None,
                entries: Some(vec![model::PolicyEntryInfo {
                    resource: Some(resource.into()),
                    actions: Some(actions.iter().map(|a| a.to_string()).collect()),
                    source_ips: None,
                    decision: Some("Allow".into()),
                }]),
            }]),
        }
    }

    #[test]
    fn signed_requests_pass_by_policy_and_refusals_name_user_resource_and_source() {
        let (_dir, auth) = service(on());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        auth.create_user(Some("root"), "alice", user("alice"))
            .unwrap();
        auth.put_acl("User:alice", &allow("Topic:orders", &["Pub"]))
            .unwrap();

        assert_eq!(
            auth.check(&signed(send("orders"), "alice", "alice-secret"), ip),
            Ok(())
        );
        let denied = auth
            .check(&signed(send("payments"), "alice", "alice-secret"), ip)
            .unwrap_err();
        assert_eq!(
            denied,
            "User:alice has no permission to access Topic:payments from 127.0.0.1, no matched policies. The request needs Pub."
        );
        assert_eq!(
            auth.check(&signed(send("orders"), "alice", "wrong"), ip)
                .unwrap_err(),
            "check signature failed."
        );
        assert_eq!(
            auth.check(&send("orders"), ip).unwrap_err(),
            "username cannot be null."
        );
        assert_eq!(
            auth.check(&signed(send("orders"), "mallory", "x"), ip)
                .unwrap_err(),
            "User:mallory is not found."
        );
        // The super user passes without any policy.
        assert_eq!(
            auth.check(&signed(send("payments"), "root", "root-secret"), ip),
            Ok(())
        );

        auth.update_user(
            Some("root"),
            "alice",
            UserInfo {
                user_status: Some("disable".into()),
                ..UserInfo::default()
            },
        )
        .unwrap();
        assert_eq!(
            auth.check(&signed(send("orders"), "alice", "alice-secret"), ip)
                .unwrap_err(),
            "User:alice is disabled."
        );
    }

    #[test]
    fn only_super_users_make_super_users_and_tables_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let auth = AuthService::open(dir.path(), on()).unwrap();
            auth.create_user(Some("root"), "bob", user("bob")).unwrap();
            let mut admin = user("eve");
            admin.user_type = Some("Super".into());
            let refused = auth
                .create_user(Some("bob"), "eve", admin.clone())
                .unwrap_err();
            assert_eq!(
                refused.remark,
                "The super user can only be create by super user"
            );
            auth.create_user(Some("root"), "eve", admin).unwrap();
            assert_eq!(
                auth.create_user(Some("root"), "bob", user("bob"))
                    .unwrap_err()
                    .remark,
                "The user is existed"
            );
            auth.put_acl("User:bob", &allow("Group:g*", &["Sub"]))
                .unwrap();
            auth.put_acl("User:bob", &allow("Topic:t", &["Sub"]))
                .unwrap();
            assert_eq!(
                auth.put_acl("User:nobody", &allow("Topic:t", &["Sub"]))
                    .unwrap_err()
                    .remark,
                "The subject of User:nobody is not exist."
            );
        }
        let auth = AuthService::open(dir.path(), on()).unwrap();
        let names: Vec<_> = auth
            .list_users(None)
            .into_iter()
            .filter_map(|u| u.username)
            .collect();
        assert_eq!(names, ["bob", "eve", "root"]);
        let acl = auth.get_acl("User:bob").unwrap().unwrap();
        assert_eq!(acl.policies.unwrap()[0].entries.as_ref().unwrap().len(), 2);
        assert_eq!(auth.list_acls(None, Some("Group")).len(), 1);
        auth.delete_acl("User:bob", None, Some("Group:g*")).unwrap();
        let left = auth.get_acl("User:bob").unwrap().unwrap();
        assert_eq!(
            left.policies.unwrap()[0].entries.as_ref().unwrap()[0]
                .resource
                .as_deref(),
            Some("Topic:t")
        );
        auth.delete_user(Some("root"), "bob").unwrap();
        assert!(auth.list_acls(None, None).is_empty());
    }

    #[test]
    fn a_plain_acl_file_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain_acl.yml");
        std::fs::write(
            &plain,
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    defaultTopicPerm: DENY\n    defaultGroupPerm: SUB\n    topicPerms:\n      - topicB=PUB|SUB\n  - accessKey: admin-key\n    secretKey: admin-secret\n    admin: true\n",
        )
        .unwrap();
        let settings = AuthSettings {
            migrate_from: Some(plain),
            ..on()
        };
        let auth = AuthService::open(dir.path(), settings).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            auth.check(&signed(send("topicB"), "RocketMQ", "12345678"), ip),
            Ok(())
        );
        assert!(auth
            .check(&signed(send("topicA"), "RocketMQ", "12345678"), ip)
            .unwrap_err()
            .contains("the decision is deny."));
        assert_eq!(
            auth.get_user("admin-key").unwrap().user_type.as_deref(),
            Some("Super")
        );
    }

    #[test]
    fn malformed_start_up_users_are_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let bad = AuthSettings {
            init_user: Some("{\"username\":\"x\"}".into()),
            ..on()
        };
        let e = AuthService::open(dir.path(), bad)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("initAuthenticationUser"), "{e}");
    }
}
