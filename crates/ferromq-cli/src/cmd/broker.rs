//! Cluster and broker commands: clusterList, brokerStatus, getBrokerConfig,
//! updateBrokerConfig, and FerroMQ's delayStatus and transactionStatus.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::ctx::{label, s, Ctx, Members, Target};
use crate::table::Table;

#[derive(Args)]
pub struct ClusterList {
    /// Messages in and out yesterday and today, per broker.
    #[arg(short = 'm', long = "moreStats")]
    more_stats: bool,
    /// Print again every this many seconds, until interrupted.
    #[arg(short = 'i', long = "interval", value_parser = clap::value_parser!(u64).range(1..))]
    interval: Option<u64>,
    /// Only this cluster.
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

impl ClusterList {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        loop {
            let brokers: Vec<_> = ctx
                .brokers()
                .await?
                .into_iter()
                .filter(|b| self.cluster.as_ref().is_none_or(|c| &b.cluster == c))
                .collect();
            if let (Some(c), true) = (&self.cluster, brokers.is_empty()) {
                bail!("the name server knows no cluster {c}");
            }
            if self.more_stats {
                let mut t = Table::new([
                    "Cluster",
                    "Broker",
                    "BID",
                    "InTotalYest",
                    "OutTotalYest",
                    "InTotalToday",
                    "OutTotalToday",
                ]);
                let mut rows = Vec::new();
                for b in &brokers {
                    // A broker that does not answer shows zeros, as in Apache's tool.
                    let info = ctx
                        .client
                        .broker_runtime_info(&b.addr)
                        .await
                        .unwrap_or_default();
                    let n = |k: &str| info.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                    let figures = [
                        n("msgPutTotalTodayMorning") - n("msgPutTotalYesterdayMorning"),
                        n("msgGetTotalTodayMorning") - n("msgGetTotalYesterdayMorning"),
                        n("msgPutTotalTodayNow") - n("msgPutTotalTodayMorning"),
                        n("msgGetTotalTodayNow") - n("msgGetTotalTodayMorning"),
                    ];
                    t.row([
                        b.cluster.clone(),
                        b.broker_name.clone(),
                        b.broker_id.to_string(),
                        figures[0].to_string(),
                        figures[1].to_string(),
                        figures[2].to_string(),
                        figures[3].to_string(),
                    ]);
                    let mut row = json!(b);
                    row["inTotalYest"] = json!(figures[0]);
                    row["outTotalYest"] = json!(figures[1]);
                    row["inTotalToday"] = json!(figures[2]);
                    row["outTotalToday"] = json!(figures[3]);
                    rows.push(row);
                }
                ctx.print(t, json!(rows));
            } else {
                let mut t = Table::new(["Cluster", "Broker", "BID", "Address"]);
                for b in &brokers {
                    t.row([
                        b.cluster.clone(),
                        b.broker_name.clone(),
                        b.broker_id.to_string(),
                        b.addr.clone(),
                    ]);
                }
                ctx.print(t, json!(brokers));
            }
            match self.interval {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
                None => return Ok(()),
            }
        }
    }
}

/// `-b` or `-c` (a cluster's masters and slaves, as Apache's tool reads them).
#[derive(Args)]
pub struct BrokerStatus {
    #[command(flatten)]
    target: Target,
}

impl BrokerStatus {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new(["Broker", "Key", "Value"]);
        let mut all = serde_json::Map::new();
        for b in ctx.targets(&self.target, Members::WithSlaves).await? {
            let info = ctx.client.broker_runtime_info(&b.addr).await?;
            for (k, v) in &info {
                t.row([label(&b), k.clone(), v.clone()]);
            }
            all.insert(label(&b), json!(info));
        }
        ctx.print(t, Value::Object(all));
        Ok(())
    }
}

/// `-b` or `-c` (a cluster's masters and slaves, as Apache's tool reads them).
#[derive(Args)]
pub struct GetBrokerConfig {
    #[command(flatten)]
    target: Target,
}

impl GetBrokerConfig {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new(["Broker", "Key", "Value"]);
        let mut all = serde_json::Map::new();
        for b in ctx.targets(&self.target, Members::WithSlaves).await? {
            let text = ctx.client.broker_config(&b.addr).await?;
            let mut map = BTreeMap::new();
            for line in text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                if let Some((k, v)) = line.split_once('=') {
                    t.row([label(&b), k.to_string(), v.to_string()]);
                    map.insert(k.to_string(), v.to_string());
                }
            }
            all.insert(label(&b), json!(map));
        }
        ctx.print(t, Value::Object(all));
        Ok(())
    }
}

