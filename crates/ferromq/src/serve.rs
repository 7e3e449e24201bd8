//! The server subcommands: `standalone`, `namesrv`, `controller`, `broker` and
//! `dashboard`. Each reads its configuration (file, then `FERROMQ_*` variables, then
//! flags), binds its ports, prints one "FerroMQ is ready" line once it serves, and stops
//! cleanly on SIGINT or SIGTERM: the broker flushes its store and unregisters first.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferromq_broker::config::BrokerRole;
use ferromq_broker::{Broker, BrokerConfig, Listeners};
use ferromq_namesrv::{NameServer, NamesrvConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::env_config;
use crate::{BrokerArgs, StandaloneArgs};

/// Cancels the token on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("shutting down");
        t.cancel();
    });
    token
}

/// broker.conf (when given), then the `FERROMQ_*` variables over it.
fn load_broker_config(path: Option<&PathBuf>) -> Result<BrokerConfig> {
    let mut config = match path {
        None => BrokerConfig::default(),
        Some(path) => {
            let (config, warnings) = BrokerConfig::from_file(path)
                .with_context(|| format!("loading {}", path.display()))?;
            for w in warnings {
                warn!("{}: {w}", path.display());
            }
            config
        }
    };
    let values = env_config::from_process(ferromq_broker::config::key_names());
    if !values.is_empty() {
        for w in config
            .apply(&values)
            .context("in the FERROMQ_* environment variables")?
        {
            warn!("environment: {w}");
        }
    }
    Ok(config)
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("binding the {what} to {addr} (is another process using the port?)")
    })
}

/// Apache's brokers also listen on listenPort − 2 (the "VIP channel"), which its admin
/// tools and dashboard use unless told not to. A taken port is not worth refusing to start
/// over: the broker runs without it and says so.
async fn bind_fast_channel(main: SocketAddr) -> Option<TcpListener> {
    let port = main.port().checked_sub(2).filter(|p| *p > 0)?;
    let addr = SocketAddr::new(main.ip(), port);
    match TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(%addr, error = %e, "cannot listen on the VIP channel (listenPort - 2); Apache's tools then need isVIPChannel=false");
            None
        }
    }
}

/// A master's replication port (`haListenPort`, default listenPort + 1). When the port was
/// not chosen in broker.conf a taken one is not worth refusing to start over: the master
/// runs without slaves and says so.
async fn bind_ha(config: &BrokerConfig, main: SocketAddr) -> Result<Option<TcpListener>> {
    // In controller mode any broker may become master, whatever brokerRole says (Apache's
    // quick-start files say SLAVE).
    if config.broker_role == BrokerRole::Slave && !config.enable_controller_mode {
        return Ok(None);
    }
    let addr = SocketAddr::new(main.ip(), config.ha_port());
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if config.ha_listen_port.is_some() => {
            Err(e).with_context(|| format!("binding haListenPort {addr}"))
        }
        Err(e) => {
            warn!(%addr, error = %e, "cannot listen on the HA port (listenPort + 1); slaves cannot follow this master until haListenPort names a free port");
            Ok(None)
        }
    }
}

async fn listeners(config: &BrokerConfig, main: TcpListener) -> Result<Listeners> {
    let addr = main.local_addr()?;
    Ok(Listeners {
        fast_channel: bind_fast_channel(addr).await,
        ha: bind_ha(config, addr).await?,
        main,
    })
}

fn advise_on_broker_ip(config: &BrokerConfig) {
    let loopback = config
        .broker_ip1
        .parse::<std::net::IpAddr>()
        .map_or(config.broker_ip1 == "localhost", |ip| ip.is_loopback());
    if loopback {
        warn!(
            "brokerIP1 is {}: clients on other machines (or in other containers) cannot reach this broker; set brokerIP1 in broker.conf, or {}, to an address they can reach",
            config.broker_ip1,
            env_config::variable_name("brokerIP1")
        );
    }
}

/// Lifts the soft limit on open files to the hard one, as a broker's clients, log segments
/// and queue files add up; says so when even the hard limit is low.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: current.maximum,
        maximum: current.maximum,
    };
    if current.current != current.maximum {
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the open-file limit to its hard limit");
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    if now.is_some_and(|n| n < 4_096) {
        tracing::warn!(
            limit = now,
            "the open-file limit is low for a broker (clients and queue files each take one); raise `ulimit -n`"
        );
    }
}

