//! The master side: accepts slaves on `haListenPort`, streams the commit log to each from
//! the offset it reports, and tracks how far each has acknowledged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use ferromq_store::{MessageStore, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::defaults;
use crate::frame::{
    encode_as_handshake_reply, encode_as_transfer, encode_header, last_report, parse_slave_frames,
    FrameError, Handshake, SlaveFrame, TransferHeader,
};

/// How the master serves its slaves.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Largest body of one transfer frame (`haTransferBatchSize`).
    pub transfer_batch: usize,
    /// A heartbeat goes out after this long without data (`haSendHeartbeatInterval`).
    pub heartbeat: Duration,
    /// A slave silent this long is dropped (`haHousekeepingInterval`).
    pub housekeeping: Duration,
    /// Slaves that must hold a message before a synchronous send is answered
    /// (`inSyncReplicas` − 1, the master counting as one).
    pub acks_needed: usize,
    /// A slave further behind than this does not count as available
    /// (`haMaxGapNotInSync`).
    pub max_gap_in_sync: u64,
    /// Controller mode: Apache's AutoSwitch frames (a handshake with the epoch list, epochs
    /// in every transfer header) instead of the classic ones.
    pub auto_switch: bool,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            transfer_batch: defaults::TRANSFER_BATCH,
            heartbeat: defaults::HEARTBEAT_INTERVAL,
            housekeeping: defaults::HOUSEKEEPING_INTERVAL,
            acks_needed: 1,
            max_gap_in_sync: 256 * 1024 * 1024,
            auto_switch: false,
        }
    }
}

/// A connected slave as the master sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveInfo {
    pub addr: SocketAddr,
    /// The slave's last report: its copy ends here (`slaveAckOffset`).
    pub ack_offset: Option<u64>,
    /// Milliseconds the connection has been up.
    pub connected_ms: u64,
    /// The broker id it gave in its handshake (controller mode).
    pub broker_id: Option<i64>,
    /// Milliseconds since it last had everything this master had (controller mode).
    pub caught_up_ms_ago: Option<u64>,
}

struct Slave {
    addr: SocketAddr,
    ack: Option<u64>,
    since: Instant,
    broker_id: Option<i64>,
    caught_up: Option<Instant>,
}

/// Why a synchronous send's replication wait did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaWait {
    /// Not enough slaves connected and close enough to count (`SLAVE_NOT_AVAILABLE`).
    #[error("no slave is available to hold the message")]
    NotAvailable,
    /// The slaves did not acknowledge in time (`FLUSH_SLAVE_TIMEOUT`).
    #[error("the slave did not acknowledge the message in time")]
    Timeout,
}

pub struct HaMaster {
    store: Arc<MessageStore>,
    config: MasterConfig,
    log_end: watch::Receiver<u64>,
    slaves: Mutex<HashMap<u64, Slave>>,
    /// The offset held by at least `acks_needed` slaves.
    acked: watch::Sender<u64>,
    /// Moves on every acknowledgement (waits for particular slaves watch it).
    ack_tick: watch::Sender<u64>,
    /// Whether this broker is the master now (controller mode switches it); when it stops
    /// being one, every slave connection is closed, so no slave goes on copying a log that
    /// is about to be cut back and rewritten under another master.
    serving: watch::Sender<bool>,
    next_id: AtomicU64,
}

impl HaMaster {
    /// `log_end` changes whenever the store's log grows: it wakes idle transfers.
    pub fn new(
        store: Arc<MessageStore>,
        log_end: watch::Receiver<u64>,
        config: MasterConfig,
    ) -> Arc<Self> {
        Arc::new(HaMaster {
            store,
            config,
            log_end,
            slaves: Mutex::new(HashMap::new()),
            acked: watch::channel(0).0,
            ack_tick: watch::channel(0).0,
            serving: watch::channel(true).0,
            next_id: AtomicU64::new(1),
        })
    }

