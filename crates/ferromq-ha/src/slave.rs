//! The slave side: connects to the master's HA address, reports how far its copy goes, and
//! appends what the master sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_store::epoch::{consistent_point, EpochEntry};
use ferromq_store::{MessageStore, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::defaults;
use crate::frame::{
    encode_as_handshake, encode_as_report, encode_report, read_as_handshake_reply,
    read_as_transfer, read_header, FrameError, Handshake, EMPTY_MASTER,
};

/// How the slave follows its master.
#[derive(Debug, Clone)]
pub struct SlaveConfig {
    /// A report goes out at least this often (`haSendHeartbeatInterval`).
    pub heartbeat: Duration,
    /// A master silent this long is dropped (`haHousekeepingInterval`).
    pub housekeeping: Duration,
    /// Wait before connecting again (Apache waits 5 s; a shorter wait shortens recovery
    /// after a master restarts).
    pub reconnect: Duration,
    /// Controller mode: this broker's controller-given id, for Apache's AutoSwitch
    /// handshake; the copy is first cut back to where it agrees with the master's epochs.
    pub auto_switch: Option<i64>,
    /// `readUnCommitted`: serve reads past the master's confirm offset.
    pub read_uncommitted: bool,
}

impl Default for SlaveConfig {
    fn default() -> Self {
        SlaveConfig {
            heartbeat: defaults::HEARTBEAT_INTERVAL,
            housekeeping: defaults::HOUSEKEEPING_INTERVAL,
            reconnect: Duration::from_secs(1),
            auto_switch: None,
            read_uncommitted: false,
        }
    }
}

/// What the slave knows of its replication, for status displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaveStatus {
    /// The HA address followed.
    pub master: Option<String>,
    pub connected: bool,
    /// The master's offset of the last frame received (its log end as last seen).
    pub master_offset: u64,
    /// When the last frame arrived, ms since the epoch (0: never).
    pub last_frame_ms: i64,
}

/// Follows the master whose HA address `master` holds (None: none known yet) until
/// `shutdown`, calling `on_append` after each append.
pub async fn run_slave(
    store: Arc<MessageStore>,
    mut master: watch::Receiver<Option<String>>,
    on_append: Arc<dyn Fn() + Send + Sync>,
    status: Arc<Mutex<SlaveStatus>>,
    config: SlaveConfig,
    shutdown: CancellationToken,
) {
    loop {
        let addr = master.borrow_and_update().clone();
        if let Some(addr) = addr {
            status.lock().expect("status lock").master = Some(addr.clone());
            let follow = follow(&store, &addr, &on_append, &status, &config);
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                () = next_change(&mut master) => Ok(()),
                r = follow => r,
            };
            status.lock().expect("status lock").connected = false;
            if let Err(e) = outcome {
                warn!(master = %addr, error = %e, "replication from the master stopped; reconnecting");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = next_change(&mut master) => {}
            () = tokio::time::sleep(config.reconnect) => {}
        }
    }
}

/// Resolves when the master address changes; never, once nobody can change it.
async fn next_change(master: &mut watch::Receiver<Option<String>>) {
    if master.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn follow(
    store: &Arc<MessageStore>,
    addr: &str,
    on_append: &Arc<dyn Fn() + Send + Sync>,
    status: &Arc<Mutex<SlaveStatus>>,
    config: &SlaveConfig,
) -> Result<(), SlaveError> {
    let stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
        .await
        .map_err(|_| SlaveError::ConnectTimeout)??;
    let _ = stream.set_nodelay(true);
    status.lock().expect("status lock").connected = true;
    info!(master = %addr, from = store.replica_offset(), "replicating from the master");
    let (mut rd, mut wr) = stream.into_split();
    let auto_switch = config.auto_switch.is_some();
    if let Some(broker_id) = config.auto_switch {
        agree_with_master(store, &mut rd, &mut wr, broker_id).await?;
    }
    let (report_tx, report_rx) = watch::channel(store.replica_offset());
    tokio::select! {
        r = receive(store, rd, &report_tx, on_append, status, config) => r,
        r = report(wr, report_rx, config.heartbeat, auto_switch) => r,
    }
}

/// Controller mode: introduces this broker, then cuts the copy back to the last point its
/// epochs agree with the master's (what an old master wrote that the new one never had).
async fn agree_with_master(
    store: &Arc<MessageStore>,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    broker_id: i64,
) -> Result<(), SlaveError> {
    // A partly received record is dropped first: only whole records are compared.
    let complete = store.complete_offset();
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.truncate_log(complete))
        .await
        .map_err(|e| SlaveError::Task(e.to_string()))??;
    wr.write_all(&encode_as_handshake(&Handshake {
        sync_from_last_file: false,
        async_learner: false,
        broker_id,
    }))
    .await?;
    let (master_end, master_epochs) =
        tokio::time::timeout(Duration::from_secs(5), read_as_handshake_reply(rd))
            .await
            .map_err(|_| SlaveError::Silent(Duration::from_secs(5)))??;
    let local_end = store.replica_offset();
    let local: Vec<EpochEntry> = store.epochs();
    let cut = if local.is_empty() {
        if local_end > 0 && store.min_commit_log_offset() < local_end {
            return Err(SlaveError::NoEpochs { end: local_end });
        }
        None
    } else {
        let theirs: Vec<EpochEntry> = master_epochs
            .iter()
            .map(|(epoch, start)| EpochEntry {
                epoch: *epoch,
                start: *start,
            })
            .collect();
        let point =
            consistent_point(&local, local_end, &theirs, master_end).ok_or(SlaveError::Diverged)?;
        (point < local_end).then_some(point)
    };
    if let Some(point) = cut {
        warn!(
            from = local_end,
            to = point,
            "cutting the copy back to where it agrees with the new master"
        );
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.truncate_log(point))
            .await
            .map_err(|e| SlaveError::Task(e.to_string()))??;
    }
    Ok(())
}

