//! `consumerStatus`: what each running consumer of a group reports about itself
//! (GET_CONSUMER_RUNNING_INFO, relayed by a broker to the client): its settings, its
//! subscriptions and, with `-i`, the queues it holds with their offsets and cached messages.

use anyhow::{anyhow, bail, Result};
use clap::{ArgAction, Args};
use ferromq_client::admin::parse_queue_map;
use ferromq_protocol::body::{fastjson_to_json, json_value_end};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use serde_json::{json, Value};

use super::value::java_bool;
use crate::ctx::{s, Ctx, Members, Target};
use crate::remote::refused;
use crate::table::Table;

#[derive(Args)]
pub struct ConsumerStatus {
    #[arg(short = 'g', long = "consumerGroup")]
    group: String,
    /// One client: its settings, subscriptions and queues in full.
    #[arg(short = 'i', long = "clientId")]
    client_id: Option<String>,
    /// Also ask each client for its threads' stacks (true|false).
    #[arg(short = 's', long = "jstackEnable", action = ArgAction::Set, value_parser = java_bool, default_value = "false")]
    jstack: bool,
    /// Ask through this broker (default: the first master that knows the client).
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
}

/// One client's running info: its JSON, with fastjson's queue-keyed `mqTable` read apart.
struct RunningInfo {
    info: Value,
    queues: Vec<(ferromq_client::MessageQueue, Value)>,
}

impl ConsumerStatus {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let connections = ctx
            .client
            .consumer_connections(&self.group)
            .await
            .map_err(|e| anyhow!("consumer group {} is not online: {e}", self.group))?;
        let clients: Vec<String> = connections["connectionSet"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| s(&c["clientId"]))
            .filter(|id| self.client_id.as_ref().is_none_or(|want| want == id))
            .collect();
        if clients.is_empty() {
            match &self.client_id {
                Some(id) => bail!("client {id} is not a consumer of {} now", self.group),
                None => bail!("consumer group {} has no consumer online", self.group),
            }
        }
        let target = Target {
            broker: self.broker.clone(),
            cluster: None,
        };
        let brokers = ctx.targets(&target, Members::Masters).await?;
        let mut infos = Vec::new();
        for client in &clients {
            infos.push((
                client.clone(),
                self.running_info(ctx, &brokers, client).await?,
            ));
        }
        match &self.client_id {
            Some(_) => print_one(ctx, &infos[0].0, &infos[0].1),
            None => print_all(ctx, &infos),
        }
        Ok(())
    }

    async fn running_info(
        &self,
        ctx: &Ctx,
        brokers: &[ferromq_client::admin::BrokerInfo],
        client: &str,
    ) -> Result<RunningInfo> {
        let mut last = String::from("no broker to ask");
        for b in brokers {
            let req = RemotingCommand::request(request::GET_CONSUMER_RUNNING_INFO)
                .with_field("consumerGroup", &self.group)
                .with_field("clientId", client)
                .with_field("jstackEnable", self.jstack);
            let resp = ctx.remote.call(&b.addr, req).await?;
            if resp.code != response::SUCCESS {
                last = refused("GET_CONSUMER_RUNNING_INFO", &b.addr, &resp);
                continue;
            }
            let text = String::from_utf8_lossy(&resp.body);
            let queues = if text.contains("\"mqTable\":") {
                parse_queue_map(&text, "mqTable")?
            } else {
                Vec::new()
            };
            // The rest is JSON once the queue-keyed maps are out of the way.
            let mut info: Value = serde_json::from_slice(&fastjson_to_json(&strip_queue_maps(
                &text,
            )))
            .map_err(|e| {
                anyhow!(
                    "{client}'s running info through {} is not JSON: {e}",
                    b.addr
                )
            })?;
            info["mqTable"] = json!(queues
                .iter()
                .map(|(mq, v)| json!({ "queue": mq, "processQueue": v }))
                .collect::<Vec<_>>());
            return Ok(RunningInfo { info, queues });
        }
        bail!("{client} of {} did not answer: {last}", self.group)
    }
}

/// The body with each `"<name>":{…}` map keyed by queues (not JSON) emptied.
fn strip_queue_maps(text: &str) -> Vec<u8> {
    let mut out = text.to_string();
    for field in ["mqTable", "mqPopTable"] {
        let marker = format!("\"{field}\":");
        let Some(start) = out.find(&marker).map(|i| i + marker.len()) else {
            continue;
        };
        let Some(end) = json_value_end(out.as_bytes(), start) else {
            continue;
        };
        out.replace_range(start..end, "{}");
    }
    out.into_bytes()
}

