//! ACL 2.0's users and policies under Apache mqadmin's names and flags: `createUser`,
//! `updateUser`, `deleteUser`, `getUser`, `listUser`, `createAcl`, `updateAcl`, `deleteAcl`,
//! `getAcl`, `listAcl` (codes 3001–3010). Writes go to each broker of `-c` (masters and
//! slaves, which keep their own tables, as in Apache) or to `-b`; reads ask the masters.

use anyhow::{bail, Result};
use clap::Args;
use ferromq_protocol::auth::{AclInfo, PolicyEntryInfo, PolicyInfo, UserInfo};
use ferromq_protocol::code::request;
use ferromq_protocol::header::{
    AuthAclRequestHeader, AuthListAclsRequestHeader, AuthListUsersRequestHeader,
    AuthUserRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use serde_json::{json, Value};

use crate::ctx::{label, Ctx, Members, Target};
use crate::table::Table;

/// A comma list (`-r`, `-a`, `-i`), as Apache's commands split them.
fn list(text: &Option<String>) -> Option<Vec<String>> {
    text.as_ref().map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

/// Sends one write to each target broker, printing Apache's line per broker.
async fn write_each(
    ctx: &Ctx,
    target: &Target,
    req: RemotingCommand,
    operation: &str,
    what: &str,
) -> Result<()> {
    let mut t = Table::new(["Broker", "Result"]);
    let mut all = serde_json::Map::new();
    for b in ctx.targets(target, Members::WithSlaves).await? {
        ctx.remote.ok(&b.addr, req.clone(), operation).await?;
        if !ctx.json {
            println!("{what} to {} success.", b.addr);
        }
        t.row([label(&b), "success".to_string()]);
        all.insert(label(&b), json!("success"));
    }
    if ctx.json {
        ctx.print(t, Value::Object(all));
    }
    Ok(())
}

/// Asks each target master; `None` where it answered without a body.
async fn read_each(
    ctx: &Ctx,
    target: &Target,
    req: RemotingCommand,
    operation: &str,
) -> Result<Vec<(String, Option<Value>)>> {
    let mut out = Vec::new();
    for b in ctx.targets(target, Members::Masters).await? {
        let resp = ctx.remote.ok(&b.addr, req.clone(), operation).await?;
        let body = if resp.body.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&resp.body)?)
        };
        out.push((label(&b), body));
    }
    Ok(out)
}

#[derive(Args)]
pub struct CreateUser {
    #[command(flatten)]
    target: Target,
    #[arg(short = 'u', long = "username")]
    username: String,
    #[arg(short = 'p', long = "password")]
    password: String,
    /// `Super` or `Normal` (the default).
    #[arg(short = 't', long = "userType")]
    user_type: Option<String>,
}

impl CreateUser {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut req = RemotingCommand::request(request::AUTH_CREATE_USER).with_header(
            &AuthUserRequestHeader {
                username: Some(self.username.clone()),
            },
        );
        req.body = serde_json::to_vec(&UserInfo {
            username: Some(self.username),
            password: Some(self.password),
            user_type: self.user_type,
            user_status: None,
        })?
        .into();
        write_each(ctx, &self.target, req, "AUTH_CREATE_USER", "create user").await
    }
}

#[derive(Args)]
pub struct UpdateUser {
    #[command(flatten)]
    target: Target,
    #[arg(short = 'u', long = "username")]
    username: String,
    #[arg(short = 'p', long = "password")]
    password: Option<String>,
    #[arg(short = 't', long = "userType")]
    user_type: Option<String>,
    /// `enable` or `disable`.
    #[arg(short = 's', long = "userStatus")]
    user_status: Option<String>,
}