pub async fn standalone(args: StandaloneArgs) -> Result<()> {
    raise_open_file_limit();
    let mut config = load_broker_config(args.config.as_ref())?;
    if let Some(dir) = args.data_dir {
        config.store_root = dir;
    }
    let broker_addr = args
        .broker_listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], config.listen_port)));
    let namesrv_listener = bind(args.namesrv_listen, "name server").await?;
    let broker_listener = bind(broker_addr, "broker").await?;
    config.listen_port = broker_listener.local_addr()?.port();
    let namesrv_port = namesrv_listener.local_addr()?.port();
    let namesrv_ip = if args.namesrv_listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        args.namesrv_listen.ip().to_string()
    };
    let local_namesrv = format!("{namesrv_ip}:{namesrv_port}");
    if !config.namesrv_addrs.contains(&local_namesrv) {
        config.namesrv_addrs.insert(0, local_namesrv.clone());
    }
    advise_on_broker_ip(&config);
    let shutdown = shutdown_on_signals();
    // The name server outlives the broker so the broker can unregister on the way out.
    let namesrv_shutdown = CancellationToken::new();
    let broker = open_broker(config)?;
    // With TLS on, the built-in name server takes TLS and plaintext alike: TLS clients use
    // it for routes, and the broker registers in plaintext.
    let namesrv = NameServer::new(NamesrvConfig {
        tls: broker
            .tls()
            .map(|t| t.with_mode(ferromq_remoting::TlsMode::Permissive)),
        kv_config_path: Some(
            broker
                .config()
                .store_root
                .join("namesrv")
                .join("kvConfig.json"),
        ),
        ..Default::default()
    });
    let namesrv_task = tokio::spawn(namesrv.serve(namesrv_listener, namesrv_shutdown.clone()));
    broker.register_once().await;
    let mut dashboard_note = String::new();
    if !args.no_dashboard {
        // The dashboard is a convenience: a taken port must not stop the broker.
        match TcpListener::bind(args.dashboard_listen).await {
            Ok(listener) => {
                dashboard_note = format!(", dashboard http://{}", listener.local_addr()?);
                let config = ferromq_dashboard::DashboardConfig {
                    namesrv: vec![local_namesrv.clone()],
                    login: parse_login(args.dashboard_login)?,
                    credentials: parse_credentials(args.dashboard_credentials)?,
                    metrics: Some(metrics_source(&broker)),
                };
                let stop = namesrv_shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = ferromq_dashboard::serve(listener, config, stop).await {
                        warn!(error = %e, "the dashboard stopped");
                    }
                });
            }
            Err(e) => {
                warn!(addr = %args.dashboard_listen, error = %e, "cannot serve the dashboard; running without it")
            }
        }
    }
    let grpc_note = if args.no_grpc {
        String::new()
    } else {
        let port = broker.config().grpc_server_port.unwrap_or(8081);
        let addr = args
            .grpc_listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
        start_grpc(&broker, addr, shutdown.clone()).await?
    };
    let metrics_note = start_metrics_exporter(&broker, shutdown.clone()).await?;
    println!(
        "FerroMQ is ready: name server {local_namesrv}, broker {}{grpc_note}{dashboard_note}{metrics_note}",
        broker.config().advertised_addr()
    );
    let listeners = listeners(&broker.config(), broker_listener).await?;
    broker.serve(listeners, shutdown).await;
    namesrv_shutdown.cancel();
    let _ = namesrv_task.await;
    Ok(())
}

/// The broker's metrics, for the dashboard's `/metrics` and the exporter port.
fn metrics_source(broker: &Arc<Broker>) -> ferromq_dashboard::MetricsSource {
    let broker = Arc::downgrade(broker);
    ferromq_dashboard::MetricsSource(Arc::new(move |openmetrics| {
        broker
            .upgrade()
            .map(|b| b.metrics().render(openmetrics))
            .unwrap_or_default()
    }))
}

