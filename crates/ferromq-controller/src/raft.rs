//! The controller's consensus, with openraft: the type configuration, a durable log and
//! vote store on local files, the state machine over [`ControllerState`] with snapshots on
//! disk, and node-to-node RPC carried as remoting requests (FerroMQ's own codes, JSON bodies)
//! on each node's controller port.
//!
//! ```text
//! <dir>/raft-log        records | len u32 | crc32 u32 | JSON entry |, appended and fsynced
//! <dir>/raft-meta.json  vote, committed and last purged log ids (replaced atomically)
//! <dir>/snapshot.json   the last snapshot: its meta and the state (replaced atomically)
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_protocol::RemotingCommand;
use ferromq_remoting::{Connection, NoInbound};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use crate::state::{ControllerState, Event};

openraft::declare_raft_types!(
    /// The controller's raft types: log entries are [`Event`]s.
    pub TypeConfig:
        D = Event,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
type StorageResult<T> = Result<T, StorageError<u64>>;

/// FerroMQ's codes for node-to-node raft RPC on the controller port.
pub mod rpc_code {
    pub const APPEND_ENTRIES: i32 = 9101;
    pub const VOTE: i32 = 9102;
    pub const INSTALL_SNAPSHOT: i32 = 9103;
}

fn io_error(e: impl std::error::Error + 'static) -> AnyError {
    AnyError::new(&e)
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LogMeta {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
}

struct LogInner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    meta: LogMeta,
}

impl LogInner {
    fn log_path(dir: &Path) -> PathBuf {
        dir.join("raft-log")
    }

    fn encode(entry: &Entry<TypeConfig>, out: &mut Vec<u8>) {
        let json = serde_json::to_vec(entry).expect("raft entries serialize");
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        out.extend_from_slice(&json);
    }

    /// Rewrites the whole log file with what is kept (after a truncation or a purge).
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for e in self.entries.values() {
            Self::encode(e, &mut bytes);
        }
        let path = Self::log_path(&self.dir);
        replace_file(&path, &bytes)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }

    fn save_meta(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.meta).expect("raft meta serializes");
        replace_file(&self.dir.join("raft-meta.json"), &json)
    }
}

