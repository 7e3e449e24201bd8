//! The controller: it decides which broker of each group is the master, keeps each group's
//! in-sync set and epochs, and elects a new master when the old one stops heartbeating, as
//! Apache RocketMQ 5's controller does (the same remoting API, codes 904 and 1001-1013, so
//! Apache's brokers and `mqadmin` work with it). Its state is replicated over one or three
//! nodes with openraft: [`state`] holds the rules and the replicated data, [`raft`] the log,
//! the snapshots and the node-to-node transport, [`service`] the requests.

pub mod config;
pub mod raft;
pub mod service;
pub mod state;

pub use config::ControllerConfig;
pub use service::{Controller, ControllerError};