/// Sends the offset reached whenever it grows, and at least every `heartbeat`. The first
/// report goes out at once: the master sends nothing before it.
async fn report(
    mut wr: OwnedWriteHalf,
    mut offset: watch::Receiver<u64>,
    heartbeat: Duration,
    auto_switch: bool,
) -> Result<(), SlaveError> {
    loop {
        let current = *offset.borrow_and_update();
        if auto_switch {
            wr.write_all(&encode_as_report(current)).await?;
        } else {
            wr.write_all(&encode_report(current)).await?;
        }
        tokio::select! {
            changed = offset.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            () = tokio::time::sleep(heartbeat) => {}
        }
    }
}

async fn receive(
    store: &Arc<MessageStore>,
    mut rd: OwnedReadHalf,
    reached: &watch::Sender<u64>,
    on_append: &Arc<dyn Fn() + Send + Sync>,
    status: &Arc<Mutex<SlaveStatus>>,
    config: &SlaveConfig,
) -> Result<(), SlaveError> {
    let mut body = Vec::new();
    loop {
        let (offset, size, epoch, confirm) = if config.auto_switch.is_some() {
            let h = tokio::time::timeout(config.housekeeping, read_as_transfer(&mut rd))
                .await
                .map_err(|_| SlaveError::Silent(config.housekeeping))??;
            if h.offset == EMPTY_MASTER {
                // The master has nothing yet: a heartbeat only.
                continue;
            }
            (
                h.offset,
                h.size,
                Some((h.epoch, h.epoch_start)),
                Some(h.confirm_offset),
            )
        } else {
            let (offset, size) = tokio::time::timeout(config.housekeeping, read_header(&mut rd))
                .await
                .map_err(|_| SlaveError::Silent(config.housekeeping))??;
            (offset, size, None, None)
        };
        let mine = store.replica_offset();
        // As Apache's slave: an empty copy takes the master's offset, any other must match.
        if mine != 0 && mine != offset {
            return Err(SlaveError::Mismatch {
                master: offset,
                slave: mine,
            });
        }
        body.resize(size, 0);
        tokio::time::timeout(config.housekeeping, rd.read_exact(&mut body))
            .await
            .map_err(|_| SlaveError::Silent(config.housekeeping))??;
        {
            let mut status = status.lock().expect("status lock");
            status.master_offset = offset + size as u64;
            status.last_frame_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
        }
        if let Some((epoch, start)) = epoch {
            let last = store.epochs().last().copied();
            if last.is_none_or(|l| l.epoch != epoch)
                && size > 0
                && !store.record_epoch(epoch, start)?
            {
                warn!(
                    epoch,
                    start,
                    ?last,
                    "the master's epoch does not follow this copy's last one; not recorded"
                );
            }
        }
        // Controller mode: consumers of this copy see only what the group confirmed, so
        // none reads a record that an election could still cut away.
        let visible_before = store.read_limit();
        if let Some(confirm) = confirm.filter(|_| !config.read_uncommitted) {
            store.set_read_limit(confirm);
        }
        if size == 0 {
            if store.read_limit() != visible_before {
                on_append();
            }
            continue;
        }
        // Appending is a positioned write into the page cache (tens of microseconds): done
        // on this task, it saves a hand-off to a blocking thread on every frame, which on a
        // small machine cost SYNC_MASTER sends a third of their throughput.
        let end = store.append_log(offset, &body);
        let end = end?;
        on_append();
        reached.send_replace(end);
    }
}

/// Why the slave dropped its connection to the master.
#[derive(Debug, thiserror::Error)]
enum SlaveError {
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("nothing from the master for {0:?}")]
    Silent(Duration),
    #[error("the master sends offset {master} but this copy ends at {slave}")]
    Mismatch { master: u64, slave: u64 },
    #[error("this copy holds data up to {end} but no epochs, so where it agrees with the master cannot be told; empty its store to let it copy afresh")]
    NoEpochs { end: u64 },
    #[error("this copy shares no epoch with the master: it has diverged and must be emptied")]
    Diverged,
    #[error("appending failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Task(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
