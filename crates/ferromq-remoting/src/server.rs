//! Accept loop.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::connection::{Connection, InboundHandler};
use crate::tls::TlsServer;

/// Server limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted; larger ones close the connection.
    pub max_frame_bytes: usize,
    /// Connections served at once; further ones are closed right after accept.
    pub max_connections: usize,
    /// A connection that completes no frame for this long is closed (Apache
    /// `serverChannelMaxIdleTimeSeconds`, 120 s; clients heartbeat every 30 s).
    pub idle_timeout: std::time::Duration,
    /// TLS for clients; `None` is plaintext only.
    pub tls: Option<TlsServer>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_bytes: ferromq_protocol::command::DEFAULT_MAX_FRAME_BYTES,
            max_connections: 10_000,
            idle_timeout: std::time::Duration::from_secs(120),
            tls: None,
        }
    }
}

/// Accepts connections on `listener` until `shutdown` is cancelled; open connections
/// are then closed.
pub async fn serve<H: InboundHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, max = config.max_connections, "connection limit reached; refusing connection");
            drop(stream);
            continue;
        };
        let shutdown = shutdown.clone();
        let (tls, handler) = (config.tls.clone(), handler.clone());
        let (max_frame, idle) = (config.max_frame_bytes, config.idle_timeout);
        tokio::spawn(async move {
            let accepted = match tls {
                None => Some(Connection::spawn(stream, handler, max_frame, Some(idle))),
                // The handshake runs in the connection's own task, never in the accept loop.
                Some(tls) => tokio::select! {
                    c = tls.accept(stream, peer, handler, max_frame, idle) => c,
                    _ = shutdown.cancelled() => None,
                },
            };
            if let Some(conn) = accepted {
                tokio::select! {
                    _ = conn.closed() => {}
                    _ = shutdown.cancelled() => conn.close(),
                }
            }
            drop(permit);
        });
    }
    info!(?local, "listener stopped");
}
