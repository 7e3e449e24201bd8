//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): orderly consumers lock the queues they
//! consume so that during a rebalance no two members of a group process one queue at
//! once (`RebalanceLockManager`). A lock is held by a client id and expires 60 s after
//! its last renewal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferromq_protocol::body::{LockBatchRequestBody, LockBatchResponseBody, MessageQueue};
use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;

use crate::Broker;

/// A lock not renewed for this long is free (`rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LockManager {
    /// (group, queue) → (client id, last renewal)
    locks: Mutex<HashMap<(String, MessageQueue), (String, Instant)>>,
}

impl LockManager {
    /// Grants or renews each queue that is free, expired or already held by `client`.
    /// Returns the queues now held by `client`.
    pub fn try_lock(
        &self,
        group: &str,
        client: &str,
        queues: &[MessageQueue],
    ) -> Vec<MessageQueue> {
        let now = Instant::now();
        let mut locks = self.locks.lock().expect("lock table lock");
        let mut granted = Vec::new();
        for mq in queues {
            let key = (group.to_string(), mq.clone());
            let free = match locks.get(&key) {
                None => true,
                Some((owner, renewed)) => {
                    owner == client || now.duration_since(*renewed) > LOCK_MAX_LIVE
                }
            };
            if free {
                locks.insert(key, (client.to_string(), now));
                granted.push(mq.clone());
            }
        }
        granted
    }

    /// Releases the queues `client` holds among `queues`.
    pub fn unlock(&self, group: &str, client: &str, queues: &[MessageQueue]) {
        let mut locks = self.locks.lock().expect("lock table lock");
        for mq in queues {
            let key = (group.to_string(), mq.clone());
            if locks.get(&key).is_some_and(|(owner, _)| owner == client) {
                locks.remove(&key);
            }
        }
    }

    /// Whether a live lock on the queue is held by someone.
    #[cfg(test)]
    pub fn is_locked(&self, group: &str, mq: &MessageQueue) -> bool {
        let locks = self.locks.lock().expect("lock table lock");
        locks
            .get(&(group.to_string(), mq.clone()))
            .is_some_and(|(_, renewed)| renewed.elapsed() <= LOCK_MAX_LIVE)
    }
}

impl Broker {
    pub(crate) fn lock_batch(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: LockBatchRequestBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("invalid lock request body: {e}"),
                )
            }
        };
        let granted = self
            .locks
            .try_lock(&body.consumer_group, &body.client_id, &body.mq_set);
        let resp = LockBatchResponseBody {
            lock_ok_mq_set: granted,
        };
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(serde_json::to_vec(&resp).expect("lock response serializes"))
    }

    pub(crate) fn unlock_batch(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: LockBatchRequestBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("invalid unlock request body: {e}"),
                )
            }
        };
        self.locks
            .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
        RemotingCommand::response_to(req, response::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(q: i32) -> MessageQueue {
        MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: q,
        }
    }

    #[test]
    fn a_queue_is_locked_by_one_client_at_a_time() {
        let m = LockManager::default();
        assert_eq!(m.try_lock("g", "c1", &[mq(0), mq(1)]), vec![mq(0), mq(1)]);
        assert_eq!(m.try_lock("g", "c2", &[mq(1), mq(2)]), vec![mq(2)]);
        assert_eq!(
            m.try_lock("g", "c1", &[mq(1)]),
            vec![mq(1)],
            "renewal by the owner"
        );
        assert_eq!(
            m.try_lock("other-group", "c2", &[mq(1)]),
            vec![mq(1)],
            "groups are independent"
        );
        m.unlock("g", "c2", &[mq(1)]);
        assert!(m.is_locked("g", &mq(1)), "only the owner unlocks");
        m.unlock("g", "c1", &[mq(1)]);
        assert_eq!(m.try_lock("g", "c2", &[mq(1)]), vec![mq(1)]);
    }
}
