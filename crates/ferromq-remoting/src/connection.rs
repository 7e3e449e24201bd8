//! One framed connection: a reader task, a writer task for what the socket does not take
//! at once, and the pending-response table.
//!
//! Requests are handled on the reader task when they finish without waiting (most sends
//! and queries), and responses are written straight to the socket when nothing is queued
//! ahead of them: under light load a request costs no task switch at all.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{ErrorKind, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use ferromq_protocol::RemotingCommand;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

use crate::RemotingError;

/// Bytes queued for writing per connection before senders wait (and the reader stops
/// reading): bounds memory per peer.
const OUTBOUND_LIMIT_BYTES: usize = 8 << 20;
/// Frames handed to one vectored write.
const MAX_IOVECS: usize = 64;
/// Read buffer grows in steps of this many bytes.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bodies at least this long are written from where they lie, behind a separately encoded
/// header, instead of being copied into the frame (pull responses of stored records).
const SEPARATE_BODY_BYTES: usize = 4096;

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

/// Encoded frames not yet taken by the socket; the first may be partly written.
#[derive(Default)]
struct Outbound {
    frames: VecDeque<Bytes>,
    bytes: usize,
}

impl Outbound {
    fn push(&mut self, frame: Bytes) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Drops `n` written bytes from the front.
    fn consume(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let front = self.frames.front_mut().expect("written bytes were queued");
            if n >= front.len() {
                n -= front.len();
                self.frames.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

struct Inner {
    id: u64,
    peer: SocketAddr,
    stream: Stream,
    outbound: Mutex<Outbound>,
    /// Frames were queued: the writer task has work.
    writer_wanted: Notify,
    /// The queue fell below its limit: waiting senders may go on.
    space: Notify,
    /// Requests whose handlers are still running off the reader task.
    handlers_in_flight: AtomicUsize,
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
        Self::spawn_stream(
            Stream::Tcp(stream),
            peer,
            handler,
            max_frame_bytes,
            idle_timeout,
        )
    }

    /// As [`spawn`](Self::spawn), over one end of a socket pair whose other end carries
    /// the plaintext of a TLS connection from `peer`.
    pub(crate) fn spawn_unix<H: InboundHandler>(
        stream: UnixStream,
        peer: SocketAddr,
        handler: Arc<H>,
        max_frame_bytes: usize,
        idle_timeout: Option<Duration>,
    ) -> Connection {
        Self::spawn_stream(
            Stream::Unix(stream),
            peer,
            handler,
            max_frame_bytes,
            idle_timeout,
        )
    }

    fn spawn_stream<H: InboundHandler>(
        stream: Stream,
        peer: SocketAddr,
        handler: Arc<H>,
        max_frame_bytes: usize,
        idle_timeout: Option<Duration>,
    ) -> Connection {
        let conn = Connection {
            inner: Arc::new(Inner {
                id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                stream,
                outbound: Mutex::new(Outbound::default()),
                writer_wanted: Notify::new(),
                handlers_in_flight: AtomicUsize::new(0),
                space: Notify::new(),
                pending: Mutex::new(HashMap::new()),
                next_opaque: AtomicI32::new(1),
                closed: CancellationToken::new(),
            }),
        };
        tokio::spawn(write_loop(conn.clone()));
        tokio::spawn(read_loop(
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

    /// Closes the connection: both tasks stop, pending callers fail, and the peer sees
    /// the socket close even while handles to it remain.
    pub fn close(&self) {
        if !self.inner.closed.is_cancelled() {
            self.inner.closed.cancel();
            self.inner.stream.shutdown();
        }
    }

    /// Writes an encoded command, or queues it when the socket is busy.
    ///
    /// # Errors
    /// [`RemotingError::Closed`] when the connection is gone.
    pub async fn send(&self, cmd: &RemotingCommand) -> Result<(), RemotingError> {
        self.send_now_or_queued(cmd, true).await
    }

    /// Writes an encoded command, or queues it for the writer task, without waiting for
    /// room: for answers owed to a request (a held pull's), which a busy peer's backlog
    /// must not hold up for everyone else.
    ///
    /// # Errors
    /// [`RemotingError::Closed`] when the connection is gone.
    pub fn send_or_queue(&self, cmd: &RemotingCommand) -> Result<(), RemotingError> {
        self.write_or_queue(Frame::encode(cmd), true)
    }

    /// As [`send`](Self::send), or with `write_now` false always queued for the writer task,
    /// which writes what has queued up by the time it runs in one call: responses that one
    /// event completes together (a group commit, say) then leave in one write, not one each.
    async fn send_now_or_queued(
        &self,
        cmd: &RemotingCommand,
        write_now: bool,
    ) -> Result<(), RemotingError> {
        let frame = Frame::encode(cmd);
        self.wait_for_space().await?;
        self.write_or_queue(frame, write_now)
    }

    fn outbound_bytes(&self) -> usize {
        self.inner.outbound.lock().expect("outbound lock").bytes
    }

    /// Waits while more than the limit is queued for writing.
    async fn wait_for_space(&self) -> Result<(), RemotingError> {
        loop {
            let space = self.inner.space.notified();
            tokio::pin!(space);
            // Registered before the check, so a wake-up between check and wait is not lost.
            space.as_mut().enable();
            if self.outbound_bytes() < OUTBOUND_LIMIT_BYTES {
                return Ok(());
            }
            tokio::select! {
                _ = space => {}
                _ = self.inner.closed.cancelled() => return Err(self.closed_error()),
            }
        }
    }

    /// Writes a frame (its parts in order) at once when asked to and nothing is queued ahead
    /// of it (frames never interleave), else queues what the socket did not take for the
    /// writer task. Never waits.
    fn write_or_queue(&self, frame: Frame, write_now: bool) -> Result<(), RemotingError> {
        let parts = frame.parts();
        let mut out = self.inner.outbound.lock().expect("outbound lock");
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let mut written = 0;
        if write_now && out.frames.is_empty() {
            let result = match parts {
                [one] => self.inner.stream.try_write(one),
                [head, body] => self
                    .inner
                    .stream
                    .try_write_vectored(&[IoSlice::new(head), IoSlice::new(body)]),
                _ => unreachable!("a frame has one or two parts"),
            };
            match result {
                Ok(n) => written = n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => {
                    drop(out);
                    debug!(peer = %self.inner.peer, error = %e, "write failed; closing connection");
                    self.close();
                    return Err(self.closed_error());
                }
            }
        }
        let mut queued = false;
        for part in parts {
            if written >= part.len() {
                written -= part.len();
                continue;
            }
            out.push(part.slice(written..));
            written = 0;
            queued = true;
        }
        drop(out);
        if queued {
            self.inner.writer_wanted.notify_one();
        }
        Ok(())
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
    let stream = refuse_self_connection(stream, addr)?;
    // Clients keep their connections as long as they like.
    Ok(Connection::spawn(
        stream,
        handler,
        ferromq_protocol::command::DEFAULT_MAX_FRAME_BYTES,
        None,
    ))
}

/// Fails a connection that the kernel made to itself. When nothing listens on a port in
/// the ephemeral range, a connect can be given that very port as its own and then "succeed"
/// (TCP simultaneous open); the socket would then hold the port and keep the server from
/// binding it. Go's dialer makes the same check.
fn refuse_self_connection(stream: TcpStream, addr: &str) -> Result<TcpStream, RemotingError> {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) if local == peer => {
            // Reset rather than close, so the port is not held in TIME_WAIT either.
            // A zero linger never blocks: the close sends a reset at once.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            Err(RemotingError::Connect {
                addr: addr.to_string(),
                source: std::io::Error::new(
                    ErrorKind::ConnectionRefused,
                    "connected to itself: nothing is listening there",
                ),
            })
        }
        _ => Ok(stream),
    }
}

/// Writes what `write_or_queue` could not, as the socket takes it.
async fn write_loop(conn: Connection) {
    let inner = &conn.inner;
    loop {
        let written = {
            let mut out = inner.outbound.lock().expect("outbound lock");
            if out.frames.is_empty() {
                None
            } else {
                let slices: Vec<IoSlice<'_>> = out
                    .frames
                    .iter()
                    .take(MAX_IOVECS)
                    .map(|f| IoSlice::new(f))
                    .collect();
                let result = inner.stream.try_write_vectored(&slices);
                drop(slices);
                if let Ok(n) = result {
                    out.consume(n);
                }
                Some((result, out.bytes < OUTBOUND_LIMIT_BYTES))
            }
        };
        match written {
            None => {
                tokio::select! {
                    _ = inner.writer_wanted.notified() => {}
                    _ = inner.closed.cancelled() => break,
                }
                // Lets the other tasks woken with the one that queued this add theirs.
                tokio::task::yield_now().await;
            }
            Some((Ok(_), below_limit)) => {
                if below_limit {
                    inner.space.notify_waiters();
                }
            }
            Some((Err(e), _)) if e.kind() == ErrorKind::WouldBlock => tokio::select! {
                ready = inner.stream.writable() => if ready.is_err() { break },
                _ = inner.closed.cancelled() => break,
            },
            Some((Err(e), _)) => {
                debug!(peer = %inner.peer, error = %e, "write failed; closing connection");
                break;
            }
        }
    }
    conn.close();
    inner.space.notify_waiters();
}

async fn read_loop<H: InboundHandler>(
    conn: Connection,
    handler: Arc<H>,
    max_frame_bytes: usize,
    idle_timeout: Option<Duration>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // A peer that completes no frame for this long is dropped, whether it is silent or
    // trickling bytes (a slow-loris client cannot hold a connection open).
    let idle = idle_timeout.unwrap_or(Duration::from_secs(u32::MAX as u64));
    let idle_deadline = tokio::time::sleep(idle);
    tokio::pin!(idle_deadline);
    // Said once per connection: a client that stops reading (a stuck consumer) is named.
    let mut stall_reported = false;
    'read: loop {
        let mut framed = false;
        let mut throttled = false;
        loop {
            // A peer that does not read its responses gets no more requests served.
            if conn.outbound_bytes() >= OUTBOUND_LIMIT_BYTES {
                throttled = true;
                break;
            }
            match RemotingCommand::decode_frame(&mut buf, max_frame_bytes) {
                Ok(Some(cmd)) => {
                    framed = true;
                    dispatch(&conn, &handler, cmd)
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(peer = %conn.peer(), error = %e, "undecodable frame; closing connection");
                    break 'read;
                }
            }
        }
        if framed {
            idle_deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + idle);
        }
        if throttled {
            if !stall_reported {
                stall_reported = true;
                warn!(
                    peer = %conn.peer(),
                    queued_bytes = conn.outbound_bytes(),
                    "client is not reading its answers; its further requests wait until it does"
                );
            }
            tokio::select! {
                space = conn.wait_for_space() => if space.is_err() { break },
                _ = &mut idle_deadline => {
                    warn!(peer = %conn.peer(), "answers unread for the idle timeout; closing the connection");
                    break;
                }
            }
            continue;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        tokio::select! {
            ready = conn.inner.stream.readable() => if ready.is_err() { break },
            _ = conn.inner.closed.cancelled() => break,
            _ = &mut idle_deadline => {
                debug!(peer = %conn.peer(), "no complete frame within the idle timeout; closing connection");
                break;
            }
        }
        match conn.inner.stream.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
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

/// Runs a request's handler on the reader task as far as it goes without waiting; only a
/// handler that has to wait (long polling, a flush, a call elsewhere) becomes a task.
fn dispatch<H: InboundHandler>(conn: &Connection, handler: &Arc<H>, cmd: RemotingCommand) {
    if cmd.is_response() {
        conn.complete(cmd);
        return;
    }
    let oneway = cmd.is_oneway();
    let handling = {
        let (conn, handler) = (conn.clone(), handler.clone());
        async move { handler.on_request(conn, cmd).await }
    };
    let mut handling = Box::pin(handling);
    // Polled once with a waker that does nothing: if it is not done, the spawned task
    // polls it again with its own waker, which the future registers from then on.
    let mut cx = Context::from_waker(Waker::noop());
    match handling.as_mut().poll(&mut cx) {
        Poll::Ready(response) => {
            if let (Some(response), false) = (response, oneway) {
                let _ = conn.write_or_queue(Frame::encode(&response), true);
            }
        }
        Poll::Pending => {
            let conn = conn.clone();
            conn.inner
                .handlers_in_flight
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let response = handling.await;
                let others = conn
                    .inner
                    .handlers_in_flight
                    .fetch_sub(1, Ordering::Relaxed)
                    > 1;
                if let (Some(response), false) = (response, oneway) {
                    // Alone, a response goes out at once; with others of this connection
                    // pending (many senders' requests over one connection, all waiting on
                    // one group commit), the writer takes them in one write.
                    let _ = conn.send_now_or_queued(&response, !others).await;
                }
            });
        }
    }
}

/// An encoded command: the whole frame, or its header followed by the body as it is when
/// the body is long enough that copying it would cost more than a second iovec.
struct Frame {
    parts: [Bytes; 2],
    count: usize,
}

impl Frame {
    fn encode(cmd: &RemotingCommand) -> Self {
        if cmd.body.len() < SEPARATE_BODY_BYTES {
            let mut buf = BytesMut::with_capacity(128 + cmd.body.len());
            cmd.encode(&mut buf);
            return Frame {
                parts: [buf.freeze(), Bytes::new()],
                count: 1,
            };
        }
        let mut head = BytesMut::with_capacity(256);
        cmd.encode_head(&mut head);
        Frame {
            parts: [head.freeze(), cmd.body.clone()],
            count: 2,
        }
    }

