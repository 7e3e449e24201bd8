//! The transport over real loopback sockets: responses written straight to the socket or
//! queued, handlers that finish at once or wait, and a peer that does not read.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{connect, serve, Connection, InboundHandler, NoInbound, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ECHO: i32 = 1;
const SLOW_ECHO: i32 = 2;
const BIG: i32 = 3;
const BIG_BYTES: usize = 1 << 20;
/// Waits until the test opens the gate, then echoes its body repeated to the length given
/// by its first byte (in KiB) or once when that is 0.
const GATED: i32 = 4;

/// Echoes bodies (at once, or after a sleep) and answers BIG with 1 MiB of the request's
/// first body byte.
#[derive(Default)]
struct TestHandler {
    requests: AtomicUsize,
    gate: tokio::sync::Notify,
    at_gate: AtomicUsize,
}

impl InboundHandler for TestHandler {
    async fn on_request(&self, _conn: Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let resp = RemotingCommand::response_to(&req, 0);
        match req.code {
            ECHO => Some(resp.with_body(req.body.clone())),
            SLOW_ECHO => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some(resp.with_body(req.body.clone()))
            }
            BIG => Some(resp.with_body(vec![req.body.first().copied().unwrap_or(0); BIG_BYTES])),
            GATED => {
                let opened = self.gate.notified();
                tokio::pin!(opened);
                opened.as_mut().enable();
                self.at_gate.fetch_add(1, Ordering::SeqCst);
                opened.await;
                let kib = req.body.first().copied().unwrap_or(0) as usize;
                let body = if kib == 0 {
                    req.body.to_vec()
                } else {
                    req.body.iter().copied().cycle().take(kib << 10).collect()
                };
                Some(resp.with_body(body))
            }
            _ => None,
        }
    }
}

async fn start() -> (String, Arc<TestHandler>, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = Arc::new(TestHandler::default());
    let stop = CancellationToken::new();
    tokio::spawn(serve(
        listener,
        handler.clone(),
        ServerConfig::default(),
        stop.clone(),
    ));
    (addr, handler, stop)
}

fn request(code: i32, body: &[u8]) -> RemotingCommand {
    RemotingCommand::request(code).with_body(Bytes::copy_from_slice(body))
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn immediate_and_waiting_handlers_both_answer_their_own_requests() {
    let (addr, _, stop) = start().await;
    let conn = connect(&addr, Arc::new(NoInbound), TIMEOUT).await.unwrap();
    let mut calls = Vec::new();
    for i in 0..200u32 {
        let conn = conn.clone();
        calls.push(tokio::spawn(async move {
            let code = if i % 3 == 0 { SLOW_ECHO } else { ECHO };
            let body = i.to_be_bytes();
            let resp = conn.invoke(request(code, &body), TIMEOUT).await.unwrap();
            assert_eq!(
                &resp.body[..],
                &body[..],
                "request {i} got another's answer"
            );
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    stop.cancel();
}

#[tokio::test]
async fn responses_completed_together_on_one_connection_each_reach_their_caller() {
    let (addr, handler, stop) = start().await;
    let conn = connect(&addr, Arc::new(NoInbound), TIMEOUT).await.unwrap();
    const CALLS: u32 = 64;
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                // Every fourth answer is 200 KiB, so some are queued behind partial writes.
                let kib = if i % 4 == 0 { 200u8 } else { 0 };
                let body = [kib, (i >> 8) as u8, i as u8];
                let resp = conn.invoke(request(GATED, &body), TIMEOUT).await.unwrap();
                let expected_len = if kib == 0 { 3 } else { (kib as usize) << 10 };
                assert_eq!(
                    resp.body.len(),
                    expected_len,
                    "answer {i} has the wrong length"
                );
                assert!(
                    resp.body.chunks(3).all(|c| c == &body[..c.len()]),
                    "answer {i} carries another request's bytes"
                );
            })
        })
        .collect();
    // All waiting at once, then released at once, as a group commit releases its senders.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while handler.at_gate.load(Ordering::SeqCst) < CALLS as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests did not all arrive"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handler.gate.notify_waiters();
    for c in calls {
        c.await.unwrap();
    }
    stop.cancel();
}

#[tokio::test]
async fn large_responses_larger_than_socket_buffers_arrive_whole() {
    let (addr, _, stop) = start().await;
    let conn = connect(&addr, Arc::new(NoInbound), TIMEOUT).await.unwrap();
    // 32 MiB of responses in flight at once: most are queued behind partial writes.
    let calls: Vec<_> = (0..32u8)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let resp = conn.invoke(request(BIG, &[i]), TIMEOUT).await.unwrap();
                assert_eq!(resp.body.len(), BIG_BYTES);
                assert!(
                    resp.body.iter().all(|b| *b == i),
                    "frames interleaved in response {i}"
                );
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    stop.cancel();
}

#[tokio::test]
async fn a_peer_that_never_reads_is_not_served_without_bound_and_others_still_are() {
    let (addr, handler, stop) = start().await;
    // A raw client that writes 1 MiB-response requests and never reads.
    let mut frames = BytesMut::new();
    for _ in 0..2000 {
        request(BIG, &[7]).encode(&mut frames);
    }
    let hog_addr = addr.clone();
    let hog = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(hog_addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        // Stops when the server no longer reads (the write times out).
        let _ = s.write_all(&frames);
        s
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let served = handler.requests.load(Ordering::SeqCst);
    // The queue limit (8 MiB) plus socket buffers hold a few dozen 1 MiB answers at most.
    assert!(
        served < 200,
        "{served} requests served to a peer that reads nothing"
    );
    let conn = connect(&addr, Arc::new(NoInbound), TIMEOUT).await.unwrap();
    let resp = conn
        .invoke(request(ECHO, b"still here"), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&resp.body[..], b"still here");
    drop(hog.join().unwrap());
    stop.cancel();
}

#[tokio::test]
async fn oneway_requests_get_no_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, handler, stop) = start().await;
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut oneway = request(ECHO, b"x");
    oneway.opaque = 1;
    oneway.mark_oneway();
    let mut normal = request(ECHO, b"y");
    normal.opaque = 2;
    let mut out = BytesMut::new();
    oneway.encode(&mut out);
    normal.encode(&mut out);
    raw.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let first = loop {
        if let Some(frame) = RemotingCommand::decode_frame(&mut buf, 1 << 20).unwrap() {
            break frame;
        }
        let n = tokio::time::timeout(TIMEOUT, raw.read_buf(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed");
    };
    assert_eq!(
        first.opaque, 2,
        "the first answer on the wire belongs to the oneway request"
    );
    assert_eq!(&first.body[..], b"y");
    assert_eq!(handler.requests.load(Ordering::SeqCst), 2);
    stop.cancel();
}
