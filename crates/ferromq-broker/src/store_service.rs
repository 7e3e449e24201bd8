//! The broker's wrapper around the synchronous store:
//!
//! * appends are **combined**: a sender queues its job and, if no append is running, runs
//!   one for everything queued (natural batching under load, none when idle, and no
//!   hand-off to another thread: on two cores the context switches cost more than the
//!   write); then long-polling pulls of the touched queues are woken;
//! * under `SYNC_FLUSH` a **flusher** thread fsyncs once for everything appended before it
//!   started (group commit) and publishes the flushed offset; senders wait for it to pass
//!   their entry. While several senders keep appending it first lets the group fill (see
//!   [`gather`]); under `ASYNC_FLUSH` it fsyncs every `flushIntervalCommitLog`;
//! * a **checkpoint** thread makes queues and index durable every few seconds;
//! * sends are refused while the disk is (almost) full, see [`DiskGuard`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferromq_store::{AppendResult, FlushMode, MessageStore, PutMessage, StoreError};
use tokio::sync::{oneshot, watch, Notify};
use tracing::{error, warn};

use crate::disk::DiskGuard;

/// Jobs merged into one store append at most.
const MAX_JOBS_PER_BATCH: usize = 512;
/// Interval between checkpoints.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3);
/// How often a gathering flusher looks for new appends.
const GATHER_STEP: Duration = Duration::from_micros(50);
/// The longest a flush waits for its group to fill, whatever the last fsync took.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// Where the flusher reports each fsync: how long it took, and under SYNC_FLUSH how
/// many append jobs (sends) it made durable.
pub struct FlushObserver {
    pub fsync_ms: prometheus_client::metrics::histogram::Histogram,
    pub group_commit: prometheus_client::metrics::histogram::Histogram,
}

impl Default for FlushObserver {
    /// Observations no one reads.
    fn default() -> Self {
        use prometheus_client::metrics::histogram::Histogram;
        FlushObserver {
            fsync_ms: Histogram::new([1.0]),
            group_commit: Histogram::new([1.0]),
        }
    }
}

struct AppendJob {
    msgs: Vec<PutMessage>,
    reply: oneshot::Sender<Result<Vec<AppendResult>, AppendFailure>>,
}

struct AppendFailure {
    reason: String,
    disk_full: bool,
}

/// Per-queue wake-ups for parked pulls, by topic, then queue id (looked up by `&str`, so
/// waking after an append allocates nothing).
#[derive(Default)]
pub struct PullWaker {
    topics: Mutex<HashMap<String, HashMap<i32, Arc<Notify>>>>,
    /// Long-polling PULL_MESSAGE requests, held as table entries (POP and notification
    /// requests wait on the notifiers).
    held: Arc<crate::pull_hold::HeldPulls>,
}

impl PullWaker {
    /// The notifier of one queue; register interest before re-checking the queue.
    pub fn notifier(&self, topic: &str, queue_id: i32) -> Arc<Notify> {
        let mut topics = self.topics.lock().expect("waker lock");
        let queues = match topics.get_mut(topic) {
            Some(queues) => queues,
            None => topics.entry(topic.to_string()).or_default(),
        };
        queues.entry(queue_id).or_default().clone()
    }

    /// The held long-polling pulls.
    pub fn held(&self) -> &Arc<crate::pull_hold::HeldPulls> {
        &self.held
    }

    /// Wakes every parked pull: a slave's copy grew, and which queues it touched is not
    /// worth finding out.
    pub fn wake_all(&self) {
        self.held.wake_all();
        let topics = self.topics.lock().expect("waker lock");
        for n in topics.values().flat_map(|queues| queues.values()) {
            n.notify_waiters();
        }
    }

    /// Wakes the pulls parked on these queues (sorted, without repeats).
    fn wake(&self, touched: &[(&str, i32)]) {
        self.held.wake(touched);
        let topics = self.topics.lock().expect("waker lock");
        for (topic, queue_id) in touched {
            if let Some(n) = topics.get(*topic).and_then(|queues| queues.get(queue_id)) {
                n.notify_waiters();
            }
        }
    }
}

/// Why a put did not complete as asked.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("store append failed: {0}")]
    Store(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("flush did not complete in time")]
    FlushTimeout(Vec<AppendResult>),
    #[error("{0}")]
    Illegal(String),
    #[error("{0}")]
    DiskFull(String),
    #[error("the broker is a slave: messages are sent to its master")]
    Slave,
    /// Stored here, but no slave was there to copy it (`SLAVE_NOT_AVAILABLE`).
    #[error("no slave is available to hold the message")]
    SlaveNotAvailable(Vec<AppendResult>),
    /// Controller mode: the controllers have not answered this master for a heartbeat
    /// timeout; it may have been replaced, so it takes no writes. Nothing stored.
    #[error("this master has lost contact with the controllers and takes no writes until it hears from them")]
    LeaseExpired,
    /// Controller mode: fewer brokers in sync than `minInSyncReplicas`; nothing stored.
    #[error("in-sync replicas not enough")]
    InSyncReplicasNotEnough,
    /// Stored here, but no slave acknowledged it in time (`FLUSH_SLAVE_TIMEOUT`).
    #[error("the slave did not acknowledge the message in time")]
    SlaveTimeout(Vec<AppendResult>),
}

