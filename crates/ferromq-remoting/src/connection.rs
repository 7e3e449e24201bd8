//! One framed connection: reader task, writer task, pending-response table.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferromq_protocol::RemotingCommand;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

use crate::RemotingError;

/// Frames queued for writing per connection before senders wait: bounds memory per peer.
const OUTBOUND_QUEUE_FRAMES: usize = 1024;
/// Bytes gathered into one socket write when several frames are queued.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Read buffer grows in steps of this many bytes.
const READ_CHUNK_BYTES: usize = 64 * 1024;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Handles requests that arrive on a connection (client requests on a server, server
/// requests on a client).
pub trait InboundHandler: Send + Sync + 'static {
    /// Processes one request. The returned command, if any, is sent back with the
    /// request's opaque; nothing is sent for requests flagged oneway.
    fn on_request(
        &self,
        conn: Connection,
        request: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send;

    /// Called once when the connection has closed.
    fn on_close(&self, _conn: &Connection) {}
}

/// An inbound handler for plain clients: server-initiated requests go unanswered.
pub struct NoInbound;

impl InboundHandler for NoInbound {
    async fn on_request(
        &self,
        _conn: Connection,
        _request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        None
    }
}

struct Inner {
    id: u64,
    peer: SocketAddr,
    outbound: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next_opaque: AtomicI32,
    closed: CancellationToken,
}

/// A cheap, cloneable handle to a live connection. The connection lives until
/// [`Connection::close`] or until the peer closes it: dropping handles does not close it.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection#{}({})", self.inner.id, self.inner.peer)
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}
impl Eq for Connection {}

impl Connection {
    /// Starts the reader and writer tasks for `stream`. A connection that completes no
    /// frame within `idle_timeout` is closed.
    pub fn spawn<H: InboundHandler>(
        stream: TcpStream,
        handler: Arc<H>,
        max_frame_bytes: usize,
        idle_timeout: Option<Duration>,
    ) -> Connection {
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE_FRAMES);
        let conn = Connection {
            inner: Arc::new(Inner {
                id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                outbound: tx,
                pending: Mutex::new(HashMap::new()),
                next_opaque: AtomicI32::new(1),
                closed: CancellationToken::new(),
            }),
        };
        tokio::spawn(write_loop(writer, rx, conn.inner.closed.clone()));
        tokio::spawn(read_loop(
            reader,
            conn.clone(),
            handler,
            max_frame_bytes,
            idle_timeout,
        ));
        conn
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Resolves when the connection has closed.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    /// Closes the connection: both tasks stop, pending callers fail.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Queues an encoded command for writing.
    ///
    /// # Errors
    /// [`RemotingError::Closed`] when the connection is gone.
    pub async fn send(&self, cmd: &RemotingCommand) -> Result<(), RemotingError> {
        let mut buf = BytesMut::with_capacity(128 + cmd.body.len());
        cmd.encode(&mut buf);
        tokio::select! {
            sent = self.inner.outbound.send(buf.freeze()) => sent.map_err(|_| self.closed_error()),
            _ = self.inner.closed.cancelled() => Err(self.closed_error()),
        }
    }

    /// Sends a request and waits for its response.
    ///
    /// # Errors
    /// Closed connection or no response within `timeout`.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let opaque = self.inner.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.opaque = opaque;
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .expect("pending table lock")
            .insert(opaque, tx);
        let outcome = async {
            self.send(&request).await?;
            tokio::select! {
                resp = rx => resp.map_err(|_| self.closed_error()),
                _ = self.inner.closed.cancelled() => Err(self.closed_error()),
            }
        };
        let result = match tokio::time::timeout(timeout, outcome).await {
            Ok(r) => r,
            Err(_) => Err(RemotingError::Timeout {
                peer: self.inner.peer.to_string(),
                code: request.code,
                timeout_ms: timeout.as_millis() as u64,
            }),
        };
        self.inner
            .pending
            .lock()
            .expect("pending table lock")
            .remove(&opaque);
        result
    }

    /// Sends a request flagged oneway; no response is expected.
    ///
    /// # Errors
    /// [`RemotingError::Closed`] when the connection is gone.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), RemotingError> {
        request.opaque = self.inner.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.mark_oneway();
        self.send(&request).await
    }

    fn closed_error(&self) -> RemotingError {
        RemotingError::Closed {
            peer: self.inner.peer.to_string(),
        }
    }

    fn complete(&self, response: RemotingCommand) {
        let waiter = self
            .inner
            .pending
            .lock()
            .expect("pending table lock")
            .remove(&response.opaque);
        match waiter {
            Some(tx) => {
                let _ = tx.send(response);
            }
            // Late replies (after a timeout) and replies to fire-and-forget requests.
            None => trace!(
                opaque = response.opaque,
                "response without a waiting caller dropped"
            ),
        }
    }
}

