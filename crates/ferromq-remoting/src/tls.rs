//! TLS for client connections (rustls), in Apache's three modes: `disabled`, `permissive`
//! (TLS and plaintext on the same port, told apart by the first byte: a TLS record starts
//! with 0x16) and `enforcing` (TLS only).
//!
//! A TLS connection is terminated here and its plaintext carried over a local socket pair
//! to an ordinary [`Connection`], which keeps its zero-wait write path unchanged.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpStream, UnixStream};
use tracing::{debug, warn};

use crate::connection::{Connection, InboundHandler};

/// How long a client may take to complete the TLS handshake (or send its first byte).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext only.
    Disabled,
    /// TLS or plaintext, whichever the client speaks.
    Permissive,
    /// TLS only; plaintext clients are closed.
    Enforcing,
}

impl std::str::FromStr for TlsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disabled" => Ok(TlsMode::Disabled),
            "permissive" => Ok(TlsMode::Permissive),
            "enforcing" => Ok(TlsMode::Enforcing),
            _ => Err("disabled, permissive or enforcing".into()),
        }
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Permissive => "permissive",
            TlsMode::Enforcing => "enforcing",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the TLS certificate chain {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("reading the TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the TLS certificate and key do not form a usable server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A server's TLS settings: its certificate and key, and the mode.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: tokio_rustls::TlsAcceptor,
    mode: TlsMode,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsServer({:?})", self.mode)
    }
}

impl TlsServer {
    /// Loads a PEM certificate chain and private key.
    ///
    /// # Errors
    /// A file that cannot be read or holds no usable certificate or key.
    pub fn from_pem_files(cert: &Path, key: &Path, mode: TlsMode) -> Result<Self, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| TlsError::Certificate {
                path: cert.display().to_string(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::Certificate {
                path: cert.display().to_string(),
                reason: "no certificate found".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        Ok(TlsServer {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            mode,
        })
    }

    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// The same certificate in another mode.
    pub fn with_mode(&self, mode: TlsMode) -> TlsServer {
        TlsServer {
            acceptor: self.acceptor.clone(),
            mode,
        }
    }

    /// Serves an accepted socket: plaintext straight away, TLS through a terminator.
    /// Returns `None` when the client was refused or the handshake failed.
    pub(crate) async fn accept<H: InboundHandler>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        handler: Arc<H>,
        max_frame_bytes: usize,
        idle_timeout: Duration,
    ) -> Option<Connection> {
        let speaks_tls = match self.mode {
            TlsMode::Disabled => false,
            TlsMode::Enforcing => true,
            TlsMode::Permissive => {
                let mut first = [0u8; 1];
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
                    Ok(Ok(1)) => first[0] == TLS_HANDSHAKE_RECORD,
                    _ => return None,
                }
            }
        };
        if !speaks_tls {
            return Some(Connection::spawn(
                stream,
                handler,
                max_frame_bytes,
                Some(idle_timeout),
            ));
        }
        let _ = stream.set_nodelay(true);
        let mut tls =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    warn!(%peer, error = %e, "TLS handshake failed; closing connection");
                    return None;
                }
                Err(_) => {
                    warn!(%peer, "no TLS handshake within 10 s; closing connection");
                    return None;
                }
            };
        let (mut plain, inner) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                warn!(%peer, error = %e, "no socket pair for a TLS connection; closing it");
                return None;
            }
        };
        let conn =
            Connection::spawn_unix(inner, peer, handler, max_frame_bytes, Some(idle_timeout));
        tokio::spawn(async move {
            if let Err(e) = tokio::io::copy_bidirectional(&mut tls, &mut plain).await {
                debug!(%peer, error = %e, "TLS connection ended");
            }
        });
        Some(conn)
    }
}
