//! A FerroMQ name server and broker inside the test process: on free ports of 127.0.0.1,
//! storing in a temporary directory, ready in milliseconds, gone when dropped.
//!
//! ```
//! let broker = ferromq_testkit::EmbeddedBroker::start()?;
//! // point any RocketMQ client at broker.namesrv_addr()
//! # assert!(broker.namesrv_addr().starts_with("127.0.0.1:"));
//! # Ok::<(), ferromq_testkit::TestkitError>(())
//! ```
//!
//! The servers run on a runtime of their own, on a thread of their own, so a test may be
//! `#[test]` or `#[tokio::test]` of either flavour, and dropping the broker (which stops
//! it, unregisters it and deletes its data) blocks no runtime the test owns. What they
//! serve is the real thing: the same broker and name server as `ferromq standalone`,
//! with its defaults (topics are created on first send) and any `broker.conf` keys the
//! test sets through [`EmbeddedBroker::builder`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ferromq_broker::{Broker, BrokerConfig, Listeners};
use ferromq_namesrv::{NameServer, NamesrvConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why an embedded broker did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    #[error("creating the temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("starting the broker's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("binding 127.0.0.1:0 for the {what}: {source}")]
    Bind {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the broker configuration is refused: {0}")]
    Config(#[from] ferromq_broker::ConfigError),
    #[error("opening the broker: {0}")]
    Open(#[from] ferromq_broker::OpenError),
    #[error("the gRPC front's TLS set-up failed: {0}")]
    GrpcTls(String),
    #[error("the broker's thread ended before it was ready")]
    ThreadEnded,
}

/// Options for [`EmbeddedBroker`]; [`EmbeddedBroker::start`] takes the defaults.
#[derive(Default)]
pub struct Builder {
    keys: HashMap<String, String>,
    grpc: bool,
}

impl Builder {
    /// Sets a `broker.conf` key, as the file would (`"flushDiskType", "SYNC_FLUSH"`).
    /// Ports, addresses and the data directory are the kit's to choose.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.keys.insert(key.into(), value.into());
        self
    }

    /// Also serves the gRPC front, for the 5.x clients ([`EmbeddedBroker::grpc_addr`]).
    pub fn grpc(mut self, on: bool) -> Self {
        self.grpc = on;
        self
    }

    /// Starts the servers and returns once they answer requests.
    pub fn start(self) -> Result<EmbeddedBroker, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("ferromq-testkit-")
            .tempdir()
            .map_err(TestkitError::TempDir)?;
        let mut config = BrokerConfig::default();
        config.apply(&self.keys)?;
        config.store_root = dir.path().join("store");
        config.broker_ip1 = "127.0.0.1".into();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferromq-testkit")
            .enable_all()
            .build()
            .map_err(TestkitError::Runtime)?;
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        let grpc = self.grpc;
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ferromq-testkit".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match open(config, grpc, thread_stop.clone()).await {
                        Ok((servers, addrs)) => {
                            let _ = ready_tx.send(Ok(addrs));
                            servers.run(thread_stop).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
            })
            .map_err(TestkitError::Runtime)?;
        let mut broker = EmbeddedBroker {
            addrs: Addrs::default(),
            stop,
            thread: Some(thread),
            dir,
        };
        match ready_rx.recv() {
            Ok(Ok(addrs)) => {
                broker.addrs = addrs;
                Ok(broker)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TestkitError::ThreadEnded),
        }
    }
}

#[derive(Default)]
struct Addrs {
    namesrv: String,
    broker: String,
    grpc: Option<String>,
}

/// A running name server and broker; dropping it stops both and deletes their data.
pub struct EmbeddedBroker {
    addrs: Addrs,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl EmbeddedBroker {
    /// A name server and broker with FerroMQ's defaults.
    pub fn start() -> Result<Self, TestkitError> {
        Builder::default().start()
    }

    /// Options: `broker.conf` keys, the gRPC front.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The name server's `127.0.0.1:port`, what clients are given.
    pub fn namesrv_addr(&self) -> &str {
        &self.addrs.namesrv
    }

    /// The broker's `127.0.0.1:port`, for admin requests sent to the broker itself.
    pub fn broker_addr(&self) -> &str {
        &self.addrs.broker
    }

    /// The gRPC front's `127.0.0.1:port`, when [`Builder::grpc`] asked for it.
    pub fn grpc_addr(&self) -> Option<&str> {
        self.addrs.grpc.as_deref()
    }

    /// Where the broker stores its data (deleted on drop).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the servers as SIGTERM stops `ferromq standalone`: the broker unregisters
    /// and flushes its store, then the name server stops. Dropping does the same.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            // A panic on the servers' thread has been printed already; the test goes on
            // to report its own outcome.
            let _ = thread.join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// What runs on the kit's thread once bound and registered.
struct Servers {
    broker: std::sync::Arc<Broker>,
    broker_listener: TcpListener,
    namesrv_stop: CancellationToken,
    namesrv_task: tokio::task::JoinHandle<()>,
}

impl Servers {
    async fn run(self, stop: CancellationToken) {
        let listeners = Listeners {
            main: self.broker_listener,
            fast_channel: None,
            ha: None,
        };
        self.broker.serve(listeners, stop).await;
        // The name server outlives the broker so the broker can unregister.
        self.namesrv_stop.cancel();
        let _ = self.namesrv_task.await;
    }
}

async fn bind(what: &'static str) -> Result<TcpListener, TestkitError> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|source| TestkitError::Bind { what, source })
}

fn port_of(listener: &TcpListener, what: &'static str) -> Result<u16, TestkitError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| TestkitError::Bind { what, source })
}

async fn open(
    mut config: BrokerConfig,
    grpc: bool,
    stop: CancellationToken,
) -> Result<(Servers, Addrs), TestkitError> {
    let namesrv_listener = bind("name server").await?;
    let broker_listener = bind("broker").await?;
    let namesrv = format!("127.0.0.1:{}", port_of(&namesrv_listener, "name server")?);
    config.listen_port = port_of(&broker_listener, "broker")?;
    config.namesrv_addrs = vec![namesrv.clone()];
    let broker = Broker::open(config)?;
    let namesrv_stop = CancellationToken::new();
    let namesrv_task = tokio::spawn(
        NameServer::new(NamesrvConfig::default()).serve(namesrv_listener, namesrv_stop.clone()),
    );
    broker.register_once().await;
    let grpc_addr = if grpc {
        let tls = ferromq_grpc::listener::tls_acceptor(None)
            .map_err(|e| TestkitError::GrpcTls(e.to_string()))?;
        let listener = bind("gRPC front").await?;
        let addr = format!("127.0.0.1:{}", port_of(&listener, "gRPC front")?);
        let front_broker = broker.clone();
        tokio::spawn(async move {
            // A front that stops early shows up as the test's connection errors.
            let _ = ferromq_grpc::serve(front_broker, listener, tls, stop).await;
        });
        Some(addr)
    } else {
        None
    };
    let addrs = Addrs {
        namesrv,
        broker: broker.config().advertised_addr(),
        grpc: grpc_addr,
    };
    Ok((
        Servers {
            broker,
            broker_listener,
            namesrv_stop,
            namesrv_task,
        },
        addrs,
    ))
}
