//! Decode errors. Each carries the numbers that made the input invalid.

/// A frame or header that cannot be decoded. The connection that sent it is closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame length {len} is below the minimum of 4")]
    FrameTooShort { len: i64 },
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    FrameTooLarge { len: i64, max: usize },
    #[error("header length {header_len} does not fit in a frame of {frame_len} bytes")]
    HeaderLength { header_len: usize, frame_len: usize },
    #[error("unknown header serialization type {0}")]
    SerializeType(u8),
    #[error("invalid JSON header: {0}")]
    Json(String),
    #[error("binary header truncated: needed {needed} bytes at offset {offset}, have {have}")]
    Truncated {
        offset: usize,
        needed: usize,
        have: usize,
    },
    #[error("binary header field {field} is not valid UTF-8")]
    Utf8 { field: &'static str },
    #[error("binary header has a negative length {len} for {field}")]
    NegativeLength { field: &'static str, len: i32 },
    #[error("message record is malformed: {0}")]
    Message(&'static str),
}

/// A request header field that is missing or does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("the header field '{0}' is required")]
    Missing(&'static str),
    #[error("the header field '{field}' has the invalid value '{value}'")]
    Invalid { field: &'static str, value: String },
}
