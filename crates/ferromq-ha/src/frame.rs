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
    #[error("frame in unknown state {0}")]
    State(i32),
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

/// Apache's `HAConnectionState` ordinals, the first word of every controller-mode frame.
pub(crate) mod state {
    pub const HANDSHAKE: i32 = 1;
    pub const TRANSFER: i32 = 2;
}

/// Bytes of a controller-mode slave handshake and report.
pub(crate) const AS_HANDSHAKE_BYTES: usize = 16;
pub(crate) const AS_REPORT_BYTES: usize = 12;
/// Bytes of a controller-mode master handshake header and transfer header.
pub(crate) const AS_HANDSHAKE_HEADER_BYTES: usize = 20;
pub(crate) const AS_TRANSFER_HEADER_BYTES: usize = 36;
/// Epoch entries a handshake may carry (Apache's buffer holds 1000).
pub(crate) const MAX_HANDSHAKE_EPOCHS: usize = 1000;

/// What a controller-mode slave says first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handshake {
    pub sync_from_last_file: bool,
    pub async_learner: bool,
    pub broker_id: i64,
}

pub(crate) fn encode_as_handshake(h: &Handshake) -> [u8; AS_HANDSHAKE_BYTES] {
    let mut b = [0u8; AS_HANDSHAKE_BYTES];
    b[..4].copy_from_slice(&state::HANDSHAKE.to_be_bytes());
    b[4..6].copy_from_slice(&i16::from(h.sync_from_last_file).to_be_bytes());
    b[6..8].copy_from_slice(&i16::from(h.async_learner).to_be_bytes());
    b[8..].copy_from_slice(&h.broker_id.to_be_bytes());
    b
}

pub(crate) fn encode_as_report(offset: u64) -> [u8; AS_REPORT_BYTES] {
    let mut b = [0u8; AS_REPORT_BYTES];
    b[..4].copy_from_slice(&state::TRANSFER.to_be_bytes());
    b[4..].copy_from_slice(&(offset as i64).to_be_bytes());
    b
}

/// One frame from a controller-mode slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlaveFrame {
    Handshake(Handshake),
    Report(u64),
}

/// Parses the whole slave frames at the front of `buf`; returns them and the bytes used.
pub(crate) fn parse_slave_frames(buf: &[u8]) -> Result<(Vec<SlaveFrame>, usize), FrameError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= 4 {
        let st = i32::from_be_bytes(buf[pos..pos + 4].try_into().expect("4"));
        match st {
            state::HANDSHAKE => {
                if buf.len() - pos < AS_HANDSHAKE_BYTES {
                    break;
                }
                let f = &buf[pos..pos + AS_HANDSHAKE_BYTES];
                out.push(SlaveFrame::Handshake(Handshake {
                    sync_from_last_file: i16::from_be_bytes(f[4..6].try_into().expect("2")) == 1,
                    async_learner: i16::from_be_bytes(f[6..8].try_into().expect("2")) == 1,
                    broker_id: i64::from_be_bytes(f[8..16].try_into().expect("8")),
                }));
                pos += AS_HANDSHAKE_BYTES;
            }
            state::TRANSFER => {
                if buf.len() - pos < AS_REPORT_BYTES {
                    break;
                }
                let v = i64::from_be_bytes(buf[pos + 4..pos + 12].try_into().expect("8"));
                if v < 0 {
                    return Err(FrameError::Report(v));
                }
                out.push(SlaveFrame::Report(v as u64));
                pos += AS_REPORT_BYTES;
            }
            other => return Err(FrameError::State(other)),
        }
    }
    Ok((out, pos))
}

/// The master's answer to a handshake: its log end, last epoch and epoch list.
pub(crate) fn encode_as_handshake_reply(
    dst: &mut BytesMut,
    max_offset: u64,
    epochs: &[(i32, u64)],
) {
    let epochs = &epochs[epochs.len().saturating_sub(MAX_HANDSHAKE_EPOCHS)..];
    dst.put_i32(state::HANDSHAKE);
    dst.put_i32((epochs.len() * 12) as i32);
    dst.put_i64(max_offset as i64);
    dst.put_i32(epochs.last().map_or(0, |e| e.0));
    for (epoch, start) in epochs {
        dst.put_i32(*epoch);
        dst.put_i64(*start as i64);
    }
}