impl UpdateUser {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        if self.password.is_none() && self.user_type.is_none() && self.user_status.is_none() {
            bail!("updateUser needs at least one of -p, -t, -s");
        }
        let mut req = RemotingCommand::request(request::AUTH_UPDATE_USER).with_header(
            &AuthUserRequestHeader {
                username: Some(self.username.clone()),
            },
        );
        req.body = serde_json::to_vec(&UserInfo {
            username: Some(self.username),
            password: self.password,
            user_type: self.user_type,
            user_status: self.user_status,
        })?
        .into();
        write_each(ctx, &self.target, req, "AUTH_UPDATE_USER", "update user").await
    }
}

#[derive(Args)]
pub struct DeleteUser {
    #[command(flatten)]
    target: Target,
    #[arg(short = 'u', long = "username")]
    username: String,
}

impl DeleteUser {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let req = RemotingCommand::request(request::AUTH_DELETE_USER).with_header(
            &AuthUserRequestHeader {
                username: Some(self.username),
            },
        );
        write_each(ctx, &self.target, req, "AUTH_DELETE_USER", "delete user").await
    }
}

fn user_table(rows: &[(String, Option<Value>)]) -> Table {
    let mut t = Table::new(["#UserName", "#Password", "#UserType", "#UserStatus"]);
    let users = rows
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .flat_map(|v| match v {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        });
    for u in users {
        let field = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        t.row([
            field("username"),
            field("password"),
            field("userType"),
            field("userStatus"),
        ]);
    }
    t
}

fn by_broker(rows: Vec<(String, Option<Value>)>) -> Value {
    Value::Object(
        rows.into_iter()
            .map(|(b, v)| (b, v.unwrap_or(Value::Null)))
            .collect(),
    )
}

#[derive(Args)]
pub struct GetUser {
    #[command(flatten)]
    target: Target,
    #[arg(short = 'u', long = "username")]
    username: String,
}

impl GetUser {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let req =
            RemotingCommand::request(request::AUTH_GET_USER).with_header(&AuthUserRequestHeader {
                username: Some(self.username),
            });
        let rows = read_each(ctx, &self.target, req, "AUTH_GET_USER").await?;
        ctx.print(user_table(&rows), by_broker(rows));
        Ok(())
    }
}

#[derive(Args)]
pub struct ListUser {
    #[command(flatten)]
    target: Target,
    /// Users whose name contains this.
    #[arg(short = 'f', long = "filter")]
    filter: Option<String>,
}

impl ListUser {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let req = RemotingCommand::request(request::AUTH_LIST_USER).with_header(
            &AuthListUsersRequestHeader {
                filter: self.filter,
            },
        );
        let rows = read_each(ctx, &self.target, req, "AUTH_LIST_USER").await?;
        ctx.print(user_table(&rows), by_broker(rows));
        Ok(())
    }
}

/// `createAcl` and `updateAcl` (both merge into the subject's policies).
#[derive(Args)]
pub struct PutAcl {
    #[command(flatten)]
    target: Target,
    /// `User:<name>`.
    #[arg(short = 's', long = "subject")]
    subject: String,
    /// Comma list: `Topic:orders`, `Group:g-*`, `Topic:*`, `*`.
    #[arg(short = 'r', long = "resources")]
    resources: String,
    /// Comma list of Pub, Sub, Create, Update, Delete, Get, List, All.
    #[arg(short = 'a', long = "actions")]
    actions: String,
    /// Comma list of addresses or CIDR ranges the policy applies from (default: anywhere).
    #[arg(short = 'i', long = "sourceIp")]
    source_ip: Option<String>,
    /// `Allow` or `Deny`.
    #[arg(short = 'd', long = "decision")]
    decision: String,
}

impl PutAcl {
    pub async fn run(self, ctx: &Ctx, code: i32, operation: &str, what: &str) -> Result<()> {
        let (actions, source_ips) = (list(&Some(self.actions)), list(&self.source_ip));
        let entries = list(&Some(self.resources))
            .unwrap_or_default()
            .into_iter()
            .map(|resource| PolicyEntryInfo {
                resource: Some(resource),
                actions: actions.clone(),
                source_ips: source_ips.clone(),
                decision: Some(self.decision.clone()),
            })
            .collect();
        let mut req = RemotingCommand::request(code).with_header(&AuthAclRequestHeader {
            subject: Some(self.subject.clone()),
            ..AuthAclRequestHeader::default()
        });
        req.body = serde_json::to_vec(&AclInfo {
            subject: Some(self.subject),
            policies: Some(vec![PolicyInfo {
                policy_type: None,
                entries: Some(entries),
            }]),
        })?
        .into();
        write_each(ctx, &self.target, req, operation, what).await
    }
}

