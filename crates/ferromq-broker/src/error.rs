//! [`BrokerError`]: why an operation was refused, whichever front asked. Each variant
//! carries what its message needs; [`BrokerError::remoting_code`] picks Apache's remoting
//! response code, and the gRPC front maps the same variants to its status codes.

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;

use crate::store_service::PutError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("topic[{0}] not exist, apply first please!")]
    TopicNotFound(String),
    #[error("subscription group [{0}] does not exist")]
    GroupNotFound(String),
    #[error("{0}")]
    NoPermission(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    MessageIllegal(String),
    /// A queue id the topic does not have (Apache answers SYSTEM_ERROR).
    #[error("{0}")]
    QueueIllegal(String),
    #[error("{0}")]
    FilterInvalid(String),
    /// A receipt handle that no longer names a delivery: acknowledged already, renewed, or
    /// handed out again after its invisible time.
    #[error("the receipt handle is stale: {0}")]
    StaleHandle(String),
    #[error("the broker is not the master of its group; it serves no POP consumers")]
    NotMaster,
    #[error("{0}")]
    Unavailable(String),
    /// Asked of a slave what only a master does (Apache's SLAVE_NOT_AVAILABLE).
    #[error("{0}")]
    SlaveNotAvailable(String),
    /// Apache's ILLEGAL_OPERATION (a recall that cannot be done).
    #[error("{0}")]
    IllegalOperation(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Put(#[from] PutError),
}

impl BrokerError {
    /// Apache's remoting response code for this refusal.
    pub fn remoting_code(&self) -> i32 {
        match self {
            BrokerError::TopicNotFound(_) => response::TOPIC_NOT_EXIST,
            BrokerError::GroupNotFound(_) => response::SUBSCRIPTION_GROUP_NOT_EXIST,
            BrokerError::NoPermission(_) => response::NO_PERMISSION,
            BrokerError::InvalidParameter(_) => response::INVALID_PARAMETER,
            BrokerError::MessageIllegal(_) => response::MESSAGE_ILLEGAL,
            BrokerError::FilterInvalid(_) => response::SUBSCRIPTION_PARSE_FAILED,
            // Apache answers an ack it cannot match with NO_MESSAGE (as "nothing to ack").
            BrokerError::StaleHandle(_) => response::NO_MESSAGE,
            BrokerError::IllegalOperation(_) => response::ILLEGAL_OPERATION,
            BrokerError::NotMaster | BrokerError::Unavailable(_) => response::SERVICE_NOT_AVAILABLE,
            BrokerError::SlaveNotAvailable(_) => response::SLAVE_NOT_AVAILABLE,
            BrokerError::Put(PutError::Illegal(_)) => response::MESSAGE_ILLEGAL,
            BrokerError::Put(
                PutError::DiskFull(_)
                | PutError::ShuttingDown
                | PutError::Slave
                | PutError::LeaseExpired,
            ) => response::SERVICE_NOT_AVAILABLE,
            BrokerError::QueueIllegal(_) | BrokerError::Internal(_) | BrokerError::Put(_) => {
                response::SYSTEM_ERROR
            }
        }
    }

    /// The remoting error reply to `req`.
    pub fn to_response(&self, req: &RemotingCommand) -> RemotingCommand {
        RemotingCommand::error_response(req, self.remoting_code(), self.to_string())
    }
}