impl PutError {
    /// For the broker's own puts (retries, transaction decisions): a message stored here but
    /// not yet flushed or replicated as asked is stored all the same, and redoing the put
    /// would store it twice.
    pub fn accept_stored(self) -> Result<Vec<AppendResult>, PutError> {
        match self {
            PutError::FlushTimeout(r)
            | PutError::SlaveNotAvailable(r)
            | PutError::SlaveTimeout(r) => Ok(r),
            e => Err(e),
        }
    }
}

/// An append past the read limit: the log's end after it and the queues it touched.
struct UnconfirmedAppend {
    end: u64,
    queues: Vec<(String, i32)>,
}

pub struct StoreService {
    store: Arc<MessageStore>,
    /// Jobs waiting for the next append; bounded by the requests in flight.
    pending: Mutex<Vec<AppendJob>>,
    /// Held by whoever is appending.
    appending: Mutex<()>,
    closed: AtomicBool,
    flushed: watch::Receiver<u64>,
    /// Where the log ends after the last append: wakes replication to slaves.
    log_end: watch::Sender<u64>,
    flush_wanted: Arc<(Mutex<bool>, std::sync::Condvar)>,
    /// Append jobs done so far under SYNC_FLUSH: tells the flusher how many senders a
    /// flush covers and whether more are still arriving.
    appends: Arc<AtomicU64>,
    mode: FlushMode,
    sync_flush_timeout: Duration,
    waker: Arc<PullWaker>,
    /// Appends past the read limit (controller mode: not yet in every in-sync broker), by
    /// the log end after each, with the queues they touched: their pulls wake once
    /// confirmed.
    unconfirmed: Mutex<std::collections::VecDeque<UnconfirmedAppend>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopping: Arc<AtomicBool>,
    disk: DiskGuard,
}

impl StoreService {
    /// The share of the store's disk in use, 0.0-1.0.
    pub fn disk_used_ratio(&self) -> f64 {
        self.disk.used_ratio()
    }