    /// Accepts slaves until `shutdown`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accepting a slave failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let master = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    () = master.serve_slave(stream, peer) => {}
                }
            });
        }
    }

    /// Starts or stops serving slaves (controller mode: while master / otherwise). Stopping
    /// closes every connection and refuses new ones.
    pub fn set_serving(&self, serving: bool) {
        self.serving.send_if_modified(|s| {
            let changed = *s != serving;
            *s = serving;
            changed
        });
    }

    /// The slaves connected now.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        let mut out: Vec<SlaveInfo> = self
            .slaves
            .lock()
            .expect("slaves lock")
            .values()
            .map(|s| SlaveInfo {
                addr: s.addr,
                ack_offset: s.ack,
                connected_ms: s.since.elapsed().as_millis() as u64,
                broker_id: s.broker_id,
                caught_up_ms_ago: s.caught_up.map(|t| t.elapsed().as_millis() as u64),
            })
            .collect();
        out.sort_by_key(|s| s.addr);
        out
    }

    /// Waits until enough slaves hold the log up to `end` (grouped: every waiter wakes on
    /// each acknowledgement and checks its own offset).
    pub async fn wait_replicated(&self, end: u64, timeout: Duration) -> Result<(), ReplicaWait> {
        if self.available_slaves(end) < self.config.acks_needed {
            return Err(ReplicaWait::NotAvailable);
        }
        let mut acked = self.acked.subscribe();
        let held = tokio::time::timeout(timeout, async {
            acked.wait_for(|a| *a >= end).await.is_ok()
        })
        .await;
        match held {
            Ok(true) => Ok(()),
            _ => Err(ReplicaWait::Timeout),
        }
    }

    /// Waits until every broker in `members` (by the id of its handshake) has acknowledged
    /// the log up to `end` (`allAckInSyncStateSet`).
    pub async fn wait_all(
        &self,
        members: &std::collections::BTreeSet<i64>,
        end: u64,
        timeout: Duration,
    ) -> Result<(), ReplicaWait> {
        if members.is_empty() {
            return Ok(());
        }
        let mut acks = self.ack_tick.subscribe();
        let held = tokio::time::timeout(timeout, async {
            loop {
                acks.borrow_and_update();
                let all = {
                    let slaves = self.slaves.lock().expect("slaves lock");
                    members.iter().all(|id| {
                        slaves
                            .values()
                            .any(|s| s.broker_id == Some(*id) && s.ack.is_some_and(|a| a >= end))
                    })
                };
                if all {
                    return true;
                }
                if acks.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        match held {
            Ok(true) => Ok(()),
            _ => Err(ReplicaWait::Timeout),
        }
    }

    /// The offset every broker in `members` (by handshake id) has acknowledged; None while
    /// one of them is not connected or has not reported.
    pub fn acknowledged_by_all(&self, members: &std::collections::BTreeSet<i64>) -> Option<u64> {
        let slaves = self.slaves.lock().expect("slaves lock");
        members
            .iter()
            .map(|id| {
                slaves
                    .values()
                    .filter(|s| s.broker_id == Some(*id))
                    .filter_map(|s| s.ack)
                    .max()
            })
            .try_fold(u64::MAX, |low, ack| ack.map(|a| low.min(a)))
    }

    /// Moves on every acknowledgement from any slave.
    pub fn acknowledgements(&self) -> watch::Receiver<u64> {
        self.ack_tick.subscribe()
    }

    fn available_slaves(&self, end: u64) -> usize {
        self.slaves
            .lock()
            .expect("slaves lock")
            .values()
            .filter(|s| {
                s.ack
                    .is_some_and(|a| end.saturating_sub(a) < self.config.max_gap_in_sync)
            })
            .count()
    }

    fn record_ack(&self, id: u64, offset: u64) {
        let mut slaves = self.slaves.lock().expect("slaves lock");
        if let Some(s) = slaves.get_mut(&id) {
            s.ack = Some(offset);
        }
        self.publish_acked(&slaves);
        drop(slaves);
        self.ack_tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn publish_acked(&self, slaves: &HashMap<u64, Slave>) {
        let mut acks: Vec<u64> = slaves.values().filter_map(|s| s.ack).collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let held = match self.config.acks_needed {
            0 => u64::MAX,
            n => acks.get(n - 1).copied().unwrap_or(0),
        };
        self.acked.send_if_modified(|a| {
            let changed = *a != held;
            *a = held;
            changed
        });
    }

    async fn serve_slave(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let mut serving = self.serving.subscribe();
        if !*serving.borrow_and_update() {
            info!(slave = %peer, "refusing a slave: this broker is not the master");
            return;
        }
        let _ = stream.set_nodelay(true);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.slaves.lock().expect("slaves lock").insert(
            id,
            Slave {
                addr: peer,
                ack: None,
                since: Instant::now(),
                broker_id: None,
                caught_up: None,
            },
        );
        info!(slave = %peer, "slave connected");
        let (rd, wr) = stream.into_split();
        let (first_tx, first_rx) = watch::channel(None);
        let (hello_tx, hello_rx) = watch::channel(None);
        let stepped_down = async {
            let _ = serving.wait_for(|s| !*s).await;
        };
        let outcome = tokio::select! {
            () = stepped_down => Err(MasterError::SteppedDown),
            r = self.read_reports(id, rd, first_tx, hello_tx) => r,
            r = self.transfer(id, wr, first_rx, hello_rx) => r,
        };
        match outcome {
            Ok(()) => info!(slave = %peer, "slave disconnected"),
            Err(e) => warn!(slave = %peer, error = %e, "slave connection closed"),
        }
        let mut slaves = self.slaves.lock().expect("slaves lock");
        slaves.remove(&id);
        self.publish_acked(&slaves);
    }

    async fn read_reports(
        &self,
        id: u64,
        mut rd: OwnedReadHalf,
        first: watch::Sender<Option<u64>>,
        hello: watch::Sender<Option<Handshake>>,
    ) -> Result<(), MasterError> {
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            let n = tokio::time::timeout(self.config.housekeeping, rd.read_buf(&mut buf))
                .await
                .map_err(|_| MasterError::Silent(self.config.housekeeping))??;
            if n == 0 {
                return Ok(());
            }
            let reports = if self.config.auto_switch {
                let (frames, used) = parse_slave_frames(&buf)?;
                buf.advance(used);
                let mut reports = Vec::new();
                for f in frames {
                    match f {
                        SlaveFrame::Handshake(h) => {
                            if let Some(s) = self.slaves.lock().expect("slaves lock").get_mut(&id) {
                                s.broker_id = Some(h.broker_id);
                            }
                            hello.send_replace(Some(h));
                        }
                        SlaveFrame::Report(offset) => reports.push(offset),
                    }
                }
                reports.last().copied()
            } else {
                let (report, used) = last_report(&buf)?;
                buf.advance(used);
                report
            };
            if let Some(offset) = reports {
                if first.borrow().is_none() {
                    first.send_replace(Some(offset));
                }
                self.record_ack(id, offset);
            }
        }
    }

    async fn transfer(
        &self,
        id: u64,
        mut wr: OwnedWriteHalf,
        mut first: watch::Receiver<Option<u64>>,
        mut hello: watch::Receiver<Option<Handshake>>,
    ) -> Result<(), MasterError> {
        let mut header = BytesMut::with_capacity(64);
        let mut from_last_file = false;
        if self.config.auto_switch {
            let h = *hello
                .wait_for(Option::is_some)
                .await
                .map_err(|_| MasterError::Closed)?;
            from_last_file = h.is_some_and(|h| h.sync_from_last_file);
            let epochs: Vec<(i32, u64)> = self
                .store
                .epochs()
                .iter()
                .map(|e| (e.epoch, e.start))
                .collect();
            encode_as_handshake_reply(&mut header, self.store.complete_offset(), &epochs);
            wr.write_all(&header).await?;
            header.clear();
        }
        let requested = *first
            .wait_for(Option::is_some)
            .await
            .map_err(|_| MasterError::Closed)?;
        let requested = requested.expect("waited for a report");
        let end = self.store.complete_offset();
        let segment = self.store.config().segment_bytes;
        let mut next = match requested {
            0 if from_last_file => end - end % segment,
            // An empty slave copies everything still stored, so that it can stand in for
            // this master with the whole log (Apache's classic master starts at its last
            // segment; its controller-mode master does as this one does).
            0 => self.store.min_commit_log_offset(),
            r => r,
        };
        if next > end {
            return Err(MasterError::SlaveAhead {
                slave: next,
                master: end,
            });
        }
        info!(from = next, "streaming the commit log to a slave");
        let mut log_end = self.log_end.clone();
        let mut last_write = Instant::now();
        loop {
            log_end.borrow_and_update();
            let (batch, epoch) = self.batch_limit(next);
            let data = self.store.read_log(next, batch)?;
            if !data.is_empty() {
                header.clear();
                self.encode_transfer(&mut header, next, data.len(), epoch);
                next += data.len() as u64;
                let mut frame = Buf::chain(header.split().freeze(), data);
                wr.write_all_buf(&mut frame).await?;
                last_write = Instant::now();
                continue;
            }
            // Nothing more to send: the slave has all this master has.
            if let Some(s) = self.slaves.lock().expect("slaves lock").get_mut(&id) {
                s.caught_up = Some(Instant::now());
            }
            let heartbeat_due = tokio::time::Instant::from_std(last_write + self.config.heartbeat);
            tokio::select! {
                changed = log_end.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep_until(heartbeat_due) => {
                    header.clear();
                    self.encode_transfer(&mut header, next, 0, epoch);
                    wr.write_all(&header).await?;
                    last_write = Instant::now();
                }
            }
        }
    }

    /// How much one frame may carry from `next`, and the epoch it belongs to: in controller
    /// mode a frame never crosses into the next epoch.
    fn batch_limit(&self, next: u64) -> (usize, Option<(i32, u64)>) {
        let batch = self.config.transfer_batch;
        if !self.config.auto_switch {
            return (batch, None);
        }
        let epochs = self.store.epochs();
        let at = epochs.iter().rposition(|e| e.start <= next);
        let Some(i) = at.or(if epochs.is_empty() { None } else { Some(0) }) else {
            return (batch, None);
        };
        let entry = epochs[i];
        let limit = match epochs.get(i + 1) {
            Some(following) if following.start > next => {
                batch.min((following.start - next) as usize)
            }
            _ => batch,
        };
        (limit, Some((entry.epoch, entry.start)))
    }

    fn encode_transfer(
        &self,
        dst: &mut BytesMut,
        offset: u64,
        size: usize,
        epoch: Option<(i32, u64)>,
    ) {
        if self.config.auto_switch {
            let (epoch, epoch_start) = epoch.unwrap_or((0, 0));
            encode_as_transfer(
                dst,
                &TransferHeader {
                    size,
                    offset,
                    epoch,
                    epoch_start,
                    confirm_offset: self.store.read_limit(),
                },
            );
        } else {
            encode_header(dst, offset, size);
        }
    }
}

/// Why the master ended a slave's connection.
#[derive(Debug, thiserror::Error)]
enum MasterError {
    #[error("no report for {0:?}")]
    Silent(Duration),
    #[error("the connection closed before the slave reported")]
    Closed,
    #[error("this broker is no longer the master")]
    SteppedDown,
    #[error("the slave's copy ends at {slave}, past this master's log end {master}: it has diverged and needs to be emptied or truncated")]
    SlaveAhead { slave: u64, master: u64 },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
