//! The checkpoint: the commit-log offset below which consume queues and the index are
//! known to be on disk, written atomically (temp file + rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{io_err, StoreError};

const MAGIC: u32 = 0x4645_4350; // "FECP"
const BYTES: usize = 4 + 8 + 8 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    /// Everything before this commit-log offset is flushed and dispatched durably.
    pub consistent_offset: u64,
    pub timestamp_ms: i64,
}

pub(crate) fn path(root: &Path) -> PathBuf {
    root.join("checkpoint")
}

/// Reads the checkpoint; a missing or damaged file reads as "nothing known".
pub(crate) fn load(root: &Path) -> Checkpoint {
    let Ok(bytes) = std::fs::read(path(root)) else {
        return Checkpoint::default();
    };
    if bytes.len() != BYTES {
        return Checkpoint::default();
    }
    let crc = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..20]) != crc
        || u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) != MAGIC
    {
        return Checkpoint::default();
    }
    Checkpoint {
        consistent_offset: u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes")),
        timestamp_ms: i64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes")),
    }
}

pub(crate) fn store(root: &Path, cp: Checkpoint) -> Result<(), StoreError> {
    let mut bytes = Vec::with_capacity(BYTES);
    bytes.extend_from_slice(&MAGIC.to_be_bytes());
    bytes.extend_from_slice(&cp.consistent_offset.to_be_bytes());
    bytes.extend_from_slice(&cp.timestamp_ms.to_be_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let tmp = root.join("checkpoint.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).map_err(io_err(&tmp))?;
    f.sync_data().map_err(io_err(&tmp))?;
    let dest = path(root);
    std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    Ok(())
}
