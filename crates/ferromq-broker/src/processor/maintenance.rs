//! Store maintenance operators ask for (Apache's mqadmin `cleanExpiredCQ`,
//! `deleteExpiredCommitLog`, `cleanUnusedTopic`): CLEAN_EXPIRED_CONSUMEQUEUE (306),
//! DELETE_EXPIRED_COMMITLOG (329) and CLEAN_UNUSED_TOPIC (316). Each runs now, off the
//! request path's thread, and answers SUCCESS or the store's error.

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use tracing::info;

use crate::Broker;

impl Broker {
    /// CLEAN_EXPIRED_CONSUMEQUEUE: drops queue entries that point below the commit log's
    /// start. Apache destroys whole queues whose every entry expired, which restarts their
    /// offsets at 0 under consumers' committed offsets; FerroMQ keeps the queue and its
    /// offsets and drops the entries.
    pub(crate) async fn clean_expired_queues(&self, req: &RemotingCommand) -> RemotingCommand {
        let store = self.store.store().clone();
        answer(
            req,
            tokio::task::spawn_blocking(move || store.drop_expired_queue_entries()).await,
        )
    }

    /// DELETE_EXPIRED_COMMITLOG: deletes the commit-log segments older than
    /// `fileReservedTime` now, whatever `deleteWhen` says (Apache schedules 20 such passes
    /// over the next few minutes; one pass does the same work).
    pub(crate) async fn delete_expired_log(&self, req: &RemotingCommand) -> RemotingCommand {
        let cutoff = std::time::SystemTime::now()
            - std::time::Duration::from_secs(self.config().file_reserved_hours * 3600);
        let store = self.store.store().clone();
        let outcome = tokio::task::spawn_blocking(move || store.delete_expired(cutoff)).await;
        if let Ok(Ok(min)) = &outcome {
            info!(
                min_offset = min,
                "expired commit-log segments deleted on request"
            );
        }
        answer(req, outcome.map(|r| r.map(|_| ())))
    }

    /// CLEAN_UNUSED_TOPIC: deletes the queues of topics the broker no longer has (system
    /// topics are kept).
    pub(crate) async fn clean_unused_topics(&self, req: &RemotingCommand) -> RemotingCommand {
        let configured: std::collections::BTreeSet<String> = self
            .topics
            .all()
            .into_iter()
            .map(|t| t.topic_name)
            .collect();
        let store = self.store.store().clone();
        let outcome = tokio::task::spawn_blocking(move || {
            for topic in store.stored_topics() {
                if !configured.contains(&topic) && !crate::metrics::is_system_topic(&topic) {
                    info!(topic = %topic, "deleting the queues of a topic the broker no longer has");
                    store.delete_topic(&topic)?;
                }
            }
            Ok(())
        })
        .await;
        answer(req, outcome)
    }
}

fn answer(
    req: &RemotingCommand,
    outcome: Result<Result<(), ferromq_store::StoreError>, tokio::task::JoinError>,
) -> RemotingCommand {
    match outcome {
        Ok(Ok(())) => RemotingCommand::response_to(req, response::SUCCESS),
        Ok(Err(e)) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
    }
}
