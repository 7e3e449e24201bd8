//! Client errors. A broker's refusal keeps its response code and remark.

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker or name server answered with an error code.
    #[error("{operation} refused by {addr}: code {code}: {remark}")]
    Broker {
        operation: &'static str,
        addr: String,
        code: i32,
        remark: String,
    },
    /// No route is known for the topic (it does not exist and cannot be auto-created).
    #[error("no route info of topic {topic}")]
    NoRoute { topic: String },
    /// The transport failed (connect, timeout, closed connection).
    #[error(transparent)]
    Remoting(#[from] ferromq_remoting::RemotingError),
    /// Every attempt failed; the last error is kept.
    #[error("send to {topic} failed after {attempts} attempts: {last}")]
    SendFailed {
        topic: String,
        attempts: u32,
        last: Box<ClientError>,
    },
    /// A reply could not be decoded.
    #[error("malformed reply to {operation}: {reason}")]
    Malformed {
        operation: &'static str,
        reason: String,
    },
    /// The message or option is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A request was sent, but no reply came in time (request-reply).
    #[error("request to {topic} sent, but no reply came within {timeout_ms} ms")]
    RequestTimeout { topic: String, timeout_ms: u64 },
    /// The client was shut down or not started.
    #[error("the client is not running")]
    NotRunning,
}

impl ClientError {
    /// The broker's response code, when the broker refused.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            ClientError::SendFailed { last, .. } => last.response_code(),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