/// A controller-mode transfer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferHeader {
    pub size: usize,
    pub offset: u64,
    pub epoch: i32,
    pub epoch_start: u64,
    pub confirm_offset: u64,
}

pub(crate) fn encode_as_transfer(dst: &mut BytesMut, h: &TransferHeader) {
    dst.put_i32(state::TRANSFER);
    dst.put_i32(h.size as i32);
    dst.put_i64(h.offset as i64);
    dst.put_i32(h.epoch);
    dst.put_i64(h.epoch_start as i64);
    dst.put_i64(h.confirm_offset as i64);
}

/// Reads the master's handshake reply: (max offset, epochs).
pub(crate) async fn read_as_handshake_reply(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<(u64, Vec<(i32, u64)>), FrameError> {
    let mut head = [0u8; AS_HANDSHAKE_HEADER_BYTES];
    r.read_exact(&mut head).await?;
    let st = i32::from_be_bytes(head[..4].try_into().expect("4"));
    if st != state::HANDSHAKE {
        return Err(FrameError::State(st));
    }
    let size = i32::from_be_bytes(head[4..8].try_into().expect("4"));
    let max = i64::from_be_bytes(head[8..16].try_into().expect("8"));
    if size < 0 || size % 12 != 0 || size as usize > 12 * MAX_HANDSHAKE_EPOCHS {
        return Err(FrameError::BodySize(size));
    }
    if max < 0 {
        return Err(FrameError::Offset(max));
    }
    let mut body = vec![0u8; size as usize];
    r.read_exact(&mut body).await?;
    let epochs = body
        .chunks_exact(12)
        .map(|c| {
            (
                i32::from_be_bytes(c[..4].try_into().expect("4")),
                i64::from_be_bytes(c[4..].try_into().expect("8")).max(0) as u64,
            )
        })
        .collect();
    Ok((max as u64, epochs))
}

/// The offset of a heartbeat from a master whose log is empty (Apache sends -1).
pub(crate) const EMPTY_MASTER: u64 = u64::MAX;

/// Reads one controller-mode transfer header.
pub(crate) async fn read_as_transfer(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<TransferHeader, FrameError> {
    let mut head = [0u8; AS_TRANSFER_HEADER_BYTES];
    r.read_exact(&mut head).await?;
    let i32_at = |p: usize| i32::from_be_bytes(head[p..p + 4].try_into().expect("4"));
    let i64_at = |p: usize| i64::from_be_bytes(head[p..p + 8].try_into().expect("8"));
    if i32_at(0) != state::TRANSFER {
        return Err(FrameError::State(i32_at(0)));
    }
    let size = i32_at(4);
    if size < 0 || size as usize > MAX_BODY_BYTES {
        return Err(FrameError::BodySize(size));
    }
    let (offset, epoch_start, confirm) = (i64_at(8), i64_at(20), i64_at(28));
    // An Apache master with an empty log sends heartbeats for offset -1 (its min offset).
    if offset == -1 && size == 0 {
        return Ok(TransferHeader {
            size: 0,
            offset: EMPTY_MASTER,
            epoch: i32_at(16),
            epoch_start: epoch_start.max(0) as u64,
            confirm_offset: confirm.max(0) as u64,
        });
    }
    if offset < 0 || epoch_start < 0 {
        return Err(FrameError::Offset(offset.min(epoch_start)));
    }
    Ok(TransferHeader {
        size: size as usize,
        offset: offset as u64,
        epoch: i32_at(16),
        epoch_start: epoch_start as u64,
        confirm_offset: confirm.max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(offset: i64, size: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&state::TRANSFER.to_be_bytes());
        b.extend_from_slice(&size.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b
    }

    #[tokio::test]
    async fn an_empty_apache_masters_heartbeat_is_read_and_other_negative_offsets_refused() {
        let h = read_as_transfer(&mut &transfer(-1, 0)[..]).await.unwrap();
        assert_eq!((h.offset, h.size), (EMPTY_MASTER, 0));
        assert!(read_as_transfer(&mut &transfer(-1, 10)[..]).await.is_err());
        assert!(read_as_transfer(&mut &transfer(-7, 0)[..]).await.is_err());
        let h = read_as_transfer(&mut &transfer(4096, 0)[..]).await.unwrap();
        assert_eq!(h.offset, 4096);
    }
}
