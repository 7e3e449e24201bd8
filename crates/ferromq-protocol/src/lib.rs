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
pub mod auth;
pub mod body;
pub mod code;
pub mod command;
pub mod error;
pub mod extra_info;
pub mod header;
pub mod message;
pub mod rebalance;
pub mod recall;

pub use command::{LanguageCode, RemotingCommand, SerializeType};
pub use error::{DecodeError, HeaderError};

/// The name of a client's version ordinal as Apache's `MQVersion.getVersionDesc` spells it
/// (`V4_9_4`, `V5_3_3_SNAPSHOT`), for 4.0.0 and later; `HIGHER_VERSION` past the last
/// Apache knows (5.9.9). Each release from 4.0.0 on takes two ordinals, its snapshot and
/// itself, starting at 213.
pub fn version_name(ordinal: i32) -> Option<String> {
    const FIRST_V4: i32 = 213;
    const LAST_KNOWN: i32 = FIRST_V4 + 2 * 200 - 1;
    if ordinal > LAST_KNOWN {
        return Some("HIGHER_VERSION".into());
    }
    let n = ordinal.checked_sub(FIRST_V4).filter(|n| *n >= 0)?;
    let (major, rest) = (4 + n / 200, n % 200);
    let (minor, patch) = (rest / 20, (rest % 20) / 2);
    let snapshot = if rest % 2 == 0 { "_SNAPSHOT" } else { "" };
    Some(format!("V{major}_{minor}_{patch}{snapshot}"))
}

/// Version ordinal we put in every command (RocketMQ `MQVersion` V5_3_3). Clients read it
/// from heartbeat replies and gate features such as SQL92 on it, so it must be modern.
pub const CURRENT_VERSION: i32 = 479;

#[cfg(test)]
mod tests {
    #[test]
    fn version_names_follow_apaches_ordinals() {
        // ordinals read off Apache's MQVersion.Version
        assert_eq!(super::version_name(213).as_deref(), Some("V4_0_0_SNAPSHOT"));
        assert_eq!(super::version_name(402).as_deref(), Some("V4_9_4"));
        assert_eq!(super::version_name(480).as_deref(), Some("V5_3_3"));
        assert_eq!(super::version_name(612).as_deref(), Some("V5_9_9"));
        assert_eq!(super::version_name(613).as_deref(), Some("HIGHER_VERSION"));
        assert_eq!(super::version_name(100), None);
    }
}
