//! Batch creation under Apache mqadmin's names: `updateTopicList -f file` (a JSON list of
//! `TopicConfig`, UPDATE_AND_CREATE_TOPIC_LIST 18) and `updateSubGroupList -f file` (a JSON
//! list of `SubscriptionGroupConfig`, UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST 225), sent to
//! `-b` or to `-c`'s masters; and `getConsumerConfig -g group`, each master's copy.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferromq_protocol::code::request;
use ferromq_protocol::RemotingCommand;
use serde_json::{json, Value};

use crate::ctx::{label, Ctx, Members, Target};
use crate::table::Table;

/// Reads a file holding a JSON list; what is wrong with it, named.
fn json_list(path: &PathBuf, what: &str) -> Result<Vec<Value>> {
    if !path.exists() {
        bail!("the file path {} does not exists", path.display());
    }
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let list: Vec<Value> = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a JSON list of {what}", path.display()))?;
    if list.is_empty() {
        bail!("{} lists no {what}", path.display());
    }
    Ok(list)
}

#[derive(Args)]
pub struct UpdateList {
    #[command(flatten)]
    target: Target,
    /// A JSON list of Apache's `TopicConfig` (updateTopicList) or `SubscriptionGroupConfig`
    /// (updateSubGroupList).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
}

impl UpdateList {
    pub async fn run(self, ctx: &Ctx, topics: bool) -> Result<()> {
        let (code, operation, field, what, printed) = if topics {
            (
                request::UPDATE_AND_CREATE_TOPIC_LIST,
                "UPDATE_AND_CREATE_TOPIC_LIST",
                "topicConfigList",
                "topic configs",
                "topic config",
            )
        } else {
            (
                request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST,
                "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST",
                "groupConfigList",
                "subscription group configs",
                "subscription group config",
            )
        };
        let list = json_list(&self.file, what)?;
        let body = json!({ field: list }).to_string();
        let mut t = Table::new(["Broker", "Entries", "Result"]);
        let mut all = serde_json::Map::new();
        for b in ctx.targets(&self.target, Members::Masters).await? {
            let req = RemotingCommand::request(code).with_body(body.clone());
            ctx.remote.ok(&b.addr, req, operation).await?;
            if !ctx.json {
                println!(
                    "submit batch of {printed} to {} success, please check the result later.",
                    b.addr
                );
            }
            t.row([label(&b), list.len().to_string(), "success".into()]);
            all.insert(label(&b), json!(list.len()));
        }
        if ctx.json {
            ctx.print(t, Value::Object(all));
        }
        Ok(())
    }
}

/// `getConsumerConfig -g group`: the group's configuration on each master
/// (GET_SUBSCRIPTIONGROUP_CONFIG 352).
#[derive(Args)]
pub struct GetConsumerConfig {
    #[arg(short = 'g', long = "groupName")]
    group: String,
}

impl GetConsumerConfig {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut text = String::new();
        let mut all = serde_json::Map::new();
        for b in ctx.targets(&Target::default(), Members::Masters).await? {
            let req = RemotingCommand::request(request::GET_SUBSCRIPTIONGROUP_CONFIG)
                .with_field("group", &self.group);
            let resp = ctx.remote.call(&b.addr, req).await?;
            if resp.code != 0 || resp.body.is_empty() {
                continue;
            }
            let config: Value = serde_json::from_slice(&resp.body)
                .with_context(|| format!("the configuration {} sent is not JSON", b.addr))?;
            text.push_str(&format!(
                "============================={}:{}=============================\n",
                b.cluster, b.broker_name
            ));
            if let Some(fields) = config.as_object() {
                for (k, v) in fields {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    text.push_str(&format!("{k:<40}=  {v}\n"));
                }
            }
            all.insert(label(&b), config);
        }
        if all.is_empty() {
            bail!("no master knows the group {}", self.group);
        }
        if ctx.json {
            println!("{}", serde_json::to_string_pretty(&Value::Object(all))?);
        } else {
            print!("{text}");
        }
        Ok(())
    }
}
