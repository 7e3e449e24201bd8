//! Requests [`AdminClient`](ferromq_client::admin::AdminClient) has no method for: topic
//! and group settings sent to chosen brokers, offset resets with Apache's options, reads
//! that commit nothing. Sent on connections of our own, signed like the client's requests
//! when `--accessKey` is given.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Longer frames are not an answer to anything we ask (pulls ask for 32 messages).
const MAX_FRAME: usize = 64 << 20;

pub struct Remote {
    credentials: Option<(String, String)>,
    conns: Mutex<HashMap<String, TcpStream>>,
    opaque: AtomicI32,
}

impl Remote {
    pub fn new(credentials: Option<(String, String)>) -> Self {
        Remote {
            credentials,
            conns: Mutex::new(HashMap::new()),
            opaque: AtomicI32::new(1),
        }
    }

    /// Sends `req` to `addr` and returns the answer, whatever its code.
    pub async fn call(&self, addr: &str, mut req: RemotingCommand) -> Result<RemotingCommand> {
        req.opaque = self.opaque.fetch_add(1, Ordering::Relaxed);
        if let Some((ak, sk)) = &self.credentials {
            ferromq_protocol::acl::sign(&mut req, ak, sk);
        }
        // One request at a time is all a command needs; the lock keeps framing simple.
        let mut conns = self.conns.lock().await;
        if !conns.contains_key(addr) {
            let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| anyhow::anyhow!("connect to {addr} timed out"))?
                .with_context(|| format!("cannot connect to {addr}"))?;
            conns.insert(addr.to_string(), stream);
        }
        let stream = conns.get_mut(addr).expect("inserted above");
        match tokio::time::timeout(TIMEOUT, exchange(stream, &req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                conns.remove(addr);
                Err(e.context(format!("request {} to {addr} failed", req.code)))
            }
            Err(_) => {
                conns.remove(addr);
                bail!("no answer from {addr} within {} s", TIMEOUT.as_secs())
            }
        }
    }

    /// [`call`](Self::call), with any answer but SUCCESS as the error.
    pub async fn ok(
        &self,
        addr: &str,
        req: RemotingCommand,
        operation: &str,
    ) -> Result<RemotingCommand> {
        let resp = self.call(addr, req).await?;
        if resp.code != response::SUCCESS {
            bail!("{}", refused(operation, addr, &resp));
        }
        Ok(resp)
    }

    /// A queue's min or max offset (`GET_MIN_OFFSET` / `GET_MAX_OFFSET`), or the offset of
    /// the first message stored at or after `timestamp` (`SEARCH_OFFSET_BY_TIMESTAMP`).
    pub async fn queue_offset(
        &self,
        addr: &str,
        topic: &str,
        queue_id: i32,
        at: QueuePoint,
    ) -> Result<i64> {
        let (code, operation) = match at {
            QueuePoint::Min => (request::GET_MIN_OFFSET, "GET_MIN_OFFSET"),
            QueuePoint::Max => (request::GET_MAX_OFFSET, "GET_MAX_OFFSET"),
            QueuePoint::Time(_) => (
                request::SEARCH_OFFSET_BY_TIMESTAMP,
                "SEARCH_OFFSET_BY_TIMESTAMP",
            ),
        };
        let mut req = RemotingCommand::request(code)
            .with_field("topic", topic)
            .with_field("queueId", queue_id);
        if let QueuePoint::Time(ts) = at {
            req = req.with_field("timestamp", ts);
        }
        let resp = self.ok(addr, req, operation).await?;
        resp.field("offset")
            .and_then(|o| o.parse().ok())
            .with_context(|| format!("{operation} answer from {addr} has no offset"))
    }

    /// Commits a group's offset on one queue (`UPDATE_CONSUMER_OFFSET`).
    pub async fn commit_offset(
        &self,
        addr: &str,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
    ) -> Result<()> {
        let req = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_field("consumerGroup", group)
            .with_field("topic", topic)
            .with_field("queueId", queue_id)
            .with_field("commitOffset", offset);
        self.ok(addr, req, "UPDATE_CONSUMER_OFFSET").await.map(drop)
    }

    /// A group's committed offset on one queue; `None` when it has none.
    pub async fn committed_offset(
        &self,
        addr: &str,
        group: &str,
        topic: &str,
        queue_id: i32,
    ) -> Result<Option<i64>> {
        let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_field("consumerGroup", group)
            .with_field("topic", topic)
            .with_field("queueId", queue_id);
        let resp = self.call(addr, req).await?;
        match resp.code {
            response::SUCCESS => Ok(resp.field("offset").and_then(|o| o.parse().ok())),
            response::QUERY_NOT_FOUND => Ok(None),
            _ => bail!("{}", refused("QUERY_CONSUMER_OFFSET", addr, &resp)),
        }
    }
}

/// Where in a queue [`Remote::queue_offset`] looks.
#[derive(Clone, Copy)]
pub enum QueuePoint {
    Min,
    Max,
    Time(i64),
}

/// The one-line error for a refused request, worded as the admin client's.
pub fn refused(operation: &str, addr: &str, resp: &RemotingCommand) -> String {
    format!(
        "{operation} refused by {addr}: code {}: {}",
        resp.code,
        resp.remark.as_deref().unwrap_or_default()
    )
}

async fn exchange(stream: &mut TcpStream, req: &RemotingCommand) -> Result<RemotingCommand> {
    stream.write_all(&req.to_bytes()).await?;
    loop {
        let len = stream.read_u32().await? as usize;
        if !(4..=MAX_FRAME).contains(&len) {
            bail!("bad frame length {len}");
        }
        let mut frame = vec![0; len];
        stream.read_exact(&mut frame).await?;
        let resp = RemotingCommand::decode_frame_body(frame.into())?;
        // A server may send requests of its own on the connection; only our answer counts.
        if resp.is_response() && resp.opaque == req.opaque {
            return Ok(resp);
        }
    }
}