/// The raft log and vote, on local files. Clones share the same store.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Opens the log in `dir`; a torn last record (a crash mid-append) is dropped.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let meta: LogMeta = match std::fs::read(dir.join("raft-meta.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LogMeta::default(),
            Err(e) => return Err(e),
        };
        let path = LogInner::log_path(dir);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut entries = BTreeMap::new();
        let mut pos = 0usize;
        let mut clean = true;
        while pos < bytes.len() {
            let Some(head) = bytes.get(pos..pos + 8) else {
                clean = false;
                break;
            };
            let len = u32::from_be_bytes(head[..4].try_into().expect("4")) as usize;
            let crc = u32::from_be_bytes(head[4..].try_into().expect("4"));
            let Some(json) = bytes.get(pos + 8..pos + 8 + len) else {
                clean = false;
                break;
            };
            if crc32fast::hash(json) != crc {
                clean = false;
                break;
            }
            let entry: Entry<TypeConfig> =
                serde_json::from_slice(json).map_err(std::io::Error::other)?;
            entries.insert(entry.log_id.index, entry);
            pos += 8 + len;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut inner = LogInner {
            dir: dir.to_path_buf(),
            file,
            entries,
            meta,
        };
        if !clean {
            tracing::warn!(path = %path.display(), kept = inner.entries.len(), "torn raft log record dropped");
            inner.rewrite()?;
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let inner = self.inner.lock().expect("raft log lock");
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let inner = self.inner.lock().expect("raft log lock");
        let last_purged = inner.meta.last_purged;
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        let mut inner = self.inner.lock().expect("raft log lock");
        inner.meta.vote = Some(*vote);
        inner
            .save_meta()
            .map_err(|e| StorageIOError::write_vote(io_error(e)).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        Ok(self.inner.lock().expect("raft log lock").meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        let mut inner = self.inner.lock().expect("raft log lock");
        inner.meta.committed = committed;
        inner
            .save_meta()
            .map_err(|e| StorageIOError::write(io_error(e)).into())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        Ok(self.inner.lock().expect("raft log lock").meta.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().expect("raft log lock");
        let mut bytes = Vec::new();
        let mut added = Vec::new();
        for e in entries {
            LogInner::encode(&e, &mut bytes);
            added.push(e);
        }
        let written = inner
            .file
            .write_all(&bytes)
            .and_then(|()| inner.file.sync_data());
        match written {
            Ok(()) => {
                for e in added {
                    inner.entries.insert(e.log_id.index, e);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let reason = e.to_string();
                callback.log_io_completed(Err(e));
                Err(StorageIOError::write_logs(AnyError::error(reason)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let mut inner = self.inner.lock().expect("raft log lock");
        inner.entries.split_off(&log_id.index);
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(io_error(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let mut inner = self.inner.lock().expect("raft log lock");
        inner.meta.last_purged = Some(log_id);
        inner
            .save_meta()
            .map_err(|e| StorageIOError::write_logs(io_error(e)))?;
        let kept = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = kept;
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(io_error(e)).into())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    state: ControllerState,
}

struct MachineInner {
    dir: PathBuf,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    state: ControllerState,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

/// The state machine: applies [`Event`]s to the [`ControllerState`]. Clones share it;
/// [`StateMachine::read`] gives the service its view.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<MachineInner>>,
}

impl StateMachine {
    /// Opens the state machine in `dir`, starting from the last snapshot there.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let snapshot: Option<StoredSnapshot> = match std::fs::read(dir.join("snapshot.json")) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(std::io::Error::other)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let inner = MachineInner {
            dir: dir.to_path_buf(),
            last_applied: snapshot.as_ref().and_then(|s| s.meta.last_log_id),
            membership: snapshot
                .as_ref()
                .map(|s| s.meta.last_membership.clone())
                .unwrap_or_default(),
            state: snapshot
                .as_ref()
                .map(|s| s.state.clone())
                .unwrap_or_default(),
            snapshot,
            snapshots_built: 0,
        };
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Runs `f` over the state as applied so far.
    pub fn read<T>(&self, f: impl FnOnce(&ControllerState) -> T) -> T {
        f(&self.inner.lock().expect("state machine lock").state)
    }

    fn store_snapshot(inner: &mut MachineInner, snapshot: StoredSnapshot) -> std::io::Result<()> {
        let json = serde_json::to_vec(&snapshot).expect("snapshots serialize");
        replace_file(&inner.dir.join("snapshot.json"), &json)?;
        inner.snapshot = Some(snapshot);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let mut inner = self.inner.lock().expect("state machine lock");
        inner.snapshots_built += 1;
        let snapshot_id = match inner.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, inner.snapshots_built),
            None => format!("none-{}", inner.snapshots_built),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
                snapshot_id,
            },
            state: inner.state.clone(),
        };
        let data = serde_json::to_vec(&stored.state).expect("state serializes");
        let meta = stored.meta.clone();
        Self::store_snapshot(&mut inner, stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), io_error(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        let inner = self.inner.lock().expect("state machine lock");
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<()>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().expect("state machine lock");
        let mut out = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(event) => inner.state.apply(&event),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let state: ControllerState = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), io_error(e)))?;
        let mut inner = self.inner.lock().expect("state machine lock");
        inner.state = state.clone();
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        Self::store_snapshot(
            &mut inner,
            StoredSnapshot {
                meta: meta.clone(),
                state,
            },
        )
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), io_error(e)).into())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.inner.lock().expect("state machine lock");
        Ok(inner.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(
                serde_json::to_vec(&s.state).expect("state serializes"),
            )),
        }))
    }
}

/// Creates connections to the other controller nodes.
#[derive(Clone, Default)]
pub struct NetworkFactory;