/// `metricsExporterType=PROM`: the metrics on a port of their own, at
/// `metricsPromExporterHost` (default brokerIP1) : `metricsPromExporterPort`. Asked for
/// explicitly, so a port that cannot be had stops the start.
async fn start_metrics_exporter(
    broker: &Arc<Broker>,
    shutdown: CancellationToken,
) -> Result<String> {
    let config = broker.config();
    if !config.metrics_prom_exporter {
        return Ok(String::new());
    }
    let host = if config.metrics_prom_host.is_empty() {
        config.broker_ip1.as_str()
    } else {
        config.metrics_prom_host.as_str()
    };
    let addr = format!("{host}:{}", config.metrics_prom_port);
    let listener = TcpListener::bind(&addr).await.with_context(|| {
        format!("binding the metrics exporter to {addr} (metricsPromExporterHost/metricsPromExporterPort)")
    })?;
    let note = format!(", metrics http://{}/metrics", listener.local_addr()?);
    let source = metrics_source(broker);
    tokio::spawn(async move {
        if let Err(e) = ferromq_dashboard::serve_metrics(listener, source, shutdown).await {
            warn!(error = %e, "the metrics exporter stopped");
        }
    });
    Ok(note)
}

/// Starts the gRPC front beside the broker; a taken port leaves the broker running
/// without it (as the dashboard), a bad certificate stops the start.
async fn start_grpc(
    broker: &Arc<Broker>,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> Result<String> {
    let config = broker.config();
    let files = config
        .tls_cert_path
        .as_deref()
        .zip(config.tls_key_path.as_deref());
    let tls = ferromq_grpc::listener::tls_acceptor(files).context("gRPC TLS")?;
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            warn!(addr = %listen, error = %e, "cannot serve the gRPC front; running without it");
            return Ok(String::new());
        }
    };
    let note = format!(", gRPC {}", listener.local_addr()?);
    let broker = broker.clone();
    tokio::spawn(async move {
        if let Err(e) = ferromq_grpc::serve(broker, listener, tls, shutdown).await {
            warn!(error = %e, "the gRPC front stopped");
        }
    });
    Ok(note)
}

/// A `name:secret` pair, both non-empty; `what` names the expected form in the error.
fn parse_pair(value: Option<String>, what: &str) -> Result<Option<(String, String)>> {
    match value {
        None => Ok(None),
        Some(v) => match v.split_once(':') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => {
                Ok(Some((a.to_string(), b.to_string())))
            }
            _ => bail!("{what}"),
        },
    }
}

fn parse_login(login: Option<String>) -> Result<Option<(String, String)>> {
    parse_pair(login, "the dashboard login must be user:password")
}

/// `accessKey:secretKey`.
fn parse_credentials(pair: Option<String>) -> Result<Option<ferromq_client::Credentials>> {
    Ok(
        parse_pair(pair, "dashboard credentials must be accessKey:secretKey")?
            .map(|(ak, sk)| ferromq_client::Credentials::new(ak, sk)),
    )
}

pub async fn dashboard(
    namesrv: String,
    listen: SocketAddr,
    login: Option<String>,
    credentials: Option<String>,
) -> Result<()> {
    let listener = bind(listen, "dashboard").await?;
    let namesrv: Vec<String> = namesrv
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let config = ferromq_dashboard::DashboardConfig {
        namesrv,
        login: parse_login(login)?,
        credentials: parse_credentials(credentials)?,
        metrics: None,
    };
    println!(
        "FerroMQ is ready: dashboard http://{}",
        listener.local_addr()?
    );
    ferromq_dashboard::serve(listener, config, shutdown_on_signals())
        .await
        .map_err(anyhow::Error::msg)
}

fn open_broker(config: BrokerConfig) -> Result<Arc<Broker>> {
    let root = config.store_root.display().to_string();
    info!(data_dir = %root, flush = ?config.flush_mode, advertised = %config.advertised_addr(), "opening the broker");
    Broker::open(config).with_context(|| format!("opening the broker store in {root}"))
}

/// A namesrv.conf or controller.conf (Apache's properties format), when given, with the
/// `FERROMQ_*` variables for its keys over it.
fn read_properties(path: Option<&PathBuf>) -> Result<std::collections::HashMap<String, String>> {
    let mut map = match path {
        None => Default::default(),
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            ferromq_broker::config::parse_properties(&bytes)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("parsing {}", path.display()))?
        }
    };
    map.extend(env_config::from_process(
        ferromq_controller::config::key_names(),
    ));
    Ok(map)
}