fn property(info: &Value, key: &str) -> String {
    s(&info["properties"][key])
}

fn subscriptions(info: &Value) -> Vec<String> {
    let mut subs: Vec<String> = info["subscriptionSet"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sub| format!("{} {}", s(&sub["topic"]), s(&sub["subString"])))
        .collect();
    subs.sort();
    subs
}

fn print_all(ctx: &Ctx, infos: &[(String, RunningInfo)]) {
    let mut t = Table::new([
        "#",
        "ClientId",
        "Version",
        "ConsumeType",
        "MessageModel",
        "Subscriptions",
        "Queues",
    ]);
    for (i, (client, r)) in infos.iter().enumerate() {
        t.row([
            format!("{:03}", i + 1),
            client.clone(),
            property(&r.info, "PROP_CLIENT_VERSION"),
            property(&r.info, "PROP_CONSUME_TYPE"),
            property(&r.info, "messageModel"),
            subscriptions(&r.info).len().to_string(),
            r.queues.len().to_string(),
        ]);
    }
    // Apache's verdict line: consumers of a group that subscribe differently steal each
    // other's messages.
    let same = infos
        .windows(2)
        .all(|w| subscriptions(&w[0].1.info) == subscriptions(&w[1].1.info));
    let verdict = if same {
        "Same subscription in the same group of consumer"
    } else {
        "WARN: the consumers of this group subscribe differently"
    };
    if ctx.json {
        let clients: Vec<Value> = infos
            .iter()
            .map(|(c, r)| json!({ "clientId": c, "runningInfo": r.info }))
            .collect();
        ctx.print(t, json!({ "clients": clients, "sameSubscription": same }));
    } else {
        ctx.print(t, Value::Null);
        println!("\n{verdict}");
    }
}

fn print_one(ctx: &Ctx, client: &str, r: &RunningInfo) {
    if ctx.json {
        ctx.print(
            Table::new(["-"]),
            json!({ "clientId": client, "runningInfo": r.info }),
        );
        return;
    }
    println!("#Consumer {client}");
    let mut props = Table::new(["Property", "Value"]);
    let mut keys: Vec<(&String, &Value)> = r.info["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    keys.sort_by_key(|(k, _)| k.as_str());
    for (k, v) in keys {
        props.row([k.clone(), s(v)]);
    }
    print!("{props}");
    println!("\n#Subscriptions");
    for sub in subscriptions(&r.info) {
        println!("{sub}");
    }
    println!("\n#Queues");
    let mut t = Table::new([
        "Topic",
        "Broker",
        "Queue",
        "CommitOffset",
        "CachedMsgs",
        "CachedMin",
        "CachedMax",
        "Locked",
    ]);
    for (mq, pq) in &r.queues {
        t.row([
            mq.topic.clone(),
            mq.broker_name.clone(),
            mq.queue_id.to_string(),
            s(&pq["commitOffset"]),
            s(&pq["cachedMsgCount"]),
            s(&pq["cachedMsgMinOffset"]),
            s(&pq["cachedMsgMaxOffset"]),
            s(&pq["locked"]),
        ]);
    }
    print!("{t}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keyed_maps_are_read_apart_and_the_rest_parses() {
        let body = r#"{"properties":{"PROP_CONSUME_TYPE":"CONSUME_PASSIVELY"},"mqTable":{{"brokerName":"b","queueId":1,"topic":"t{x}"}:{"commitOffset":7}},"subscriptionSet":[{"topic":"t{x}","subString":"*"}]}"#;
        let queues = parse_queue_map(body, "mqTable").unwrap();
        assert_eq!(queues.len(), 1);
        assert_eq!(
            (queues[0].0.queue_id, &queues[0].1["commitOffset"]),
            (1, &json!(7))
        );
        let rest: Value = serde_json::from_slice(&strip_queue_maps(body)).unwrap();
        assert_eq!(rest["mqTable"], json!({}));
        assert_eq!(subscriptions(&rest), ["t{x} *"]);
        // An unbalanced map is left for the JSON parse to refuse, not cut at random.
        assert!(
            serde_json::from_slice::<Value>(&strip_queue_maps(r#"{"mqTable":{{"a":1}"#)).is_err()
        );
    }
}
