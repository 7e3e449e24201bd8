//! The RocketMQ "remoting" wire protocol, free of I/O and async.
//!
//! This crate owns everything that is bytes-in, values-out: frames and both header
//! serializations, request/response code tables, typed headers, JSON bodies, the stored
//! message record that pulls return verbatim, message properties and message ids.
//!
//! ```text
//! frame:  | total_len: i32 | ser_type: u8 | hdr_len: u24 | header | body |
//!           total_len counts everything after itself (4 + hdr_len + body_len)
//! ```
//! All integers are big-endian. Decoders never panic on input and bound every length
//! before allocating.

pub mod acl;
pub mod body;
pub mod code;
pub mod command;
pub mod error;
pub mod extra_info;
pub mod header;
pub mod message;
pub mod rebalance;

pub use command::{LanguageCode, RemotingCommand, SerializeType};
pub use error::{DecodeError, HeaderError};

/// Version ordinal we put in every command (RocketMQ `MQVersion` V5_3_3). Clients read it
/// from heartbeat replies and gate features such as SQL92 on it, so it must be modern.
pub const CURRENT_VERSION: i32 = 479;