/// Opens a client connection to `addr`.
///
/// # Errors
/// Connection refused or not established within `timeout`.
pub async fn connect<H: InboundHandler>(
    addr: &str,
    handler: Arc<H>,
    timeout: Duration,
) -> Result<Connection, RemotingError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(RemotingError::Connect {
                addr: addr.to_string(),
                source,
            })
        }
        Err(_) => {
            return Err(RemotingError::ConnectTimeout {
                addr: addr.to_string(),
            })
        }
    };
    // Clients keep their connections as long as they like.
    Ok(Connection::spawn(
        stream,
        handler,
        ferromq_protocol::command::DEFAULT_MAX_FRAME_BYTES,
        None,
    ))
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
) {
    let mut batch = BytesMut::new();
    loop {
        let first = tokio::select! {
            frame = rx.recv() => match frame { Some(f) => f, None => break },
            _ = closed.cancelled() => break,
        };
        // Gather what else is already queued into one write: fewer syscalls under load,
        // no added latency when idle.
        let result = if rx.is_empty() {
            writer.write_all(&first).await
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < WRITE_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(f) => batch.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            writer.write_all(&batch).await
        };
        if let Err(e) = result {
            debug!(error = %e, "write failed; closing connection");
            break;
        }
    }
    closed.cancel();
    let _ = writer.shutdown().await;
}

async fn read_loop<H: InboundHandler>(
    mut reader: OwnedReadHalf,
    conn: Connection,
    handler: Arc<H>,
    max_frame_bytes: usize,
    idle_timeout: Option<Duration>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // A peer that completes no frame for this long is dropped, whether it is silent or
    // trickling bytes (a slow-loris client cannot hold a connection open).
    let idle = idle_timeout.unwrap_or(Duration::from_secs(u32::MAX as u64));
    let mut deadline = tokio::time::Instant::now() + idle;
    'read: loop {
        loop {
            match RemotingCommand::decode_frame(&mut buf, max_frame_bytes) {
                Ok(Some(cmd)) => {
                    deadline = tokio::time::Instant::now() + idle;
                    dispatch(&conn, &handler, cmd)
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(peer = %conn.peer(), error = %e, "undecodable frame; closing connection");
                    break 'read;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let n = tokio::select! {
            n = reader.read_buf(&mut buf) => n,
            _ = conn.inner.closed.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => {
                debug!(peer = %conn.peer(), "no complete frame within the idle timeout; closing connection");
                break;
            }
        };
        match n {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                debug!(peer = %conn.peer(), error = %e, "read failed");
                break;
            }
        }
    }
    conn.close();
    // Fail every caller still waiting on this connection.
    conn.inner
        .pending
        .lock()
        .expect("pending table lock")
        .clear();
    handler.on_close(&conn);
}

fn dispatch<H: InboundHandler>(conn: &Connection, handler: &Arc<H>, cmd: RemotingCommand) {
    if cmd.is_response() {
        conn.complete(cmd);
        return;
    }
    let conn = conn.clone();
    let handler = handler.clone();
    tokio::spawn(async move {
        let oneway = cmd.is_oneway();
        if let Some(response) = handler.on_request(conn.clone(), cmd).await {
            if !oneway {
                let _ = conn.send(&response).await;
            }
        }
    });
}
