//! `ferromq`: the one binary. Subcommands run the name server, the broker, or both.

mod bench;
mod env_config;
mod health;
mod null_broker;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferromq",
    version,
    about = "A RocketMQ-compatible message queue in one binary"
)]
struct Cli {
    /// Log filter (e.g. info, debug, ferromq_broker=debug); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// `json`: one JSON object per log line (timestamp, level, target, message and the
    /// line's fields: peer, group, topic, …), for log pipelines.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Name server and broker in one process, on the default ports.
    Standalone(StandaloneArgs),
    /// Name server only (with `enableControllerInNamesrv=true`, a controller beside it).
    Namesrv {
        /// Address to listen on (its port overrides listenPort).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Apache-style namesrv.conf.
        #[arg(short = 'c', long = "config", env = "FERROMQ_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Controller only: elects each broker group's master (controller mode).
    Controller {
        /// Apache-style controller.conf (controllerDLegerPeers, controllerDLegerSelfId, …).
        #[arg(short = 'c', long = "config", env = "FERROMQ_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Broker only; registers with the name servers in `namesrvAddr`.
    Broker(BrokerArgs),
    /// Load generators.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Operate a cluster (mqadmin-style commands).
    Admin(ferromq_cli::AdminArgs),
    /// Shell completions for bash, zsh, fish, elvish or powershell, on stdout.
    Completions { shell: clap_complete::Shell },
    /// The manual page (roff), on stdout: `ferromq man > ferromq.1`.
    Man,
    /// Whether servers answer (bare: the standalone's name server and broker); for health checks.
    Health(health::HealthArgs),
    /// The web dashboard for any cluster.
    Dashboard {
        /// Name servers, `host:port;host:port`.
        #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
        namesrv: String,
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Require this `user:password`.
        #[arg(long)]
        login: Option<String>,
        /// `accessKey:secretKey` of an admin account, for brokers with ACL on.
        #[arg(long)]
        credentials: Option<String>,
    },
}

#[derive(Args)]
struct StandaloneArgs {
    /// Data directory (overrides storePathRootDir).
    #[arg(long, env = "FERROMQ_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Apache-style broker.conf.
    #[arg(short = 'c', long = "config", env = "FERROMQ_CONFIG")]
    config: Option<PathBuf>,
    /// Name server listen address.
    #[arg(long, default_value = "0.0.0.0:9876")]
    namesrv_listen: SocketAddr,
    /// Broker listen address (its port overrides listenPort).
    #[arg(long)]
    broker_listen: Option<SocketAddr>,
    /// Dashboard listen address.
    #[arg(long, default_value = "0.0.0.0:8080")]
    dashboard_listen: SocketAddr,
    /// Serve no dashboard.
    #[arg(long)]
    no_dashboard: bool,
    /// gRPC front for the 5.x clients (TLS and plaintext on the same port) [default:
    /// 0.0.0.0:8081, or grpcServerPort from broker.conf]
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// Serve no gRPC front.
    #[arg(long)]
    no_grpc: bool,
    /// Require this `user:password` on the dashboard.
    #[arg(long)]
    dashboard_login: Option<String>,
    /// `accessKey:secretKey` of an admin account the dashboard signs with (aclEnable=true).
    #[arg(long)]
    dashboard_credentials: Option<String>,
}

#[derive(Args)]
struct BrokerArgs {
    /// Apache-style broker.conf.
    #[arg(short = 'c', long = "config", env = "FERROMQ_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides storePathRootDir).
    #[arg(long, env = "FERROMQ_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Name servers, `host:port;host:port` (overrides namesrvAddr).
    #[arg(short = 'n', long)]
    namesrv: Option<String>,
    /// Listen address (its port overrides listenPort).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Also serve the gRPC front for the 5.x clients here (off unless given, or
    /// grpcServerPort is set in broker.conf).
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain: what an operator needs, nothing more.
            eprintln!("ferromq: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    // mqadmin spells some flags with one dash and two letters (`electMaster -bn broker-a`),
    // which clap would read as `-b n`.
    let args = std::env::args().map(|a| if a == "-bn" { "--bn".to_string() } else { a });
    let cli = Cli::parse_from(args);
    // Generated from the argument definitions themselves, so they never drift from them;
    // rendered into memory first, so a reader that stops early (`| head`) is no error.
    let generated = match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "ferromq", &mut out);
            Some(out)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .context("rendering the manual page")?;
            Some(out)
        }
        _ => None,
    };
    if let Some(text) = generated {
        use std::io::Write;
        return match std::io::stdout().write_all(&text) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log_level))
        .context("invalid --log-level")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Standalone(args) => serve::standalone(args).await,
            Command::Namesrv { listen, config } => serve::namesrv(listen, config).await,
            Command::Controller { config } => serve::controller(config).await,
            Command::Broker(args) => serve::broker(args).await,
            Command::Health(args) => health::run(args).await,
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Admin(args) => ferromq_cli::run(args).await,
            Command::Dashboard {
                namesrv,
                listen,
                login,
                credentials,
            } => serve::dashboard(namesrv, listen, login, credentials).await,
            Command::Completions { .. } | Command::Man => Ok(()),
        }
    })
}
