//! `queryMsgTraceById`: a message's trace, read back from the trace topic where clients
//! with tracing on (Java `enableMsgTrace`, Go `WithTrace`) wrote it. Printed as Apache's
//! mqadmin prints it (its runbooks parse the columns); `--json` gives every record.

use anyhow::{bail, Result};
use clap::Args;
use ferromq_client::trace::{self, status, TraceRecord, Traced};
use serde_json::json;

use crate::ctx::Ctx;
use crate::table::Table;

#[derive(Args)]
pub struct QueryMsgTraceById {
    /// The traced message's id (its unique id, as its producer's send result gave it).
    #[arg(short = 'i', long = "msgId")]
    msg_id: String,
    /// The topic the clients wrote their traces to.
    #[arg(short = 't', long = "traceTopic", default_value = trace::TRACE_TOPIC)]
    trace_topic: String,
    /// Trace messages stored at or after (ms).
    #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
    begin: i64,
    /// Trace messages stored at or before (ms).
    #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
    end: i64,
    /// Trace messages read per broker at most.
    #[arg(short = 'c', long = "maxNum", default_value_t = 64)]
    max: i32,
}

/// One mqadmin row: a send (`Pub`) or a consumption (`Sub`) with its group, client, time,
/// cost and result.
fn record_line(
    kind: &str,
    group: &str,
    t: &Traced,
    timestamp: i64,
    cost_ms: i64,
    success: bool,
) -> String {
    line([
        kind,
        group,
        &t.client_host,
        &super::value::local_time(timestamp, false),
        &format!("{cost_ms}ms"),
        status(success),
    ])
}

/// mqadmin's columns: `%-10s %-20s %-20s %-20s %-10s %-10s`.
fn line(cells: [&str; 6]) -> String {
    format!(
        "{:<10} {:<20} {:<20} {:<20} {:<10} {:<10}\n",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
    )
}

impl QueryMsgTraceById {
    pub async fn run(self, ctx: &Ctx) -> Result<()> {
        let traced = ctx
            .client
            .message_trace(
                &self.trace_topic,
                &self.msg_id,
                self.max,
                self.begin,
                self.end,
            )
            .await?;
        if traced.is_empty() {
            bail!(
                "no trace of {} on {} (were the clients' traces on, and is the id the message's unique id?)",
                self.msg_id,
                self.trace_topic
            );
        }
        if ctx.json {
            ctx.print(Table::new([]), json!(traced));
            return Ok(());
        }
        let mut out = String::new();
        for t in &traced {
            if let TraceRecord::Pub {
                group,
                timestamp,
                cost_ms,
                success,
                ..
            } = &t.record
            {
                out += &line([
                    "#Type",
                    "#ProducerGroup",
                    "#ClientHost",
                    "#SendTime",
                    "#CostTimes",
                    "#Status",
                ]);
                out += &record_line("Pub", group, t, *timestamp, *cost_ms, *success);
                out.push('\n');
            }
        }
        // Consumptions per group, groups in the order they first appear.
        let mut groups: Vec<&str> = Vec::new();
        for t in &traced {
            if let TraceRecord::SubAfter { group, .. } = &t.record {
                if !groups.contains(&group.as_str()) {
                    groups.push(group);
                }
            }
        }
        for g in groups {
            out += &line([
                "#Type",
                "#ConsumerGroup",
                "#ClientHost",
                "#ConsumerTime",
                "#CostTimes",
                "#Status",
            ]);
            for t in &traced {
                if let TraceRecord::SubAfter {
                    group,
                    timestamp,
                    cost_ms,
                    success,
                    ..
                } = &t.record
                {
                    if group == g {
                        out += &record_line("Sub", group, t, *timestamp, *cost_ms, *success);
                    }
                }
            }
            out.push('\n');
        }
        print!("{out}");
        Ok(())
    }
}
