//! `ferromq bench`: load generators that talk to a broker over the remoting protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, NoInbound};
use hdrhistogram::Histogram;

mod topics;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Async sends a bench producer keeps in flight at most.
const ASYNC_IN_FLIGHT: usize = 1024;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Producers sending at full speed or a fixed rate; prints throughput and latency.
    Produce(ProduceArgs),
    /// Consumers draining a topic; prints throughput.
    Consume(ConsumeArgs),
    /// Timer messages: schedule N timers over a window, then measure delivery lateness.
    Timers(TimerArgs),
    /// Undecided transactions: store N half messages, then time the broker's check round.
    Transactions(TransactionArgs),
    /// Retries a send until one succeeds; prints the time since `--since-ms` (when the
    /// servers were started), for start-up comparisons.
    FirstSend(FirstSendArgs),
    /// Hostile load: many idle connections and a flood of suspended pulls, while timing
    /// an ordinary request and reading the broker's memory.
    Abuse(AbuseArgs),
    /// A name server and broker at one address that answer success and store nothing:
    /// the protocol's ceiling on this machine, for comparison.
    NullBroker {
        #[arg(long, default_value = "127.0.0.1:19876")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Args)]
pub struct TransactionArgs {
    /// Broker address (loopback).
    #[arg(long, default_value = "127.0.0.1:10911")]
    broker: String,
    /// Half messages left undecided.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// How long to wait for the checks.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    /// Requests in flight while sending.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendMode {
    Sync,
    Async,
    Oneway,
}

#[derive(Args)]
pub struct ProduceArgs {
    /// Name server (loopback).
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    #[arg(long, default_value = "BenchmarkTest")]
    topic: String,
    /// Concurrent producers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, value_enum, default_value_t = SendMode::Sync)]
    mode: SendMode,
    /// Messages per second over all producers (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Stop after this many messages (0 = no limit).
    #[arg(long, default_value_t = 0)]
    messages: u64,
    /// Spread sync sends over this many topics, `<topic>-00000` … (created beforehand).
    #[arg(long, default_value_t = 1)]
    topics: usize,
    /// Push consumer groups `<group>-g000` … consuming the topics while the load runs
    /// (topic t in group t mod groups); the result then says how many messages they got.
    #[arg(long, default_value_t = 0)]
    groups: usize,
    /// The consumer groups' name prefix (with --groups).
    #[arg(long, default_value = "bench-consumer")]
    group: String,
}

#[derive(Args)]
pub struct ConsumeArgs {
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    #[arg(long, default_value = "BenchmarkTest")]
    topic: String,
    #[arg(long, default_value = "benchmark-consumer")]
    group: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
}

#[derive(Args)]
pub struct AbuseArgs {
    /// Broker address (loopback).
    #[arg(long, default_value = "127.0.0.1:10911")]
    broker: String,
    /// The broker's process id, to read its resident memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Idle connections to open and hold.
    #[arg(long, default_value_t = 5000)]
    idle: usize,
    /// Pulls with suspend (long polling) to leave parked, spread over 10 connections.
    #[arg(long, default_value_t = 10_000)]
    pulls: usize,
    /// Topic the pulls wait on (created by a first send).
    #[arg(long, default_value = "AbuseTest")]
    topic: String,
}

#[derive(Args)]
pub struct FirstSendArgs {
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    #[arg(long, default_value = "BenchmarkTest")]
    topic: String,
    /// Unix time in milliseconds the clock starts from (default: now).
    #[arg(long)]
    since_ms: Option<i64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
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
        BenchCommand::Produce(args) => produce(args).await,
        BenchCommand::Consume(args) => consume(args).await,
        BenchCommand::Timers(args) => timers(args).await,
        BenchCommand::Transactions(args) => transactions(args).await,
        BenchCommand::FirstSend(args) => first_send(args).await,
        BenchCommand::Abuse(args) => abuse(args).await,
        BenchCommand::NullBroker { listen } => {
            crate::null_broker::run(listen, crate::serve::shutdown_on_signals()).await
        }
    }
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} {wide_bar} {pos}/{len} {per_sec}",
        )
        .expect("valid template"),
    );
    bar
}

/// The machine-readable last line that bench/compare reads.
fn print_result(messages: u64, failed: u64, size: usize, seconds: f64, h: Option<&Histogram<u64>>) {
    println!("RESULT {}", result_json(messages, failed, size, seconds, h));
}

