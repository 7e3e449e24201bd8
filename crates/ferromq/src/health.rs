//! `ferromq health`: whether the servers at the given addresses answer, for container
//! health checks and scripts. Each server gets a request it must answer from its own state
//! (not just an open port), so a process that accepts connections but is stuck fails.
//! Exit status 0 when every one answers; otherwise 1, with one line per failure.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::NoInbound;

#[derive(Args)]
pub struct HealthArgs {
    /// A name server to ask for the cluster's brokers.
    #[arg(long, value_name = "HOST:PORT")]
    namesrv: Vec<String>,
    /// A broker to ask for its run-time figures.
    #[arg(long, value_name = "HOST:PORT")]
    broker: Vec<String>,
    /// A controller to ask for its metadata.
    #[arg(long, value_name = "HOST:PORT")]
    controller: Vec<String>,
    /// A gRPC front that must accept connections.
    #[arg(long, value_name = "HOST:PORT")]
    grpc: Vec<String>,
    /// An HTTP server (the dashboard) that must answer `GET /`.
    #[arg(long, value_name = "HOST:PORT")]
    http: Vec<String>,
    /// How long each server has to answer.
    #[arg(long, default_value = "3s", value_parser = humantime_secs)]
    timeout: Duration,
}

/// Apache's CONTROLLER_GET_METADATA_INFO.
const CONTROLLER_METADATA: i32 = ferromq_controller::service::request::GET_METADATA_INFO;

/// `3s`, `500ms` or plain seconds.
fn humantime_secs(s: &str) -> Result<Duration, String> {
    let parsed = if let Some(ms) = s.strip_suffix("ms") {
        ms.parse().map(Duration::from_millis)
    } else {
        s.trim_end_matches('s').parse().map(Duration::from_secs)
    };
    parsed.map_err(|_| format!("'{s}' is not a duration such as 3s or 500ms"))
}

pub async fn run(args: HealthArgs) -> Result<()> {
    let mut checks: Vec<(&str, String, Probe)> = Vec::new();
    let nothing_named = args.namesrv.is_empty()
        && args.broker.is_empty()
        && args.controller.is_empty()
        && args.grpc.is_empty()
        && args.http.is_empty();
    // Bare `ferromq health` checks what `ferromq standalone` serves on its default ports.
    let (namesrv, broker) = if nothing_named {
        (
            vec!["127.0.0.1:9876".into()],
            vec!["127.0.0.1:10911".into()],
        )
    } else {
        (args.namesrv, args.broker)
    };
    checks.extend(namesrv.into_iter().map(|a| {
        (
            "name server",
            a,
            Probe::Remoting(request::GET_BROKER_CLUSTER_INFO),
        )
    }));
    checks.extend(broker.into_iter().map(|a| {
        (
            "broker",
            a,
            Probe::Remoting(request::GET_BROKER_RUNTIME_INFO),
        )
    }));
    checks.extend(
        args.controller
            .into_iter()
            .map(|a| ("controller", a, Probe::Remoting(CONTROLLER_METADATA))),
    );
    checks.extend(
        args.grpc
            .into_iter()
            .map(|a| ("gRPC front", a, Probe::Connect)),
    );
    checks.extend(
        args.http
            .into_iter()
            .map(|a| ("HTTP server", a, Probe::HttpGet)),
    );

    let mut failures = Vec::new();
    for (what, addr, probe) in &checks {
        match tokio::time::timeout(args.timeout, check(addr, *probe, args.timeout)).await {
            Err(_) => failures.push(format!(
                "{what} {addr}: no answer within {:?}",
                args.timeout
            )),
            Ok(Ok(())) => println!("{what} {addr}: ok"),
            Ok(Err(e)) => failures.push(format!("{what} {addr}: {e:#}")),
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    bail!("{}", failures.join("; "))
}

/// What a server must do to count as healthy.
#[derive(Clone, Copy)]
enum Probe {
    /// Answer this remoting request.
    Remoting(i32),
    /// Accept a connection (the gRPC front: HTTP/2 and TLS are the clients' business).
    Connect,
    /// Answer `GET /` with any HTTP status.
    HttpGet,
}

async fn check(addr: &str, probe: Probe, timeout: Duration) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let code = match probe {
        Probe::Remoting(code) => code,
        Probe::Connect => {
            tokio::net::TcpStream::connect(addr).await?;
            return Ok(());
        }
        Probe::HttpGet => {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream
                .write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
                .await?;
            let mut head = [0u8; 8];
            stream.read_exact(&mut head).await?;
            if !head.starts_with(b"HTTP/1.") {
                bail!("answered something other than HTTP");
            }
            return Ok(());
        }
    };
    let conn = ferromq_remoting::connect(addr, std::sync::Arc::new(NoInbound), timeout).await?;
    let answer = conn.invoke(RemotingCommand::request(code), timeout).await?;
    // A refusal for want of credentials (aclEnable=true) still comes from a live server.
    if answer.code != response::SUCCESS && answer.code != response::NO_PERMISSION {
        bail!(
            "answered code {}: {}",
            answer.code,
            answer.remark.as_deref().unwrap_or("no remark")
        );
    }
    Ok(())
}
