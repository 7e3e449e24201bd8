//! A slave far behind its master catches up while the master keeps taking load, and ends
//! with the master's commit log byte for byte; a slave whose disk fills stops copying,
//! stays up, and catches up once it has room again.
//!
//! The backlog is `FERROMQ_CATCHUP_MIB` MiB (default 64, what CI runs);
//! `scripts/catchup-soak.sh` runs it with 1 GiB and a heavier load on a release build and
//! prints the figures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;

use crate::cluster::{broker, master_conf, namesrv, slave_conf};
use crate::harness::{call, connect, free_port, Proc};

const MIB: u64 = 1024 * 1024;
/// Body size of the backlog's messages.
const BACKLOG_BODY: u64 = 4096;
/// Steady load while the slave catches up: messages per second of 1 KiB
/// (`FERROMQ_CATCHUP_RATE`, default 500).
fn live_rate() -> u64 {
    std::env::var("FERROMQ_CATCHUP_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}
/// "Caught up" under load: the slave within this many bytes of the master's end.
const FOLLOWING_GAP: u64 = 4 * MIB;

fn backlog_mib() -> u64 {
    std::env::var("FERROMQ_CATCHUP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// `ferromq bench produce` against the name server, as its own process.
fn bench(ns: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferromq"))
        .args(["bench", "produce", "--namesrv", ns, "--topic", "catchup"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for a bench to finish and requires it to have succeeded.
fn finish(mut child: Child, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "bench failed:\n{text}");
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("bench did not finish within {limit:?}");
}

/// The broker's commit-log end (GET_BROKER_RUNTIME_INFO's `commitLogMaxOffset`).
async fn log_end(conn: &Connection) -> u64 {
    let r = call(conn, RemotingCommand::request(28)).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    info["table"]["commitLogMaxOffset"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn commit_log_dir(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join("commitlog");
    assert!(dir.is_dir(), "no commit log at {}", dir.display());
    dir
}

/// The bytes of the log below `end`, segment by segment.
fn log_bytes(dir: &Path, segment: u64, end: u64) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let base: u64 = name.parse().ok()?;
            (base < end).then(|| {
                let mut bytes = std::fs::read(dir.join(&name)).unwrap();
                bytes.truncate((end - base).min(segment) as usize);
                (name, bytes)
            })
        })
        .collect()
}

/// The master's and the slave's commit logs below `end` are the same segments, byte for byte.
fn assert_same_log(master_dir: &Path, slave_dir: &Path, segment: u64, end: u64) {
    let theirs = log_bytes(&commit_log_dir(master_dir), segment, end);
    let ours = log_bytes(&commit_log_dir(slave_dir), segment, end);
    assert_eq!(
        ours.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        theirs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "the same segments"
    );
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        assert!(a == b, "segment {name} differs between master and slave");
    }
}

#[tokio::test]
async fn a_slave_far_behind_catches_up_under_load_and_holds_the_masters_bytes() {
    let mib = backlog_mib();
    let segment = 64 * MIB;
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let (mut master_proc, master_addr) = broker(
        dir.path(),
        "master",
        &master_conf(
            "broker-c",
            &ns,
            ha_port,
            &format!("mapedFileSizeCommitLog={segment}\n"),
        ),
    );
    let master = connect(&master_addr).await;
    let messages = (mib * MIB / BACKLOG_BODY).to_string();
    let size = BACKLOG_BODY.to_string();
    let fill = bench(
        &ns,
        &[
            "--producers",
            "4",
            "--mode",
            "async",
            "--size",
            &size,
            "--messages",
            &messages,
            "--seconds",
            "3600",
        ],
    );
    finish(fill, Duration::from_secs(60 + mib));
    let backlog = log_end(&master).await;
    assert!(
        backlog >= mib * MIB,
        "the backlog is written: {backlog} bytes"
    );

    // Steady load for as long as the catch-up may take.
    let live_seconds = (120 + mib / 4).to_string();
    let rate = live_rate().to_string();
    let live = bench(&ns, &["--rate", &rate, "--seconds", &live_seconds]);
    let started = Instant::now();
    let (mut slave_proc, slave_addr) = broker(
        dir.path(),
        "slave",
        &slave_conf(
            "broker-c",
            &ns,
            ha_port,
            &format!("mapedFileSizeCommitLog={segment}\n"),
        ),
    );
    let slave = connect(&slave_addr).await;
    let limit = Duration::from_secs(60 + mib);
    let mut backlog_copied = None;
    let mut following = None;
    while following.is_none() {
        assert!(
            started.elapsed() < limit,
            "the slave did not catch up within {limit:?}"
        );
        let (theirs, ours) = (log_end(&master).await, log_end(&slave).await);
        if backlog_copied.is_none() && ours >= backlog {
            backlog_copied = Some(started.elapsed());
        }
        if backlog_copied.is_some() && theirs.saturating_sub(ours) <= FOLLOWING_GAP {
            following = Some((started.elapsed(), theirs - backlog));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let copied = backlog_copied.unwrap();
    let (followed, written_meanwhile) = following.unwrap();
    assert!(
        live.id() > 0 && written_meanwhile > 0,
        "the master took load while the slave caught up"
    );
    println!(
        "CATCH-UP FIGURES: backlog {:.0} MiB copied in {:.1} s ({:.0} MiB/s) while the master took {} msgs/s; within {} MiB of the master's end after {:.1} s ({:.1} MiB written meanwhile)",
        backlog as f64 / MIB as f64,
        copied.as_secs_f64(),
        backlog as f64 / MIB as f64 / copied.as_secs_f64(),
        live_rate(),
        FOLLOWING_GAP / MIB,
        followed.as_secs_f64(),
        written_meanwhile as f64 / MIB as f64,
    );

    let mut live = live;
    let _ = live.kill();
    let _ = live.wait();
    let deadline = Instant::now() + Duration::from_secs(60);
    let end = loop {
        let end = log_end(&master).await;
        if log_end(&slave).await == end {
            break end;
        }
        assert!(Instant::now() < deadline, "the slave never reached {end}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    slave_proc.terminate();
    master_proc.terminate();
    assert_same_log(
        &dir.path().join("master"),
        &dir.path().join("slave"),
        segment,
        end,
    );
}

/// Runs `cmd` and tells whether it succeeded.
fn succeeds(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The slave's data directory is a small tmpfs in a mount namespace of its own (needs root
/// and `unshare`): its disk fills while the master takes more than it can hold. The slave
/// must stay up without corrupting what it holds, the master must go on answering, and
/// once the tmpfs grows the slave must catch up to the master's bytes.
#[tokio::test]
async fn a_slave_whose_disk_fills_stays_up_and_catches_up_once_it_has_room() {
    if !succeeds("unshare", &["--mount", "true"]) {
        eprintln!("skipped: needs root and unshare to give the slave a small disk");
        return;
    }
    let segment = 8 * MIB;
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let (mut master_proc, master_addr) = broker(
        dir.path(),
        "master",
        &master_conf(
            "broker-f",
            &ns,
            ha_port,
            &format!("mapedFileSizeCommitLog={segment}\n"),
        ),
    );
    let slave_dir = dir.path().join("slave");
    std::fs::create_dir_all(&slave_dir).unwrap();
    let conf = dir.path().join("slave.conf");
    std::fs::write(
        &conf,
        slave_conf(
            "broker-f",
            &ns,
            ha_port,
            &format!("mapedFileSizeCommitLog={segment}\n"),
        ),
    )
    .unwrap();
    let slave_addr = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-c"]).arg(format!(
        "mount -t tmpfs -o size=24m ferromq-slave-disk '{d}' && exec '{bin}' broker -c '{c}' --data-dir '{d}' --listen {slave_addr}",
        d = slave_dir.display(),
        bin = env!("CARGO_BIN_EXE_ferromq"),
        c = conf.display(),
    ));
    let mut slave_proc = Proc::spawn_command(command);
    let slave = connect(&slave_addr).await;
    let master = connect(&master_addr).await;

    // Three times what the slave's disk holds.
    let fill = bench(
        &ns,
        &[
            "--producers",
            "2",
            "--mode",
            "async",
            "--size",
            "4096",
            "--messages",
            "12288",
            "--seconds",
            "600",
        ],
    );
    finish(fill, Duration::from_secs(120));
    let end = log_end(&master).await;
    assert!(end >= 40 * MIB, "the master holds the load: {end}");
    // The slave copies what fits, then stalls short of the master's end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stalled_at = log_end(&slave).await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = log_end(&slave).await;
        if now == stalled_at && now > 0 {
            break;
        }
        stalled_at = now;
        assert!(Instant::now() < deadline, "the slave never stalled");
    }
    assert!(stalled_at < end, "a 24 MiB disk cannot hold {end} bytes");
    assert!(
        slave_proc.is_running(),
        "a full disk must not take the slave down"
    );
    assert!(
        slave_proc.logs().contains("No space left on device"),
        "the slave says why it stopped copying:\n{}",
        slave_proc.logs()
    );
    let r = call(
        &master,
        crate::harness::send_request("catchup", b"still taking", ""),
    )
    .await;
    assert_eq!(r.code, 0, "the master goes on answering: {:?}", r.remark);

    assert!(
        succeeds(
            "nsenter",
            &[
                "-t",
                &slave_proc.pid().to_string(),
                "-m",
                "mount",
                "-o",
                "remount,size=256m",
                &slave_dir.display().to_string()
            ]
        ),
        "growing the slave's disk"
    );
    let end = log_end(&master).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_end(&slave).await < end {
        assert!(
            Instant::now() < deadline,
            "the slave never caught up after the disk grew"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What it holds reads back: the bytes are the master's. The tmpfs is mounted in the
    // slave's namespace only: read it through the slave's root.
    let seen_by_slave = Path::new(&format!("/proc/{}/root", slave_proc.pid()))
        .join(slave_dir.strip_prefix("/").unwrap());
    assert_same_log(&dir.path().join("master"), &seen_by_slave, segment, end);
    slave_proc.terminate();
    master_proc.terminate();
}