#[derive(Args)]
pub struct DeleteAcl {
    #[command(flatten)]
    target: Target,
    #[arg(short = 's', long = "subject")]
    subject: String,
    /// The resource whose entry goes; without it, the subject's whole ACL.
    #[arg(short = 'r', long = "resources")]
    resource: Option<String>,
}

impl DeleteAcl {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let req =
            RemotingCommand::request(request::AUTH_DELETE_ACL).with_header(&AuthAclRequestHeader {
                subject: Some(self.subject),
                policy_type: None,
                resource: self.resource,
            });
        write_each(ctx, &self.target, req, "AUTH_DELETE_ACL", "delete acl").await
    }
}

fn acl_table(rows: &[(String, Option<Value>)]) -> Table {
    let mut t = Table::new([
        "#Subject",
        "#PolicyType",
        "#Resource",
        "#Actions",
        "#SourceIp",
        "#Decision",
    ]);
    let acls = rows
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .flat_map(|v| match v {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        });
    for acl in acls {
        let Ok(acl) = serde_json::from_value::<AclInfo>(acl) else {
            continue;
        };
        let subject = acl.subject.unwrap_or_default();
        for policy in acl.policies.unwrap_or_default() {
            for e in policy.entries.unwrap_or_default() {
                t.row([
                    subject.clone(),
                    policy.policy_type.clone().unwrap_or_default(),
                    e.resource.unwrap_or_default(),
                    e.actions.unwrap_or_default().join(","),
                    e.source_ips.unwrap_or_default().join(","),
                    e.decision.unwrap_or_default(),
                ]);
            }
        }
    }
    t
}

#[derive(Args)]
pub struct GetAcl {
    #[command(flatten)]
    target: Target,
    #[arg(short = 's', long = "subject")]
    subject: String,
}

impl GetAcl {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let req =
            RemotingCommand::request(request::AUTH_GET_ACL).with_header(&AuthAclRequestHeader {
                subject: Some(self.subject),
                ..AuthAclRequestHeader::default()
            });
        let rows = read_each(ctx, &self.target, req, "AUTH_GET_ACL").await?;
        ctx.print(acl_table(&rows), by_broker(rows));
        Ok(())
    }
}

#[derive(Args)]
pub struct ListAcl {
    #[command(flatten)]
    target: Target,
    /// Subjects containing this.
    #[arg(short = 's', long = "subject")]
    subject: Option<String>,
    /// Entries whose resource contains this.
    #[arg(short = 'r', long = "resource")]
    resource: Option<String>,
}

impl ListAcl {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let req = RemotingCommand::request(request::AUTH_LIST_ACL).with_header(
            &AuthListAclsRequestHeader {
                subject_filter: self.subject,
                resource_filter: self.resource,
            },
        );
        let rows = read_each(ctx, &self.target, req, "AUTH_LIST_ACL").await?;
        ctx.print(acl_table(&rows), by_broker(rows));
        Ok(())
    }
}

/// Asks one broker; `None` where it answered without a body.
async fn read_one(
    ctx: &Ctx,
    addr: &str,
    req: RemotingCommand,
    operation: &str,
) -> Result<Option<Value>> {
    let resp = ctx.remote.ok(addr, req, operation).await?;
    if resp.body.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_slice(&resp.body)?))
}

/// `copyUser -f fromBroker -t toBroker [-u a,b]`: each user made or updated on the target.
#[derive(Args)]
pub struct CopyUser {
    #[arg(short = 'f', long = "fromBroker")]
    from: String,
    #[arg(short = 't', long = "toBroker")]
    to: String,
    #[arg(short = 'u', long = "usernames")]
    usernames: Option<String>,
}