    fn parts(&self) -> &[Bytes] {
        &self.parts[..self.count]
    }
}

/// The socket under a connection: TCP, or a local socket pair behind TLS termination.
/// Both offer the non-blocking calls the direct write path and the reader use.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write_vectored(bufs),
            Stream::Unix(s) => s.try_write_vectored(bufs),
        }
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Unix(s) => s.try_read_buf(buf),
        }
    }

    async fn readable(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
        }
    }

    async fn writable(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.writable().await,
            Stream::Unix(s) => s.writable().await,
        }
    }

    /// Makes the peer see the close even while handles to the socket remain.
    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_connected_to_itself_is_refused_and_its_port_freed() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let own = socket.local_addr().unwrap();
        // Simultaneous open with itself: what a client's connect can end in by chance.
        let stream = socket.connect(own).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), own);
        match refuse_self_connection(stream, &own.to_string()) {
            Err(RemotingError::Connect { source, .. }) => {
                assert_eq!(source.kind(), ErrorKind::ConnectionRefused)
            }
            other => panic!("expected a refused connection, got {:?}", other.map(|_| ())),
        }
        // The port is free again for the server that should have had it.
        tokio::net::TcpListener::bind(own).await.unwrap();
    }

    #[tokio::test]
    async fn an_ordinary_connection_is_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let kept = refuse_self_connection(stream, &addr.to_string()).unwrap();
        assert_eq!(kept.peer_addr().unwrap(), addr);
    }
}
