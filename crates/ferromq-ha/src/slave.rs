//! The slave side: connects to the master's HA address, reports how far its copy goes, and
//! appends what the master sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_store::{MessageStore, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::defaults;
use crate::frame::{encode_report, read_header, FrameError};

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
}

impl Default for SlaveConfig {
    fn default() -> Self {
        SlaveConfig {
            heartbeat: defaults::HEARTBEAT_INTERVAL,
            housekeeping: defaults::HOUSEKEEPING_INTERVAL,
            reconnect: Duration::from_secs(1),
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
    let (rd, wr) = stream.into_split();
    let (report_tx, report_rx) = watch::channel(store.replica_offset());
    tokio::select! {
        r = receive(store, rd, &report_tx, on_append, status, config) => r,
        r = report(wr, report_rx, config.heartbeat) => r,
    }
}

/// Sends the offset reached whenever it grows, and at least every `heartbeat`. The first
/// report goes out at once: the master sends nothing before it.
async fn report(
    mut wr: OwnedWriteHalf,
    mut offset: watch::Receiver<u64>,
    heartbeat: Duration,
) -> Result<(), SlaveError> {
    loop {
        let current = *offset.borrow_and_update();
        wr.write_all(&encode_report(current)).await?;
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
        let (offset, size) = tokio::time::timeout(config.housekeeping, read_header(&mut rd))
            .await
            .map_err(|_| SlaveError::Silent(config.housekeeping))??;
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
        if size == 0 {
            continue;
        }
        let store = store.clone();
        let data = std::mem::take(&mut body);
        let (end, data) = tokio::task::spawn_blocking(move || {
            let r = store.append_log(offset, &data);
            (r, data)
        })
        .await
        .map_err(|e| SlaveError::Task(e.to_string()))?;
        body = data;
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
    #[error("appending failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Task(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
