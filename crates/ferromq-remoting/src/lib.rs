//! tokio transport for the RocketMQ remoting protocol.
//!
//! A [`Connection`] owns one socket with a reader task and a writer task. Requests that
//! arrive are handed to an [`InboundHandler`] each in its own task, so a long-polling pull
//! never blocks the other requests multiplexed on the same socket (the Go client sends
//! everything over one connection). Responses are matched to waiting callers by `opaque`.
//! [`serve`] accepts connections for a server; [`connect`] opens one as a client.

mod connection;
mod server;
mod tls;

pub use connection::{connect, Connection, InboundHandler, NoInbound};
pub use server::{serve, ServerConfig};
pub use tls::{TlsError, TlsMode, TlsServer};

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemotingError {
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connect to {addr} timed out")]
    ConnectTimeout { addr: String },
    #[error("no response from {peer} within {timeout_ms} ms (request code {code})")]
    Timeout {
        peer: String,
        code: i32,
        timeout_ms: u64,
    },
    #[error("connection to {peer} is closed")]
    Closed { peer: String },
}