    pub fn start(
        store: Arc<MessageStore>,
        mode: FlushMode,
        flush_interval: Duration,
        sync_flush_timeout: Duration,
        disk: DiskGuard,
        observer: FlushObserver,
    ) -> Arc<Self> {
        let (flushed_tx, flushed_rx) = watch::channel(store.flushed_offset());
        let log_end = watch::channel(store.write_offset()).0;
        let flush_wanted = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let appends = Arc::new(AtomicU64::new(0));
        let waker = Arc::new(PullWaker::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let store = store.clone();
            let flush_wanted = flush_wanted.clone();
            let appends = appends.clone();
            let stopping = stopping.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("ferromq-flusher".into())
                    .spawn(move || {
                        Flusher {
                            store,
                            flushed: flushed_tx,
                            flush_wanted,
                            mode,
                            interval: flush_interval,
                            stopping,
                            observer,
                        }
                        .run(&appends)
                    })
                    .expect("spawning the flusher thread"),
            );
        }
        {
            let store = store.clone();
            let stopping = stopping.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("ferromq-checkpoint".into())
                    .spawn(move || {
                        while !sleep_unless_stopping(&stopping, CHECKPOINT_INTERVAL) {
                            if let Err(e) = store.checkpoint_lazily() {
                                error!(error = %e, "checkpoint failed");
                            }
                        }
                    })
                    .expect("spawning the checkpoint thread"),
            );
        }
        Arc::new(StoreService {
            store,
            pending: Mutex::new(Vec::new()),
            appending: Mutex::new(()),
            closed: AtomicBool::new(false),
            flushed: flushed_rx,
            log_end,
            flush_wanted,
            appends,
            mode,
            sync_flush_timeout,
            waker,
            unconfirmed: Default::default(),
            threads: Mutex::new(threads),
            stopping,
            disk,
        })
    }

    pub fn store(&self) -> &Arc<MessageStore> {
        &self.store
    }

    /// The read limit moved up to `limit`: wakes the pulls parked on queues that appends
    /// below it touched.
    pub fn confirmed(&self, limit: u64) {
        let mut queues: Vec<(String, i32)> = Vec::new();
        {
            let mut pending = self.unconfirmed.lock().expect("unconfirmed lock");
            while pending.front().is_some_and(|a| a.end <= limit) {
                if let Some(append) = pending.pop_front() {
                    queues.extend(append.queues);
                }
            }
        }
        if queues.is_empty() {
            return;
        }
        queues.sort_unstable();
        queues.dedup();
        let touched: Vec<(&str, i32)> = queues.iter().map(|(t, q)| (t.as_str(), *q)).collect();
        self.waker.wake(&touched);
    }

    pub fn waker(&self) -> &Arc<PullWaker> {
        &self.waker
    }

    /// Changes after every append, to where the log then ends.
    pub fn log_end(&self) -> watch::Receiver<u64> {
        self.log_end.subscribe()
    }

    /// Appends messages; under SYNC_FLUSH (unless `wait_flush` is false) returns only once
    /// an fsync covers them.
    pub async fn put(
        &self,
        msgs: Vec<PutMessage>,
        wait_flush: bool,
    ) -> Result<Vec<AppendResult>, PutError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PutError::ShuttingDown);
        }
        if self.disk.refuses() {
            return Err(PutError::DiskFull(self.disk.describe()));
        }
        let bytes: u64 = msgs.iter().map(|m| m.record.len() as u64).sum();
        let (reply, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending jobs lock")
            .push(AppendJob { msgs, reply });
        self.drain();
        let results = match rx.await.map_err(|_| PutError::ShuttingDown)? {
            Ok(results) => results,
            Err(AppendFailure {
                disk_full: true, ..
            }) => {
                self.disk.mark_full();
                return Err(PutError::DiskFull(self.disk.describe()));
            }
            Err(AppendFailure { reason, .. }) => return Err(PutError::Store(reason)),
        };
        self.disk.wrote(bytes);
        if self.mode == FlushMode::Sync && wait_flush {
            let end = results.last().map_or(0, |r| r.end_offset);
            let mut flushed = self.flushed.clone();
            let outcome = tokio::time::timeout(self.sync_flush_timeout, async {
                flushed.wait_for(|f| *f >= end).await.is_ok()
            })
            .await;
            match outcome {
                Ok(true) => {}
                Ok(false) => return Err(PutError::ShuttingDown),
                Err(_) => return Err(PutError::FlushTimeout(results)),
            }
        }
        Ok(results)
    }

    /// Appends every queued job unless another caller is already doing so. That caller
    /// re-checks the queue after releasing the lock, so no job is left behind: a job is
    /// queued before its owner tries the lock, and the holder looks again after letting go.
    fn drain(&self) {
        loop {
            let Ok(_guard) = self.appending.try_lock() else {
                return;
            };
            loop {
                let jobs: Vec<AppendJob> = {
                    let mut pending = self.pending.lock().expect("pending jobs lock");
                    let n = pending.len().min(MAX_JOBS_PER_BATCH);
                    pending.drain(..n).collect()
                };
                if jobs.is_empty() {
                    break;
                }
                self.append_jobs(jobs);
            }
            drop(_guard);
            if self.pending.lock().expect("pending jobs lock").is_empty() {
                return;
            }
        }
    }

    fn append_jobs(&self, jobs: Vec<AppendJob>) {
        let counts: Vec<usize> = jobs.iter().map(|j| j.msgs.len()).collect();
        let mut all: Vec<PutMessage> = Vec::with_capacity(counts.iter().sum());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            all.extend(job.msgs);
            replies.push(job.reply);
        }
        match self.store.append(&mut all) {
            Ok(results) => {
                let end = results.last().map(|r| r.end_offset);
                if self.mode == FlushMode::Sync {
                    self.appends
                        .fetch_add(replies.len() as u64, Ordering::Release);
                    let (lock, cvar) = &*self.flush_wanted;
                    let mut wanted = lock.lock().expect("flush flag lock");
                    // Already asked and not yet taken: the flusher will see this append
                    // too, and a wake-up (a syscall) would be wasted.
                    if !*wanted {
                        *wanted = true;
                        cvar.notify_one();
                    }
                }
                let mut it = results.into_iter();
                for (reply, n) in replies.into_iter().zip(counts) {
                    let _ = reply.send(Ok(it.by_ref().take(n).collect()));
                }
                if let Some(end) = end {
                    self.log_end.send_replace(end);
                }
                let mut touched: Vec<(&str, i32)> =
                    all.iter().map(|m| (m.topic.as_str(), m.queue_id)).collect();
                touched.sort_unstable();
                touched.dedup();
                match end.filter(|e| *e > self.store.read_limit()) {
                    // Not readable until confirmed: woken then (`confirmed`).
                    Some(end) => {
                        self.unconfirmed
                            .lock()
                            .expect("unconfirmed lock")
                            .push_back(UnconfirmedAppend {
                                end,
                                queues: touched.iter().map(|(t, q)| (t.to_string(), *q)).collect(),
                            });
                        // Confirmed meanwhile, before it was queued.
                        let limit = self.store.read_limit();
                        if limit >= end {
                            self.confirmed(limit);
                        }
                    }
                    None => self.waker.wake(&touched),
                }
            }
            Err(e) => {
                let disk_full = matches!(&e, StoreError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::StorageFull
                        || source.kind() == std::io::ErrorKind::QuotaExceeded);
                if disk_full {
                    warn!(error = %e, "append failed: no space left; the batch was rolled back");
                } else {
                    error!(error = %e, "append failed; the batch was rolled back");
                }
                for reply in replies {
                    let _ = reply.send(Err(AppendFailure {
                        reason: e.to_string(),
                        disk_full,
                    }));
                }
            }
        }
    }

    /// Refuses new appends, stops the threads, then flushes and checkpoints.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        drop(self.appending.lock().expect("append lock"));
        self.stopping.store(true, Ordering::Release);
        {
            let (lock, cvar) = &*self.flush_wanted;
            *lock.lock().expect("flush flag lock") = true;
            cvar.notify_all();
        }
        for t in self.threads.lock().expect("threads lock").drain(..) {
            let _ = t.join();
        }
        if let Err(e) = self.store.checkpoint() {
            error!(error = %e, "final checkpoint failed");
        }
    }
}