#[derive(Args)]
pub struct UpdateBrokerConfig {
    #[command(flatten)]
    target: Target,
    /// The slaves too (with -c, or neither). Apache reads any value as yes.
    #[arg(short = 'a', long = "updateAllBroker")]
    all_brokers: Option<String>,
    #[arg(short = 'k', long = "key")]
    key: String,
    #[arg(short = 'v', long = "value")]
    value: String,
}

impl UpdateBrokerConfig {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let members = match self.all_brokers {
            Some(_) => Members::WithSlaves,
            None => Members::Masters,
        };
        let mut t = Table::new(["Broker", "Key", "Value"]);
        for b in ctx.targets(&self.target, members).await? {
            ctx.client
                .update_broker_config(&b.addr, &self.key, &self.value)
                .await?;
            t.row([label(&b), self.key.clone(), self.value.clone()]);
        }
        ctx.print(t, json!({ self.key: self.value }));
        Ok(())
    }
}

#[derive(Args)]
pub struct DelayStatus {
    #[command(flatten)]
    target: Target,
}

impl DelayStatus {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new(["Broker", "Kind", "Pending"]);
        let mut rows = Vec::new();
        for b in ctx.targets(&self.target, Members::Masters).await? {
            let (name, addr) = (label(&b), b.addr);
            let info = ctx.client.broker_runtime_info(&addr).await?;
            let mut levels: Vec<(u32, &String)> = info
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("scheduleMessagePending.level")
                        .and_then(|l| l.parse().ok())
                        .map(|l| (l, v))
                })
                .collect();
            levels.sort();
            if levels.is_empty() && !info.contains_key("timerPending") {
                bail!("broker {addr} does not report delayed messages (not a FerroMQ broker?)");
            }
            for (level, pending) in levels {
                t.row([
                    name.clone(),
                    format!("delay level {level}"),
                    pending.clone(),
                ]);
                rows.push(
                    json!({"broker": name, "kind": format!("level{level}"), "pending": pending}),
                );
            }
            for key in [
                "timerPending",
                "timerPendingWithin1m",
                "timerPendingWithin10m",
                "timerPendingWithin1h",
                "timerPendingWithin1d",
            ] {
                if let Some(v) = info.get(key) {
                    let kind = match key {
                        "timerPending" => "timers (all)".to_string(),
                        k => format!("timers due within {}", &k["timerPendingWithin".len()..]),
                    };
                    t.row([name.clone(), kind, v.clone()]);
                    rows.push(json!({"broker": name, "kind": key, "pending": v}));
                }
            }
        }
        ctx.print(t, json!(rows));
        Ok(())
    }
}

#[derive(Args)]
pub struct TransactionStatus {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 100)]
    max: usize,
}

impl TransactionStatus {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let mut t = Table::new([
            "Broker",
            "QueueOffset",
            "ProducerGroup",
            "Topic",
            "TransactionId",
            "Age(s)",
            "Checks",
        ]);
        let mut rows = Vec::new();
        for b in ctx.targets(&self.target, Members::Masters).await? {
            for tx in ctx.client.undecided_transactions(&b.addr, self.max).await? {
                let age = tx["ageMs"].as_i64().unwrap_or(0) / 1000;
                t.row([
                    label(&b),
                    s(&tx["queueOffset"]),
                    s(&tx["producerGroup"]),
                    s(&tx["topic"]),
                    s(&tx["transactionId"]),
                    age.to_string(),
                    s(&tx["checkTimes"]),
                ]);
                rows.push(tx);
            }
        }
        ctx.print(t, json!(rows));
        Ok(())
    }
}

/// A store clean-up on each broker: `-b` or `-c` (neither: every cluster's masters), as
/// Apache's `cleanExpiredCQ`, `deleteExpiredCommitLog` and `cleanUnusedTopic`.
#[derive(Args)]
pub struct Cleanup {
    #[command(flatten)]
    target: Target,
}

impl Cleanup {
    pub async fn run(self, ctx: &Ctx, code: i32, operation: &str) -> Result<()> {
        let mut t = Table::new(["Broker", "Result"]);
        let mut all = serde_json::Map::new();
        for b in ctx.targets(&self.target, Members::Masters).await? {
            ctx.remote
                .ok(
                    &b.addr,
                    ferromq_protocol::RemotingCommand::request(code),
                    operation,
                )
                .await?;
            t.row([label(&b), "success".to_string()]);
            all.insert(label(&b), json!("success"));
        }
        ctx.print(t, Value::Object(all));
        Ok(())
    }
}