fn result_json(
    messages: u64,
    failed: u64,
    size: usize,
    seconds: f64,
    h: Option<&Histogram<u64>>,
) -> serde_json::Value {
    let q = |p: f64| h.map_or(0, |h| h.value_at_quantile(p));
    serde_json::json!({
        "messages": messages,
        "failed": failed,
        "seconds": seconds,
        "msgs_per_sec": messages as f64 / seconds,
        "mb_per_sec": messages as f64 * size as f64 / seconds / 1e6,
        "p50_us": q(0.5),
        "p99_us": q(0.99),
        "p999_us": q(0.999),
        "max_us": h.map_or(0, |h| h.max()),
    })
}

fn rss_kb(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Times one ordinary request (GET_MAX_OFFSET) on a fresh connection.
async fn probe_request(broker: &str, topic: &str) -> Result<Duration> {
    let conn = ferromq_remoting::connect(broker, Arc::new(NoInbound), CALL_TIMEOUT).await?;
    let t0 = Instant::now();
    let resp = conn
        .invoke(
            RemotingCommand::request(ferromq_protocol::code::request::GET_MAX_OFFSET)
                .with_field("topic", topic)
                .with_field("queueId", 0),
            CALL_TIMEOUT,
        )
        .await?;
    let took = t0.elapsed();
    conn.close();
    if resp.code != 0 {
        bail!("GET_MAX_OFFSET answered {}: {:?}", resp.code, resp.remark);
    }
    Ok(took)
}

async fn abuse(args: AbuseArgs) -> Result<()> {
    let report = |stage: &str, probe: Result<Duration>| {
        let rss = rss_kb(args.pid).map_or("?".to_string(), |kb| {
            format!("{:.1} MB", kb as f64 / 1024.0)
        });
        match probe {
            Ok(took) => println!(
                "{stage}: broker RSS {rss}; an ordinary request took {:.2} ms",
                took.as_secs_f64() * 1e3
            ),
            // Expected when the idle connections fill the broker's maxConnections.
            Err(e) => println!("{stage}: broker RSS {rss}; an ordinary request failed: {e:#}"),
        }
    };
    // The topic exists before pulls wait on it.
    let conn = ferromq_remoting::connect(&args.broker, Arc::new(NoInbound), CALL_TIMEOUT).await?;
    let send = send_request(&args.topic, 0, b"abuse".to_vec(), "");
    let resp = conn.invoke(send, CALL_TIMEOUT).await?;
    if resp.code != 0 {
        bail!("the first send was refused: {:?}", resp.remark);
    }
    report("before", probe_request(&args.broker, &args.topic).await);

    let mut idle = Vec::with_capacity(args.idle);
    let mut refused = 0;
    for _ in 0..args.idle {
        match tokio::net::TcpStream::connect(&args.broker).await {
            Ok(s) => idle.push(s),
            Err(_) => refused += 1,
        }
    }
    // Connections beyond the broker's limit are closed right after accept.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut closed = 0;
    let mut byte = [0u8; 1];
    for s in &idle {
        if matches!(s.try_read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    println!(
        "{} idle connections opened ({} refused at connect, {} closed by the broker)",
        idle.len(),
        refused,
        closed
    );
    report(
        "with the idle connections",
        probe_request(&args.broker, &args.topic).await,
    );

    let mut pullers = Vec::new();
    for _ in 0..10 {
        pullers.push(
            ferromq_remoting::connect(&args.broker, Arc::new(NoInbound), CALL_TIMEOUT).await?,
        );
    }
    let mut parked = tokio::task::JoinSet::new();
    for i in 0..args.pulls {
        let conn = pullers[i % pullers.len()].clone();
        let pull = RemotingCommand::request(ferromq_protocol::code::request::PULL_MESSAGE)
            .with_field("consumerGroup", format!("abuse-{}", i % 100))
            .with_field("topic", &args.topic)
            .with_field("queueId", 0)
            .with_field("queueOffset", 1)
            .with_field("maxMsgNums", 32)
            .with_field("sysFlag", 2)
            .with_field("commitOffset", 0)
            .with_field("suspendTimeoutMillis", 20_000)
            .with_field("subscription", "*")
            .with_field("subVersion", 0)
            .with_field("expressionType", "TAG");
        parked.spawn(async move { conn.invoke(pull, Duration::from_secs(40)).await });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("{} pulls parked with suspend", args.pulls);
    report(
        "with the pulls parked",
        probe_request(&args.broker, &args.topic).await,
    );
    drop(idle);
    for c in &pullers {
        c.close();
    }
    parked.abort_all();
    tokio::time::sleep(Duration::from_secs(2)).await;
    report(
        "after closing them all",
        probe_request(&args.broker, &args.topic).await,
    );
    Ok(())
}

async fn first_send(args: FirstSendArgs) -> Result<()> {
    use ferromq_client::{Message, Producer};
    let since = args.since_ms.unwrap_or_else(now_ms);
    let first_attempt = Instant::now();
    let deadline = first_attempt + Duration::from_secs(args.seconds);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        // A fresh producer per attempt: nothing learnt from a server that was not up yet
        // is carried over.
        let p = Producer::builder()
            .name_servers([args.namesrv.clone()])
            .group("ferromq-first-send")
            .send_timeout(Duration::from_secs(1))
            .build()?;
        let sent = p.send(Message::new(&args.topic, &b"first"[..])).await;
        // Timed at the answer, before the producer's shutdown.
        let ms = now_ms() - since;
        p.shutdown();
        if sent.is_ok() {
            println!("first successful send {ms} ms after start ({attempts} attempts)");
            println!(
                "RESULT {}",
                serde_json::json!({ "first_send_ms": ms, "attempts": attempts })
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no send succeeded within {} s: {:#}",
                args.seconds,
                sent.unwrap_err()
            );
        }
        // The retry interval bounds how precisely a fast start is measured: a quarter of a
        // millisecond (an OS sleep; tokio's timers tick in whole milliseconds) over the first
        // 100 ms, then a millisecond, so slow starts are not crowded with attempts.
        let pause = if Instant::now() < first_attempt + Duration::from_millis(100) {
            Duration::from_micros(250)
        } else {
            Duration::from_millis(1)
        };
        tokio::task::spawn_blocking(move || std::thread::sleep(pause)).await?;
    }
}

/// Hands out send turns at `rate` per second in total, to the producers in rotation, until
/// `deadline`; then closes the turn semaphores. Arrivals are spread evenly, one every
/// 1/`rate` s, instead of all producers waking together each period: tokio's timers tick
/// in whole milliseconds, so the pacing runs on its own thread with the OS sleep.
fn pace_evenly(rate: u64, producers: usize, deadline: Instant) -> Vec<Arc<tokio::sync::Semaphore>> {
    let turns: Vec<_> = (0..producers)
        .map(|_| Arc::new(tokio::sync::Semaphore::new(0)))
        .collect();
    let handed = turns.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        for n in 0u32.. {
            let due = start + interval * n;
            if due >= deadline {
                break;
            }
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            handed[n as usize % handed.len()].add_permits(1);
        }
        for t in &handed {
            t.close();
        }
    });
    turns
}

fn print_latency(what: &str, h: &Histogram<u64>) {
    println!(
        "{what} latency µs: p50={} p99={} p99.9={} max={}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

async fn produce(args: ProduceArgs) -> Result<()> {
    use ferromq_client::{Message, Producer};
    use std::sync::atomic::{AtomicU64, Ordering};
    let body = bytes::Bytes::from(vec![b'x'; args.size]);
    if args.topics > 1 && args.mode != SendMode::Sync {
        bail!("--topics spreads sync sends only");
    }
    let topic_count = args.topics.max(1);
    let topic_names: Arc<Vec<String>> = Arc::new(
        (0..topic_count)
            .map(|t| topics::topic_name(&args.topic, topic_count, t))
            .collect(),
    );
    let mut producers = Vec::new();
    for i in 0..args.producers.max(1) {
        let p = Producer::builder()
            .name_servers([args.namesrv.clone()])
            .group(format!("ferromq-bench-{i}"))
            .instance_name(format!("bench-{i}"))
            .compress_over(usize::MAX)
            .build()?;
        producers.push(p);
    }
    // Route lookups (and topic creation) happen before the clock starts: every producer
    // sends once to every topic, the producers side by side.
    let mut warm_ups = tokio::task::JoinSet::new();
    for p in &producers {
        let (p, names, body) = (p.clone(), topic_names.clone(), body.clone());
        warm_ups.spawn(async move {
            for topic in names.iter() {
                p.send(Message::new(topic, body.clone()))
                    .await
                    .with_context(|| format!("warm-up send to {topic}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = warm_ups.join_next().await {
        done.context("warm-up task")??;
    }
    let warmed = (producers.len() * topic_count) as u64;
    let groups = if args.groups > 0 {
        Some(
            topics::Groups::start(
                &args.namesrv,
                &args.topic,
                topic_count,
                args.groups,
                &args.group,
            )
            .await?,
        )
    } else {
        None
    };
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let limit = if args.messages == 0 {
        u64::MAX
    } else {
        args.messages
    };
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let pace = (args.rate > 0).then(|| pace_evenly(args.rate, producers.len(), deadline));
    let bar = progress_bar((args.messages > 0).then_some(args.messages));
    // Async sends in flight at most; finishing waits for all of them.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(ASYNC_IN_FLIGHT));
    // Async round trips are timed in their callbacks.
    let async_hist = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new(3).expect("histogram bounds"),
    ));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, p) in producers.clone().into_iter().enumerate() {
        let turns = pace.as_ref().map(|turns| turns[i].clone());
        let (sent, failed, body, names, bar) = (
            sent.clone(),
            failed.clone(),
            body.clone(),
            topic_names.clone(),
            bar.clone(),
        );
        let producer_count = producers.len();
        let in_flight = in_flight.clone();
        let async_hist = async_hist.clone();
        let mode = args.mode;
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram bounds");
            let mut sent_here = 0usize;
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < limit {
                if let Some(turns) = &turns {
                    match turns.acquire().await {
                        Ok(turn) => turn.forget(),
                        Err(_) => break,
                    }
                }
                // Producer i takes every producers-th topic from topic i, as the Go bench.
                let topic = &names[(sent_here * producer_count + i) % names.len()];
                sent_here += 1;
                let msg = Message::new(topic, body.clone());
                let t0 = Instant::now();
                let ok = match mode {
                    SendMode::Sync => p.send(msg).await.is_ok(),
                    SendMode::Oneway => p.send_oneway(msg).await.is_ok(),
                    SendMode::Async => {
                        let failed = failed.clone();
                        let permit = in_flight
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("semaphore open");
                        let (async_hist, bar) = (async_hist.clone(), bar.clone());
                        p.send_with_callback(msg, move |r| {
                            match r {
                                Ok(_) => {
                                    async_hist
                                        .lock()
                                        .expect("histogram lock")
                                        .record(t0.elapsed().as_micros() as u64)
                                        .ok();
                                    bar.inc(1);
                                }
                                Err(_) => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            drop(permit);
                        });
                        continue;
                    }
                };
                if ok {
                    hist.record(t0.elapsed().as_micros() as u64).ok();
                    bar.inc(1);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram bounds");
    for t in tasks {
        hist.add(t.await.context("producer task")?).ok();
    }
    let _all_done = tokio::time::timeout(
        Duration::from_secs(30),
        in_flight.acquire_many(ASYNC_IN_FLIGHT as u32),
    )
    .await;
    hist.add(&*async_hist.lock().expect("histogram lock")).ok();
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let done = hist.len();
    println!(
        "{} producers, {} B, {:?}: {} sent, {} failed in {:.1} s: {:.0} msgs/s, {:.1} MB/s",
        producers.len(),
        args.size,
        match args.mode {
            SendMode::Sync => "sync",
            SendMode::Async => "async",
            SendMode::Oneway => "oneway",
        },
        done,
        failed.load(Ordering::Relaxed),
        elapsed,
        done as f64 / elapsed,
        done as f64 * args.size as f64 / elapsed / 1e6
    );
    print_latency("send", &hist);
    let mut result = result_json(
        done,
        failed.load(Ordering::Relaxed),
        args.size,
        elapsed,
        Some(&hist),
    );
    if let Some(groups) = groups {
        // Every message sent, the warm-up's too, should reach its group.
        let want = done + warmed;
        let (got, drain_s) = groups.drain(want).await;
        println!("consumed={got} of {want} (drain {drain_s:.1}s)");
        result["consumed"] = got.into();
        result["drain_s"] = drain_s.into();
    }
    println!("RESULT {result}");
    for p in producers {
        p.shutdown();
    }
    Ok(())
}

async fn consume(args: ConsumeArgs) -> Result<()> {
    use ferromq_client::{ConsumeFrom, ConsumeResult, PushConsumer, Selector};
    use std::sync::atomic::{AtomicU64, Ordering};
    let count = Arc::new(AtomicU64::new(0));
    let body_bytes = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(Some(args.messages));
    let (c, b, bb) = (count.clone(), bar.clone(), body_bytes.clone());
    let started = Instant::now();
    // Throughput counts from the first message to the last, as the Go bench does, so the
    // group's start-up and rebalance are not part of it.
    let first_last = Arc::new(std::sync::Mutex::new(None::<(Instant, Instant)>));
    let fl = first_last.clone();
    let consumer = PushConsumer::builder()
        .name_servers([args.namesrv.clone()])
        .group(&args.group)
        .consume_from(ConsumeFrom::FirstOffset)
        .consume_batch_size(32)
        .subscribe(&args.topic, Selector::All)
        .start(move |msgs| {
            c.fetch_add(msgs.len() as u64, Ordering::Relaxed);
            let now = Instant::now();
            let mut span = fl.lock().expect("first/last lock");
            *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
            drop(span);
            bb.fetch_add(
                msgs.iter().map(|m| m.body.len() as u64).sum(),
                Ordering::Relaxed,
            );
            b.inc(msgs.len() as u64);
            async { ConsumeResult::Success }
        })
        .await?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    while count.load(Ordering::Relaxed) < args.messages && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = count.load(Ordering::Relaxed);
    let elapsed = match *first_last.lock().expect("first/last lock") {
        Some((first, last)) if last > first => (last - first).as_secs_f64(),
        _ => started.elapsed().as_secs_f64(),
    };
    bar.finish_and_clear();
    consumer.shutdown().await;
    println!(
        "consumed {n} messages in {elapsed:.1} s: {:.0} msgs/s",
        n as f64 / elapsed
    );
    let mean_size = body_bytes.load(Ordering::Relaxed) / n.max(1);
    print_result(n, 0, mean_size as usize, elapsed, None);
    Ok(())
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

/// Counts CHECK_TRANSACTION_STATE requests and notes when the first and last arrived.
struct CheckCounter {
    count: std::sync::atomic::AtomicU64,
    first_last: std::sync::Mutex<Option<(Instant, Instant)>>,
}

impl ferromq_remoting::InboundHandler for CheckCounter {
    async fn on_request(&self, _conn: Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        if req.code == 39 {
            self.count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let now = Instant::now();
            let mut fl = self.first_last.lock().expect("check times lock");
            *fl = Some(fl.map_or((now, now), |(first, _)| (first, now)));
        }
        None
    }
}

async fn transactions(args: TransactionArgs) -> Result<()> {
    let counter = Arc::new(CheckCounter {
        count: Default::default(),
        first_last: Default::default(),
    });
    let conn = ferromq_remoting::connect(&args.broker, counter.clone(), Duration::from_secs(5))
        .await
        .with_context(|| format!("connecting to {}", args.broker))?;
    let group = format!("bench-tx-{}", std::process::id());
    let hb = format!(
        r#"{{"clientID":"{group}@1","producerDataSet":[{{"groupName":"{group}"}}],"consumerDataSet":[]}}"#
    );
    conn.invoke(
        RemotingCommand::request(34).with_body(hb.into_bytes()),
        CALL_TIMEOUT,
    )
    .await?;
    let topic = format!("bench-tx-{}", std::process::id());
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.in_flight.max(1)));
    let mut tasks = Vec::new();
    for i in 0..args.count {
        let uniq = format!("BENCHTX{i:025}");
        let props = encode_properties([
            ("TRAN_MSG", "true"),
            ("PGROUP", group.as_str()),
            ("UNIQ_KEY", uniq.as_str()),
        ]);
        let mut req = send_request(&topic, (i % 4) as i32, vec![b'x'; 1024], &props);
        req.ext_fields.insert("sysFlag".into(), "4".into());
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let r = conn.invoke(req, CALL_TIMEOUT).await;
            drop(permit);
            r
        }));
    }
    for t in tasks {
        let resp = t.await.context("send task")?.context("send")?;
        if resp.code != 0 {
            bail!("half message refused: code {} {:?}", resp.code, resp.remark);
        }
    }
    println!(
        "stored {} undecided half messages in {:.1} s",
        args.count,
        started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    while counter.count.load(std::sync::atomic::Ordering::Relaxed) < args.count
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = counter.count.load(std::sync::atomic::Ordering::Relaxed);
    let span = counter
        .first_last
        .lock()
        .expect("check times lock")
        .map(|(a, b)| b - a)
        .unwrap_or_default();
    println!(
        "received {n} checks; first to last check of the round: {:.2} s",
        span.as_secs_f64()
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