impl openraft::RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

/// RPC to one peer over a remoting connection (reconnected when it drops).
pub struct PeerClient {
    target: u64,
    addr: String,
    conn: Option<Connection>,
}

type RpcResult<T, E> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl PeerClient {
    async fn call<Req: Serialize, Resp: serde::de::DeserializeOwned, E>(
        &mut self,
        code: i32,
        req: &Req,
        timeout: Duration,
    ) -> RpcResult<Resp, E>
    where
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let unreachable = |e: &dyn std::fmt::Display| {
            RPCError::Network(NetworkError::new(&std::io::Error::other(e.to_string())))
        };
        let conn = match self.conn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => {
                let c = ferromq_remoting::connect(&self.addr, Arc::new(NoInbound), timeout)
                    .await
                    .map_err(|e| unreachable(&e))?;
                self.conn = Some(c.clone());
                c
            }
        };
        let body = serde_json::to_vec(req).expect("raft RPCs serialize");
        let resp = match conn
            .invoke(RemotingCommand::request(code).with_body(body), timeout)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(unreachable(&e));
            }
        };
        if resp.code != 0 {
            return Err(unreachable(&format!(
                "peer {} refused raft RPC {code}: {}",
                self.addr,
                resp.remark.unwrap_or_default()
            )));
        }
        let result: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&resp.body).map_err(|e| unreachable(&e))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl openraft::RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        self.call(rpc_code::APPEND_ENTRIES, &rpc, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(rpc_code::INSTALL_SNAPSHOT, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(rpc_code::VOTE, &rpc, option.hard_ttl()).await
    }
}

/// Answers a peer's raft RPC (the server side of [`PeerClient`]).
pub async fn serve_rpc(raft: &Raft, req: &RemotingCommand) -> Result<Vec<u8>, String> {
    fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
        serde_json::from_slice(body).map_err(|e| format!("malformed raft RPC body: {e}"))
    }
    let json = match req.code {
        rpc_code::APPEND_ENTRIES => {
            serde_json::to_vec(&raft.append_entries(decode(&req.body)?).await)
        }
        rpc_code::VOTE => serde_json::to_vec(&raft.vote(decode(&req.body)?).await),
        rpc_code::INSTALL_SNAPSHOT => {
            serde_json::to_vec(&raft.install_snapshot(decode(&req.body)?).await)
        }
        other => return Err(format!("not a raft RPC: {other}")),
    };
    json.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    /// Each store gets a fresh directory, kept alive with the stores.
    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> StorageResult<(tempfile::TempDir, LogStore, StateMachine)> {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = LogStore::open(dir.path()).expect("log store");
            let sm = StateMachine::open(dir.path()).expect("state machine");
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for log and state-machine stores.
    #[test]
    fn the_stores_pass_openrafts_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }

    #[tokio::test]
    async fn the_log_and_vote_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let leader = openraft::CommittedLeaderId::new(1, 0);
        let entry = |i: u64| Entry::<TypeConfig> {
            log_id: LogId::new(leader, i),
            payload: EntryPayload::Normal(Event::ElectMaster {
                broker_name: "b".into(),
                master: Some(i as i64),
            }),
        };
        {
            let mut log = LogStore::open(dir.path()).unwrap();
            log.save_vote(&Vote::new(3, 1)).await.unwrap();
            let mut bytes = Vec::new();
            for i in 1..=3 {
                LogInner::encode(&entry(i), &mut bytes);
            }
            let mut inner = log.inner.lock().unwrap();
            inner.file.write_all(&bytes).unwrap();
            // Half of a fourth record: a crash in the middle of an append.
            let mut torn = Vec::new();
            LogInner::encode(&entry(4), &mut torn);
            inner.file.write_all(&torn[..torn.len() / 2]).unwrap();
        }
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
        let entries = log.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            log.get_log_state().await.unwrap().last_log_id,
            Some(LogId::new(leader, 3))
        );
    }
}