/// A controller's configuration from `controller.conf` keys (or a namesrv.conf holding them).
fn controller_config(
    map: &std::collections::HashMap<String, String>,
    path: Option<&PathBuf>,
) -> Result<ferromq_controller::ControllerConfig> {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let (config, warnings) =
        ferromq_controller::ControllerConfig::from_properties(map, home.join("DLedgerController"))
            .map_err(anyhow::Error::msg)?;
    for w in warnings {
        warn!(
            "{}: {w}",
            path.map_or("defaults".into(), |p| p.display().to_string())
        );
    }
    Ok(config)
}

/// Starts a controller node on its configured address; returns when it stops.
async fn run_controller(
    config: ferromq_controller::ControllerConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr: SocketAddr = config
        .self_addr()
        .and_then(|a| a.parse().ok())
        .context("the controller's own address in controllerDLegerPeers must be ip:port")?;
    let listener = bind(addr, "controller").await?;
    let node = ferromq_controller::Controller::start(config)
        .await
        .context("starting the controller")?;
    println!("FerroMQ is ready: controller {addr}");
    node.serve(listener, shutdown).await;
    Ok(())
}

pub async fn controller(path: Option<PathBuf>) -> Result<()> {
    let map = read_properties(path.as_ref())?;
    let config = controller_config(&map, path.as_ref())?;
    run_controller(config, shutdown_on_signals()).await
}

pub async fn namesrv(listen: Option<SocketAddr>, path: Option<PathBuf>) -> Result<()> {
    let map = read_properties(path.as_ref())?;
    let port = match map.get("listenPort") {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .with_context(|| format!("invalid value '{p}' for listenPort: expected 0 to 65535"))?,
        None => 9876,
    };
    let listen = listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
    let with_controller = match map.get("enableControllerInNamesrv").map(|v| v.trim()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            bail!("invalid value '{v}' for enableControllerInNamesrv: expected true or false")
        }
    };
    let controller = with_controller
        .then(|| controller_config(&map, path.as_ref()))
        .transpose()?;
    let listener = bind(listen, "name server").await?;
    let shutdown = shutdown_on_signals();
    // Apache's default place for it.
    let kv_config_path = map.get("kvConfigPath").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join("namesrv").join("kvConfig.json"))
    });
    let controller_task = controller.map(|c| tokio::spawn(run_controller(c, shutdown.clone())));
    println!("FerroMQ is ready: name server {}", listener.local_addr()?);
    NameServer::new(NamesrvConfig {
        kv_config_path,
        ..Default::default()
    })
    .serve(listener, shutdown)
    .await;
    if let Some(task) = controller_task {
        task.await.context("the controller task")??;
    }
    Ok(())
}

pub async fn broker(args: BrokerArgs) -> Result<()> {
    raise_open_file_limit();
    let mut config = load_broker_config(args.config.as_ref())?;
    if let Some(dir) = args.data_dir {
        config.store_root = dir;
    }
    if let Some(n) = args.namesrv {
        let mut map = std::collections::HashMap::new();
        map.insert("namesrvAddr".to_string(), n);
        config.apply(&map).context("--namesrv")?;
    }
    if config.namesrv_addrs.is_empty() {
        bail!(
            "no name server configured: set namesrvAddr in broker.conf or pass --namesrv host:port"
        );
    }
    let addr = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], config.listen_port)));
    let listener = bind(addr, "broker").await?;
    config.listen_port = listener.local_addr()?.port();
    advise_on_broker_ip(&config);
    let shutdown = shutdown_on_signals();
    let broker = open_broker(config)?;
    broker.register_once().await;
    let grpc_listen = args.grpc_listen.or_else(|| {
        broker
            .config()
            .grpc_server_port
            .map(|port| SocketAddr::from(([0, 0, 0, 0], port)))
    });
    let grpc_note = match grpc_listen {
        Some(addr) => start_grpc(&broker, addr, shutdown.clone()).await?,
        None => String::new(),
    };
    let metrics_note = start_metrics_exporter(&broker, shutdown.clone()).await?;
    println!(
        "FerroMQ is ready: broker {}{grpc_note}{metrics_note}",
        broker.config().advertised_addr()
    );
    let listeners = listeners(&broker.config(), listener).await?;
    broker.serve(listeners, shutdown).await;
    Ok(())
}
