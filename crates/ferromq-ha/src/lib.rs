//! Replication of the commit log between the brokers of one group, wire compatible with
//! Apache RocketMQ's classic HA (`DefaultHAService`) and, in controller mode, its AutoSwitch
//! HA (frames that carry a state word, epochs and the confirm offset), so an Apache slave can
//! follow a FerroMQ master and the other way round.
//!
//! The classic protocol is raw TCP on the master's `haListenPort`, big-endian:
//! ```text
//! slave → master   | max offset i64 |                      (a report; also the ack)
//! master → slave   | offset i64 | size i32 | size bytes |  (size 0 = heartbeat)
//! ```
//! The slave reports how far its copy goes; the master sends commit-log bytes from there,
//! never across a segment boundary; the slave appends them through
//! [`MessageStore::append_log`](ferromq_store::MessageStore::append_log), which rebuilds
//! queue and index entries. This crate owns the sockets and the frames, and what the master
//! knows of its slaves (their acknowledged offsets, which a `SYNC_MASTER` send waits on);
//! the store owns the bytes, the broker decides roles and addresses.

mod frame;
mod master;
mod slave;

pub use master::{HaMaster, MasterConfig, ReplicaWait, SlaveInfo};
pub use slave::{run_slave, SlaveConfig, SlaveStatus};

/// Apache's defaults (`MessageStoreConfig`).
pub mod defaults {
    use std::time::Duration;

    /// `haTransferBatchSize`.
    pub const TRANSFER_BATCH: usize = 32 * 1024;
    /// `haSendHeartbeatInterval`.
    pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
    /// `haHousekeepingInterval`: a connection silent this long is dropped.
    pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(20);
}
