//! `ferromq bench`: load generators that talk to a broker over the remoting protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, NoInbound};
use hdrhistogram::Histogram;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Timer messages: schedule N timers over a window, then measure delivery lateness.
    Timers(TimerArgs),
}

#[derive(Args)]
pub struct TimerArgs {
    /// Broker address (loopback).
    #[arg(long, default_value = "127.0.0.1:10911")]
    broker: String,
    /// Timers to schedule.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Due times are spread evenly over this many seconds, starting `--lead-secs` ahead.
    #[arg(long, default_value_t = 60)]
    window_secs: u64,
    /// Seconds between the start of sending and the first due time.
    #[arg(long, default_value_t = 30)]
    lead_secs: u64,
    /// Only schedule (to measure memory with timers pending); do not wait for delivery.
    #[arg(long)]
    schedule_only: bool,
    /// Requests in flight while sending.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Timers(args) => timers(args).await,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn send_request(topic: &str, queue_id: i32, body: Vec<u8>, properties: &str) -> RemotingCommand {
    RemotingCommand::request(10)
        .with_field("producerGroup", "ferromq-bench")
        .with_field("topic", topic)
        .with_field("defaultTopic", "TBW102")
        .with_field("defaultTopicQueueNums", 4)
        .with_field("queueId", queue_id)
        .with_field("sysFlag", 0)
        .with_field("bornTimestamp", now_ms())
        .with_field("flag", 0)
        .with_field("properties", properties)
        .with_body(body)
}

async fn timers(args: TimerArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be positive");
    }
    let conn = ferromq_remoting::connect(&args.broker, Arc::new(NoInbound), Duration::from_secs(5))
        .await
        .with_context(|| format!("connecting to {}", args.broker))?;
    let topic = format!("bench-timers-{}", std::process::id());
    let first_due = now_ms() + args.lead_secs as i64 * 1000;
    let window_ms = args.window_secs as i64 * 1000;
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.in_flight.max(1)));
    let mut tasks = Vec::with_capacity(args.count as usize);
    for i in 0..args.count {
        let due = first_due + (i as i64 * window_ms) / args.count as i64;
        let props = encode_properties([("TIMER_DELIVER_MS", due.to_string().as_str())]);
        let req = send_request(&topic, (i % 4) as i32, due.to_be_bytes().to_vec(), &props);
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let resp = conn.invoke(req, CALL_TIMEOUT).await;
            drop(permit);
            resp
        }));
    }
    for t in tasks {
        let resp = t.await.context("send task")?.context("send")?;
        if resp.code != 0 {
            bail!("send refused: code {} {:?}", resp.code, resp.remark);
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    println!(
        "scheduled {} timers in {:.1} s ({:.0}/s), due over {} s starting in {} s",
        args.count,
        send_secs,
        args.count as f64 / send_secs,
        args.window_secs,
        args.lead_secs
    );
    if args.schedule_only {
        return Ok(());
    }
    let mut lateness = Histogram::<u64>::new(3).expect("histogram bounds");
    let mut early = 0u64;
    let deadline = Instant::now() + Duration::from_secs(args.lead_secs + args.window_secs + 120);
    let mut offsets = [0i64; 4];
    let mut received = 0u64;
    while received < args.count && Instant::now() < deadline {
        for q in 0..4 {
            let (got, next) = pull(&conn, &topic, q, offsets[q as usize]).await?;
            offsets[q as usize] = next;
            for m in got {
                let due = i64::from_be_bytes(m.body[..8].try_into().context("bench body")?);
                let late = m.store_timestamp - due;
                if late < 0 {
                    early += 1;
                }
                lateness.record(late.max(0) as u64).ok();
                received += 1;
            }
        }
    }
    println!("delivered {received}/{} (early: {early})", args.count);
    println!(
        "lateness ms: p50={} p99={} p99.9={} max={}",
        lateness.value_at_quantile(0.5),
        lateness.value_at_quantile(0.99),
        lateness.value_at_quantile(0.999),
        lateness.max()
    );
    Ok(())
}

async fn pull(
    conn: &Connection,
    topic: &str,
    queue: i32,
    offset: i64,
) -> Result<(Vec<MessageExt>, i64)> {
    let req = RemotingCommand::request(11)
        .with_field("consumerGroup", "ferromq-bench")
        .with_field("topic", topic)
        .with_field("queueId", queue)
        .with_field("queueOffset", offset)
        .with_field("maxMsgNums", 32)
        .with_field("sysFlag", 2)
        .with_field("commitOffset", 0)
        .with_field("suspendTimeoutMillis", 200)
        .with_field("subVersion", 0);
    let resp = conn.invoke(req, CALL_TIMEOUT).await?;
    let next = resp
        .field("nextBeginOffset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(offset);
    match resp.code {
        0 => Ok((MessageExt::decode_all(&resp.body)?, next)),
        17 | 19 | 20 | 21 => Ok((Vec::new(), next)),
        code => bail!("pull failed: code {code} {:?}", resp.remark),
    }
}
