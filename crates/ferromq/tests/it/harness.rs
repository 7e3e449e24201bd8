//! Starts the real binary on free loopback ports in a temp directory.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, NoInbound};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `ferromq` process whose output is collected.
pub struct Proc {
    child: Child,
    pub output: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `ferromq ARGS` and waits (bounded) for its ready line.
    pub fn spawn(args: &[String]) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferromq"));
        command.args(args);
        Proc::spawn_command(command)
    }

    /// Spawns `command` (one that ends up running `ferromq`, possibly through a wrapper
    /// that `exec`s it) and waits (bounded) for its ready line.
    pub fn spawn_command(mut command: Command) -> Proc {
        let args = format!("{command:?}");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let ready = line.starts_with("FerroMQ is ready");
                {
                    let mut out = out.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
                // After the line is in the output: a test reading it once ready finds it.
                if ready {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let err = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            panic!("{args} did not become ready:\n{}", output.lock().unwrap());
        }
        Proc { child, output }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn logs(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends a signal (`STOP`, `CONT`, …) to this process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
        if name == "STOP" {
            self.wait_until_stopped();
        }
    }

    /// A group stop reaches the other threads only once the one the kernel picked runs, so
    /// on a busy machine they go on working for a while after `kill` returns: waits
    /// (bounded) until every thread is stopped.
    fn wait_until_stopped(&self) {
        let tasks = format!("/proc/{}/task", self.child.id());
        let stopped = || {
            std::fs::read_dir(&tasks).is_ok_and(|dir| {
                dir.filter_map(Result::ok).all(|t| {
                    std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
                        // The state follows the parenthesised command name.
                        stat.rsplit_once(')')
                            .and_then(|(_, rest)| rest.split_whitespace().next())
                            .is_some_and(|state| state == "T" || state == "t")
                    })
                })
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stopped() {
            assert!(
                Instant::now() < deadline,
                "{tasks}: not every thread stopped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "unclean exit {status}:\n{}", self.logs());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ferromq did not stop on SIGTERM:\n{}", self.logs());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- ferromq output ----\n{}", self.logs());
        }
    }
}

/// `ferromq standalone` on free ports in a temp directory.
pub struct Server {
    pub proc: Proc,
    pub namesrv: String,
    pub broker: String,
    pub dashboard: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `ferromq standalone` with the given broker.conf lines.
    pub fn start(conf: &str) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), conf, &[])
    }

    /// Starts with extra command-line arguments.
    pub fn start_with(conf: &str, extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), conf, extra)
    }

    /// Kills the process (SIGKILL) and starts it again on the same data, new ports.
    pub fn crash_and_restart(self, conf: &str) -> Server {
        let Server {
            proc, _dir: dir, ..
        } = self;
        drop(proc);
        Self::start_in(dir, conf, &[])
    }

    /// Starts on data already in `dir` (its `data` subdirectory).
    pub fn start_in(dir: tempfile::TempDir, conf: &str, extra: &[&str]) -> Server {
        let conf_path = dir.path().join("broker.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let (np, bp, dp) = (free_port(), free_port(), free_port());
        let args: Vec<String> = vec![
            "standalone".into(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "-c".into(),
            conf_path.display().to_string(),
            "--namesrv-listen".into(),
            format!("127.0.0.1:{np}"),
            "--broker-listen".into(),
            format!("127.0.0.1:{bp}"),
            "--dashboard-listen".into(),
            format!("127.0.0.1:{dp}"),
        ];
        let args: Vec<String> = args
            .into_iter()
            .chain(extra.iter().map(|a| a.to_string()))
            .collect();
        let proc = Proc::spawn(&args);
        Server {
            proc,
            namesrv: format!("127.0.0.1:{np}"),
            broker: format!("127.0.0.1:{bp}"),
            dashboard: format!("127.0.0.1:{dp}"),
            _dir: dir,
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    pub fn logs(&self) -> String {
        self.proc.logs()
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }
}

/// Starts `ferromq standalone` with these broker.conf lines (in `dir`), expecting it to
/// refuse; returns what it printed on stderr.
pub fn refused_start(dir: &std::path::Path, conf: &str) -> String {
    let path = dir.join("broker.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq"))
        .args(["standalone", "--namesrv-listen", "127.0.0.1:0"])
        .args(["--broker-listen", "127.0.0.1:0", "--no-dashboard", "-c"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {conf}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub async fn connect(addr: &str) -> Connection {
    ferromq_remoting::connect(addr, Arc::new(NoInbound), TIMEOUT)
        .await
        .unwrap()
}

/// Milliseconds since the Unix epoch, as brokers stamp messages.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub async fn call(conn: &Connection, cmd: RemotingCommand) -> RemotingCommand {
    conn.invoke(cmd, TIMEOUT).await.unwrap()
}

/// A SEND_MESSAGE request with V1 keys, as the Go client sends it.
pub fn send_request(topic: &str, body: &[u8], properties: &str) -> RemotingCommand {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    RemotingCommand::request(10)
        .with_field("producerGroup", "PG")
        .with_field("topic", topic)
        .with_field("defaultTopic", "TBW102")
        .with_field("defaultTopicQueueNums", 4)
        .with_field("queueId", 0)
        .with_field("sysFlag", 0)
        .with_field("bornTimestamp", now)
        .with_field("flag", 0)
        .with_field("properties", properties)
        .with_field("reconsumeTimes", 0)
        .with_field("unitMode", false)
        .with_field("batch", false)
        .with_body(body.to_vec())
}

pub fn pull_request(topic: &str, queue: i32, offset: i64, suspend_ms: i64) -> RemotingCommand {
    RemotingCommand::request(11)
        .with_field("consumerGroup", "CG")
        .with_field("topic", topic)
        .with_field("queueId", queue)
        .with_field("queueOffset", offset)
        .with_field("maxMsgNums", 32)
        .with_field("sysFlag", if suspend_ms > 0 { 2 } else { 0 })
        .with_field("commitOffset", 0)
        .with_field("suspendTimeoutMillis", suspend_ms)
        .with_field("subscription", "*")
        .with_field("subVersion", 0)
        .with_field("expressionType", "TAG")
}

/// UPDATE_CONSUMER_OFFSET (15): `group` consumed `topic`'s queue below `offset`.
/// UPDATE_AND_CREATE_TOPIC (17) of `topic` with `queues` read and write queues, asserted.
pub async fn create_topic(addr: &str, topic: &str, queues: i32) {
    let req = RemotingCommand::request(17)
        .with_field("topic", topic)
        .with_field("readQueueNums", queues)
        .with_field("writeQueueNums", queues)
        .with_field("perm", 6)
        .with_field("topicFilterType", "SINGLE_TAG");
    let resp = call(&connect(addr).await, req).await;
    assert_eq!(
        resp.code, 0,
        "creating {topic} on {addr}: {:?}",
        resp.remark
    );
}

pub fn commit_request(group: &str, topic: &str, queue_id: i32, offset: i64) -> RemotingCommand {
    RemotingCommand::request(15)
        .with_field("consumerGroup", group)
        .with_field("topic", topic)
        .with_field("queueId", queue_id)
        .with_field("commitOffset", offset)
}

/// Every body in queue 0 of `topic` on the broker behind `conn`, in queue order (bounded).
pub async fn queue0_bodies(conn: &Connection, topic: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let resp = call(conn, pull_request(topic, 0, out.len() as i64, 0)).await;
        if resp.code != 0 {
            break;
        }
        let msgs = ferromq_protocol::message::MessageExt::decode_all(&resp.body).unwrap();
        if msgs.is_empty() {
            break;
        }
        out.extend(msgs.into_iter().map(|m| m.body.to_vec()));
    }
    out
}

/// Waits (bounded) until `f` holds.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