impl CopyUser {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let users: Vec<UserInfo> = match list(&self.usernames) {
            Some(names) => {
                let mut out = Vec::new();
                for name in names {
                    let req = RemotingCommand::request(request::AUTH_GET_USER).with_header(
                        &AuthUserRequestHeader {
                            username: Some(name.clone()),
                        },
                    );
                    match read_one(ctx, &self.from, req, "AUTH_GET_USER").await? {
                        Some(v) => out.push(serde_json::from_value(v)?),
                        None => bail!("{} has no user {name}", self.from),
                    }
                }
                out
            }
            None => {
                let req = RemotingCommand::request(request::AUTH_LIST_USER)
                    .with_header(&AuthListUsersRequestHeader::default());
                match read_one(ctx, &self.from, req, "AUTH_LIST_USER").await? {
                    Some(v) => serde_json::from_value(v)?,
                    None => Vec::new(),
                }
            }
        };
        for user in users {
            let name = user.username.clone().unwrap_or_default();
            let header = AuthUserRequestHeader {
                username: Some(name.clone()),
            };
            let exists = read_one(
                ctx,
                &self.to,
                RemotingCommand::request(request::AUTH_GET_USER).with_header(&header),
                "AUTH_GET_USER",
            )
            .await?
            .is_some();
            let (code, operation) = if exists {
                (request::AUTH_UPDATE_USER, "AUTH_UPDATE_USER")
            } else {
                (request::AUTH_CREATE_USER, "AUTH_CREATE_USER")
            };
            let mut req = RemotingCommand::request(code).with_header(&header);
            req.body = serde_json::to_vec(&user)?.into();
            ctx.remote.ok(&self.to, req, operation).await?;
            println!(
                "copy user of {name} from {} to {} success.",
                self.from, self.to
            );
        }
        Ok(())
    }
}

/// `copyAcl -f fromBroker -t toBroker [-s User:a,User:b]`: each ACL merged into the target's.
#[derive(Args)]
pub struct CopyAcl {
    #[arg(short = 'f', long = "fromBroker")]
    from: String,
    #[arg(short = 't', long = "toBroker")]
    to: String,
    #[arg(short = 's', long = "subjects")]
    subjects: Option<String>,
}

impl CopyAcl {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let acls: Vec<AclInfo> = match list(&self.subjects) {
            Some(subjects) => {
                let mut out = Vec::new();
                for subject in subjects {
                    let req = RemotingCommand::request(request::AUTH_GET_ACL).with_header(
                        &AuthAclRequestHeader {
                            subject: Some(subject.clone()),
                            ..AuthAclRequestHeader::default()
                        },
                    );
                    match read_one(ctx, &self.from, req, "AUTH_GET_ACL").await? {
                        Some(v) => out.push(serde_json::from_value(v)?),
                        None => bail!("{} has no ACL for {subject}", self.from),
                    }
                }
                out
            }
            None => {
                let req = RemotingCommand::request(request::AUTH_LIST_ACL)
                    .with_header(&AuthListAclsRequestHeader::default());
                match read_one(ctx, &self.from, req, "AUTH_LIST_ACL").await? {
                    Some(v) => serde_json::from_value(v)?,
                    None => Vec::new(),
                }
            }
        };
        for acl in acls {
            let subject = acl.subject.clone().unwrap_or_default();
            // Create and update both merge into the target's ACL.
            let mut req = RemotingCommand::request(request::AUTH_CREATE_ACL).with_header(
                &AuthAclRequestHeader {
                    subject: Some(subject.clone()),
                    ..AuthAclRequestHeader::default()
                },
            );
            req.body = serde_json::to_vec(&acl)?.into();
            ctx.remote.ok(&self.to, req, "AUTH_CREATE_ACL").await?;
            println!(
                "copy acl of {subject} from {} to {} success.",
                self.from, self.to
            );
        }
        Ok(())
    }
}