/// Sleeps up to `d` in small steps; returns true once stopping.
fn sleep_unless_stopping(stopping: &AtomicBool, d: Duration) -> bool {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        if stopping.load(Ordering::Acquire) {
            return true;
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    stopping.load(Ordering::Acquire)
}

/// Holds a flush back while appends keep arriving, for at most `limit`: each fsync costs the
/// same whatever it covers (on a VM, several exits to the hypervisor), so when one connection
/// feeds many senders' requests one after another, small groups spend more CPU on fsyncs
/// than on the messages. Returns as soon as a step passes with no new append, so a burst
/// that has fully arrived is flushed at once.
fn gather(appends: &AtomicU64, limit: Duration) {
    let deadline = Instant::now() + limit.min(MAX_GATHER);
    let mut seen = appends.load(Ordering::Acquire);
    while Instant::now() < deadline {
        std::thread::sleep(GATHER_STEP);
        let now = appends.load(Ordering::Acquire);
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// The flusher thread's state: see the module documentation.
struct Flusher {
    store: Arc<MessageStore>,
    flushed: watch::Sender<u64>,
    flush_wanted: Arc<(Mutex<bool>, std::sync::Condvar)>,
    mode: FlushMode,
    interval: Duration,
    stopping: Arc<AtomicBool>,
    observer: FlushObserver,
}

impl Flusher {
    fn run(self, appends: &AtomicU64) {
        let Flusher {
            store,
            flushed,
            flush_wanted,
            mode,
            interval,
            stopping,
            observer,
        } = self;
        // What the last fsync took and how many append jobs it covered. A lone sender's
        // flushes cover one job each and are never held back, so its latency is untouched.
        let mut last_fsync = Duration::ZERO;
        let mut last_covered = 0u64;
        let mut appends_before_last = 0u64;
        loop {
            let stop = match mode {
                FlushMode::Sync => {
                    let (lock, cvar) = &*flush_wanted;
                    let mut wanted = lock.lock().expect("flush flag lock");
                    while !*wanted {
                        wanted = cvar.wait(wanted).expect("flush flag lock");
                    }
                    *wanted = false;
                    drop(wanted);
                    let stop = stopping.load(Ordering::Acquire);
                    if !stop && last_covered > 1 {
                        gather(appends, last_fsync);
                    }
                    stop
                }
                FlushMode::Async => sleep_unless_stopping(&stopping, interval),
            };
            let appends_now = appends.load(Ordering::Acquire);
            last_covered = appends_now - appends_before_last;
            appends_before_last = appends_now;
            let started = Instant::now();
            let before = store.flushed_offset();
            let result = store.flush();
            last_fsync = started.elapsed();
            match result {
                Ok(offset) => {
                    // Only flushes that wrote something: idle ASYNC_FLUSH ticks would bury
                    // the figures under zeros.
                    if offset > before {
                        observer.fsync_ms.observe(last_fsync.as_secs_f64() * 1000.0);
                        if mode == FlushMode::Sync {
                            observer.group_commit.observe(last_covered as f64);
                        }
                    }
                    flushed.send_replace(offset);
                }
                Err(e) => error!(error = %e, "commit-log flush failed"),
            }
            if stop {
                break;
            }
        }
    }
}
