//! What every command runs with: the admin client, our own connections for what it lacks,
//! the output mode, and the `-b brokerAddr` / `-c clusterName` broker selection.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ferromq_client::admin::{AdminClient, BrokerInfo};
use ferromq_client::ClientError;
use ferromq_protocol::body::TopicRouteData;
use serde_json::Value;

use crate::remote::Remote;
use crate::table::Table;

pub struct Ctx {
    pub client: AdminClient,
    pub remote: Remote,
    pub namesrv: Vec<String>,
    /// For the producer `sendMessage` starts.
    pub credentials: Option<(String, String)>,
    pub json: bool,
}

/// The brokers a command acts on, as Apache's commands take them.
#[derive(Args, Clone, Default)]
pub struct Target {
    /// Broker address.
    #[arg(short = 'b', long = "brokerAddr")]
    pub broker: Option<String>,
    /// Cluster name: that cluster's brokers. Neither -b nor -c: every cluster's.
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

/// Whether a cluster's slaves are included.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Members {
    Masters,
    WithSlaves,
}

impl Ctx {
    pub fn print(&self, table: Table, json: Value) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("JSON prints")
            );
        } else {
            print!("{table}");
        }
    }

    /// Every broker of every cluster.
    pub async fn brokers(&self) -> Result<Vec<BrokerInfo>> {
        self.client
            .brokers()
            .await
            .with_context(|| format!("cannot reach {}", self.namesrv.join(";")))
    }

    /// `-b` names one broker, `-c` a cluster's masters (and slaves if asked); neither,
    /// every cluster's: FerroMQ's convenience where Apache requires one of them.
    pub async fn targets(&self, target: &Target, members: Members) -> Result<Vec<BrokerInfo>> {
        if let Some(addr) = &target.broker {
            // Named as the name server knows it; an address it does not know is still asked.
            let known = self.brokers().await.ok().into_iter().flatten();
            return Ok(vec![known
                .into_iter()
                .find(|b| &b.addr == addr)
                .unwrap_or_else(|| BrokerInfo {
                    cluster: String::new(),
                    broker_name: addr.clone(),
                    broker_id: 0,
                    addr: addr.clone(),
                })]);
        }
        let picked: Vec<BrokerInfo> = self
            .brokers()
            .await?
            .into_iter()
            .filter(|b| target.cluster.as_ref().is_none_or(|c| &b.cluster == c))
            .filter(|b| members == Members::WithSlaves || b.broker_id == 0)
            .collect();
        if picked.is_empty() {
            match &target.cluster {
                Some(c) => bail!("the name server knows no cluster {c}"),
                None => bail!(
                    "the name server at {} knows no broker",
                    self.namesrv.join(";")
                ),
            }
        }
        Ok(picked)
    }

    /// Names of a cluster's brokers; `None` for no cluster (every broker).
    pub async fn cluster_broker_names(&self, cluster: Option<&str>) -> Result<Option<Vec<String>>> {
        let Some(cluster) = cluster else {
            return Ok(None);
        };
        let names: Vec<String> = self
            .targets(
                &Target {
                    broker: None,
                    cluster: Some(cluster.to_string()),
                },
                Members::WithSlaves,
            )
            .await?
            .into_iter()
            .map(|b| b.broker_name)
            .collect();
        Ok(Some(names))
    }

    /// A topic's route, or the one-line "unknown topic" error.
    pub async fn route(&self, topic: &str) -> Result<TopicRouteData> {
        self.client
            .topic_route(topic)
            .await?
            .ok_or_else(|| anyhow!("unknown topic {topic}"))
    }

    pub fn shutdown(&self) {
        self.client.shutdown();
    }
}

/// How a broker is named in output: its name, with the id for a slave.
pub fn label(b: &BrokerInfo) -> String {
    if b.broker_id == 0 {
        b.broker_name.clone()
    } else {
        format!("{}#{}", b.broker_name, b.broker_id)
    }
}

pub use ferromq_client::admin::{route_masters, route_readers};

/// A JSON value as display text.
pub fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    })
}

/// Turns "no route" into the one-line "unknown topic" error; other errors pass through.
pub fn unknown_topic(topic: &str) -> impl FnOnce(ClientError) -> anyhow::Error + '_ {
    move |e| match e {
        ClientError::NoRoute { .. } => anyhow!("unknown topic {topic}"),
        e => e.into(),
    }
}
