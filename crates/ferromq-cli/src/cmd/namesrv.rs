//! Name-server operations under Apache mqadmin's names and flags, sent to every name server
//! given with `-n`: `wipeWritePerm` / `addWritePerm` (205, 327: how operators drain a broker
//! before a restart), `updateKvConfig` / `deleteKvConfig` (100, 102), `getNamesrvConfig` /
//! `updateNamesrvConfig` (319, 318).

use anyhow::{bail, Result};
use clap::Args;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{BrokerNameRequestHeader, KvConfigRequestHeader};
use ferromq_protocol::RemotingCommand;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::remote::refused;
use crate::table::Table;

/// `wipeWritePerm -b brokerName` and `addWritePerm -b brokerName`: the name servers' routes
/// of the broker's topics lose (or regain) write permission, so clients send elsewhere.
#[derive(Args)]
pub struct WritePerm {
    #[arg(short = 'b', long = "brokerName")]
    broker_name: String,
}

impl WritePerm {
    pub async fn run(self, ctx: &Ctx, wipe: bool) -> Result<()> {
        let (code, field, verb) = if wipe {
            (request::WIPE_WRITE_PERM_OF_BROKER, "wipeTopicCount", "wipe")
        } else {
            (request::ADD_WRITE_PERM_OF_BROKER, "addTopicCount", "add")
        };
        let mut t = Table::new(["Name server", "Broker", "Topics changed"]);
        let mut all = serde_json::Map::new();
        let mut failed = false;
        for ns in &ctx.namesrv {
            let req = RemotingCommand::request(code).with_header(&BrokerNameRequestHeader {
                broker_name: self.broker_name.clone(),
            });
            match ctx.remote.call(ns, req).await {
                Ok(resp) if resp.code == response::SUCCESS => {
                    let n = resp.field(field).unwrap_or("0").to_string();
                    if !ctx.json {
                        println!(
                            "{verb} write perm of broker[{}] in name server[{ns}] OK, {n}",
                            self.broker_name
                        );
                    }
                    t.row([ns.clone(), self.broker_name.clone(), n.clone()]);
                    all.insert(ns.clone(), json!(n.parse::<i64>().unwrap_or(0)));
                }
                outcome => {
                    failed = true;
                    let why = match outcome {
                        Ok(resp) => refused(verb, ns, &resp),
                        Err(e) => e.to_string(),
                    };
                    eprintln!(
                        "{verb} write perm of broker[{}] in name server[{ns}] Failed: {why}",
                        self.broker_name
                    );
                    all.insert(ns.clone(), json!({ "error": why }));
                }
            }
        }
        if ctx.json {
            ctx.print(t, Value::Object(all));
        }
        if failed {
            bail!("{verb}WritePerm failed on at least one name server");
        }
        Ok(())
    }
}

/// `updateKvConfig -s namespace -k key -v value`.
#[derive(Args)]
pub struct UpdateKvConfig {
    #[arg(short = 's', long = "namespace")]
    namespace: String,
    #[arg(short = 'k', long = "key")]
    key: String,
    #[arg(short = 'v', long = "value")]
    value: String,
}

impl UpdateKvConfig {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let header = KvConfigRequestHeader {
            namespace: self.namespace,
            key: Some(self.key),
            value: Some(self.value),
        };
        for ns in &ctx.namesrv {
            let req = RemotingCommand::request(request::PUT_KV_CONFIG).with_header(&header);
            ctx.remote.ok(ns, req, "PUT_KV_CONFIG").await?;
        }
        println!("create or update kv config to namespace success.");
        Ok(())
    }
}

/// `deleteKvConfig -s namespace -k key`.
#[derive(Args)]
pub struct DeleteKvConfig {
    #[arg(short = 's', long = "namespace")]
    namespace: String,
    #[arg(short = 'k', long = "key")]
    key: String,
}

impl DeleteKvConfig {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let header = KvConfigRequestHeader {
            namespace: self.namespace,
            key: Some(self.key),
            value: None,
        };
        for ns in &ctx.namesrv {
            let req = RemotingCommand::request(request::DELETE_KV_CONFIG).with_header(&header);
            ctx.remote.ok(ns, req, "DELETE_KV_CONFIG").await?;
        }
        println!("delete kv config from namespace success.");
        Ok(())
    }
}

/// `getNamesrvConfig`: each name server's configuration.
#[derive(Args)]
pub struct GetNamesrvConfig {}

impl GetNamesrvConfig {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut all = serde_json::Map::new();
        let mut text = String::new();
        for ns in &ctx.namesrv {
            let resp = ctx
                .remote
                .ok(
                    ns,
                    RemotingCommand::request(request::GET_NAMESRV_CONFIG),
                    "GET_NAMESRV_CONFIG",
                )
                .await?;
            let body = String::from_utf8_lossy(&resp.body).into_owned();
            text.push_str(&format!("============{ns}============\n"));
            let mut entries = serde_json::Map::new();
            for line in body
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                let (k, v) = line.split_once('=').unwrap_or((line, ""));
                text.push_str(&format!("{:<50}=  {}\n", k.trim(), v.trim()));
                entries.insert(k.trim().to_string(), json!(v.trim()));
            }
            all.insert(ns.clone(), Value::Object(entries));
        }
        if ctx.json {
            println!("{}", serde_json::to_string_pretty(&Value::Object(all))?);
        } else {
            print!("{text}");
        }
        Ok(())
    }
}

/// `updateNamesrvConfig -k key -v value` (FerroMQ's name servers refuse it, naming why).
#[derive(Args)]
pub struct UpdateNamesrvConfig {
    #[arg(short = 'k', long = "key")]
    key: String,
    #[arg(short = 'v', long = "value")]
    value: String,
}

impl UpdateNamesrvConfig {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        for ns in &ctx.namesrv {
            let req = RemotingCommand::request(request::UPDATE_NAMESRV_CONFIG)
                .with_body(format!("{}={}\n", self.key, self.value));
            ctx.remote.ok(ns, req, "UPDATE_NAMESRV_CONFIG").await?;
        }
        println!(
            "update name server config success!{:?}\n{} : {}",
            ctx.namesrv, self.key, self.value
        );
        Ok(())
    }
}
