//! `messageLife`: where a message is and what happened to it, from the brokers' own
//! records, for messages whose clients never turned tracing on. A FerroMQ command (Apache
//! has none); `--json` gives the brokers' whole answer.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::table::Table;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["msg_id", "key"]))]
pub struct MessageLife {
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// The message's unique id (as its send result gave it) or offset id.
    #[arg(short = 'i', long = "msgId")]
    msg_id: Option<String>,
    /// Every message carrying this key.
    #[arg(short = 'k', long = "msgKey")]
    key: Option<String>,
}

/// Local time with milliseconds.
fn at(ms: &Value) -> String {
    match ms.as_i64().filter(|ms| *ms > 0) {
        Some(ms) => super::value::local_time(ms, true),
        None => "-".into(),
    }
}

/// A client as the broker knows it: its id while it is connected, and its address.
fn who(v: &Value) -> String {
    let addr = v["client"].as_str().unwrap_or("");
    match v["clientId"].as_str() {
        Some(id) => format!("{id} ({addr})"),
        None => addr.to_string(),
    }
}

/// The group's committed offset on a queue, in words.
fn group_offset(c: &Value) -> String {
    match c["committedOffset"].as_i64() {
        Some(o) => format!("the group's offset is {o}"),
        None => "the group has committed nothing on this queue".into(),
    }
}

fn place(c: &Value) -> String {
    format!(
        "{} queue {} offset {} at {}",
        c["topic"].as_str().unwrap_or(""),
        c["queueId"],
        c["queueOffset"],
        at(&c["storeTimestamp"])
    )
}

fn report(life: &Value) -> String {
    let mut out = format!(
        "Message {} on {} ({})\n",
        life["msgId"].as_str().unwrap_or(""),
        life["broker"].as_str().unwrap_or(""),
        life["brokerAddr"].as_str().unwrap_or("")
    );
    for w in life["waiting"].as_array().into_iter().flatten() {
        let what = match (w["kind"].as_str(), w["delayLevel"].as_i64()) {
            (Some("delay"), Some(level)) => format!("delay level {level}"),
            (Some("timer"), _) => format!("timer due {}", at(&w["deliverAt"])),
            (Some("transaction"), _) => "transaction (half message)".into(),
            (kind, _) => kind.unwrap_or("").to_string(),
        };
        let state = if w["fired"] == json!(true) {
            match w["kind"].as_str() {
                Some("transaction") => "committed",
                _ => "delivered",
            }
        } else {
            "waiting"
        };
        out += &format!("  Waited     {what}: {}, {state}\n", place(w));
    }
    for s in life["stored"].as_array().into_iter().flatten() {
        out += &format!(
            "  Stored     {} (offset id {}, from {})\n",
            place(s),
            s["offsetMsgId"].as_str().unwrap_or(""),
            s["bornHost"].as_str().unwrap_or("")
        );
    }
    let groups = life["groups"].as_array().cloned().unwrap_or_default();
    if groups.is_empty() {
        out += "  No consumer group has read this topic here since the broker started.\n";
    }
    for g in &groups {
        out += &format!("  Group      {}\n", g["group"].as_str().unwrap_or(""));
        for c in g["copies"].as_array().into_iter().flatten() {
            let kind = match c["kind"].as_str() {
                Some("retry") => format!("retry {}", c["reconsumeTimes"]),
                Some("dlq") => "dead-lettered".into(),
                _ => "message".into(),
            };
            out += &format!("    {kind}: {}\n", place(c));
            for r in c["reads"].as_array().into_iter().flatten() {
                out += &format!(
                    "      pulled by {} at {} (offsets {}..{})\n",
                    who(r),
                    at(&r["atMs"]),
                    r["from"],
                    r["next"]
                );
            }
            if let Some(p) = c["inflight"].as_object() {
                out += &format!(
                    "      handed out (POP) at {}, invisible until {}, reconsume {}\n",
                    at(&p["poppedAt"]),
                    at(&p["visibleAt"]),
                    p["reconsumeTimes"]
                );
            }
            if c["consumed"] == json!(true) {
                match c["committedBy"].as_object() {
                    Some(by) => {
                        out += &format!(
                            "      consumed: offset {} committed by {} at {}\n",
                            by["offset"],
                            who(&Value::Object(by.clone())),
                            at(&by["atMs"])
                        )
                    }
                    None => {
                        out += &format!(
                            "      consumed: {} (committed before the broker's records begin)\n",
                            group_offset(c)
                        )
                    }
                }
            } else if c["kind"] != json!("dlq") {
                out += &format!("      not consumed yet ({})\n", group_offset(c));
            }
        }
        for w in g["retryWaiting"].as_array().into_iter().flatten() {
            out += &format!(
                "    sent back, waiting (delay level {}) since {}\n",
                w["delayLevel"],
                at(&w["storeTimestamp"])
            );
        }
    }
    if life["recording"] == json!(false) {
        out += "  (pulls and commits are not recorded: enableMessageLife=false)\n";
    } else {
        out += &format!(
            "  (pulls and commits remembered since {})\n",
            at(&life["since"])
        );
    }
    out
}

impl MessageLife {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let lives = ctx
            .client
            .message_life(&self.topic, self.msg_id.as_deref(), self.key.as_deref())
            .await?;
        if lives.is_empty() {
            bail!(
                "no message {} on {}",
                self.msg_id.as_deref().map_or_else(
                    || format!("with key {}", self.key.as_deref().unwrap_or("")),
                    str::to_string
                ),
                self.topic
            );
        }
        if ctx.json {
            ctx.print(Table::new([]), json!(lives));
        } else {
            for life in &lives {
                println!("{}", report(life));
            }
        }
        Ok(())
    }
}
