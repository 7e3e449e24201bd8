//! The two frames of the classic HA protocol, and reading them with bounds.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of a slave's report.
pub(crate) const REPORT_BYTES: usize = 8;
/// Bytes of a transfer frame's header.
pub(crate) const HEADER_BYTES: usize = 12;
/// The largest body a slave accepts: Apache's slave reads into a 4 MiB buffer, so no
/// master it can follow sends more.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why a peer's bytes were refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("transfer frame announces {0} bytes (negative or over the 4 MiB limit)")]
    BodySize(i32),
    #[error("transfer frame for negative offset {0}")]
    Offset(i64),
    #[error("report of negative offset {0}")]
    Report(i64),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub(crate) fn encode_header(dst: &mut BytesMut, offset: u64, size: usize) {
    dst.put_i64(offset as i64);
    dst.put_i32(size as i32);
}

pub(crate) fn encode_report(offset: u64) -> [u8; REPORT_BYTES] {
    (offset as i64).to_be_bytes()
}

/// Reads one transfer frame header: (offset, body size).
pub(crate) async fn read_header(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<(u64, usize), FrameError> {
    let mut head = [0u8; HEADER_BYTES];
    r.read_exact(&mut head).await?;
    let offset = i64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
    let size = i32::from_be_bytes(head[8..].try_into().expect("4 bytes"));
    if offset < 0 {
        return Err(FrameError::Offset(offset));
    }
    if size < 0 || size as usize > MAX_BODY_BYTES {
        return Err(FrameError::BodySize(size));
    }
    Ok((offset as u64, size as usize))
}

/// Parses the reports in `buf` (whole 8-byte values); the last one counts, as in Apache's
/// master. Returns it and how many bytes were consumed.
pub(crate) fn last_report(buf: &[u8]) -> Result<(Option<u64>, usize), FrameError> {
    let whole = buf.len() - buf.len() % REPORT_BYTES;
    if whole == 0 {
        return Ok((None, 0));
    }
    let v = i64::from_be_bytes(buf[whole - 8..whole].try_into().expect("8 bytes"));
    if v < 0 {
        return Err(FrameError::Report(v));
    }
    Ok((Some(v as u64), whole))
}
