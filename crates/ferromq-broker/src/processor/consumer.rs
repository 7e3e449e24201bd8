//! Client management and offsets: HEART_BEAT, UNREGISTER_CLIENT,
//! GET_CONSUMER_LIST_BY_GROUP, QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET,
//! SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME.

use std::time::Instant;

use ferromq_protocol::body::{perm, ConsumerIdList, HeartbeatData};
use ferromq_protocol::code::response;
use ferromq_protocol::header::{
    ConsumerGroupRequestHeader, QueryConsumerOffsetRequestHeader, QueueRequestHeader,
    SearchOffsetRequestHeader, UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use tracing::warn;

use super::header;
use crate::client::ClientChannel;
use crate::topic::RETRY_GROUP_TOPIC_PREFIX;
use crate::Broker;

impl Broker {
    pub(crate) fn heartbeat(&self, conn: &Connection, req: &RemotingCommand) -> RemotingCommand {
        let data: HeartbeatData = match serde_json::from_slice(&req.body) {
            Ok(d) => d,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("invalid heartbeat body: {e}"),
                )
            }
        };
        let channel = ClientChannel {
            conn: conn.clone(),
            client_id: data.client_id.clone(),
            language: req.language,
            version: req.version,
            last_heartbeat: Instant::now(),
        };
        for p in &data.producer_data_set {
            self.clients
                .register_producer(&p.group_name, channel.clone());
        }
        for c in &data.consumer_data_set {
            // Apache creates the retry topic on first sight of the group, so a consumer's
            // automatic %RETRY% subscription has a route.
            let retry_topic = format!("{RETRY_GROUP_TOPIC_PREFIX}{}", c.group_name);
            if retry_topic.len() <= crate::topic::MAX_TOPIC_LEN + 8 {
                match self
                    .topics
                    .ensure_system_topic(&retry_topic, 1, perm::READ | perm::WRITE)
                {
                    Ok((_, true)) => self.announce_topics([retry_topic]),
                    Ok(_) => {}
                    Err(e) => {
                        warn!(topic = %retry_topic, error = %e, "creating the retry topic failed")
                    }
                }
            }
            if let Err(e) = self.groups.ensure(&c.group_name) {
                warn!(group = %c.group_name, error = %e, "persisting the group config failed");
            }
            if self.clients.register_consumer(c, channel.clone()) {
                self.notify_consumer_ids_changed(&c.group_name);
            }
        }
        RemotingCommand::response_to(req, response::SUCCESS)
    }

    pub(crate) fn unregister_client(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let h = match header::<UnregisterClientRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if self.clients.unregister(
            conn.id(),
            h.producer_group.as_deref(),
            h.consumer_group.as_deref(),
        ) {
            if let Some(g) = &h.consumer_group {
                self.notify_consumer_ids_changed(g);
            }
        }
        RemotingCommand::response_to(req, response::SUCCESS)
    }

    pub(crate) fn consumer_list(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ConsumerGroupRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let ids = self.clients.consumer_ids(&h.consumer_group);
        if ids.is_empty() {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("no consumer for this group, {}", h.consumer_group),
            );
        }
        let body = serde_json::to_vec(&ConsumerIdList {
            consumer_id_list: ids,
        })
        .expect("id list serializes");
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body)
    }

    pub(crate) fn query_consumer_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<QueryConsumerOffsetRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if let Some(offset) = self.offsets.query(&h.consumer_group, &h.topic, h.queue_id) {
            return RemotingCommand::response_to(req, response::SUCCESS)
                .with_field("offset", offset);
        }
        // A new group on a queue that still holds its first message starts from 0, even
        // with CONSUME_FROM_LAST_OFFSET: the seed runs its producer before its consumer.
        let store = self.store.store();
        if store.min_offset(&h.topic, h.queue_id) == 0 || h.set_zero_if_not_found == Some(true) {
            return RemotingCommand::response_to(req, response::SUCCESS).with_field("offset", 0);
        }
        RemotingCommand::error_response(
            req,
            response::QUERY_NOT_FOUND,
            "Not found, maybe this group consumer boot first",
        )
    }

    pub(crate) fn update_consumer_offset(
        &self,
        conn: &ferromq_remoting::Connection,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let h = match header::<UpdateConsumerOffsetRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        // A FerroMQ slave handing back what consumers committed while this master was away
        // asks not to move an offset back: a consumer may have committed here since.
        let only_if_ahead = req.field(crate::slave::ONLY_IF_AHEAD) == Some("true");
        let current = || self.offsets.query(&h.consumer_group, &h.topic, h.queue_id);
        if only_if_ahead {
            if current().is_none_or(|c| c < h.commit_offset) {
                self.commit_offset(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
            }
        } else {
            self.client_commit(
                conn,
                &h.consumer_group,
                &h.topic,
                h.queue_id,
                h.commit_offset,
            );
        }
        RemotingCommand::response_to(req, response::SUCCESS)
    }

    /// A consumer's commit, remembered with who made it (`messageLife`).
    pub(crate) fn client_commit(
        &self,
        conn: &ferromq_remoting::Connection,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
    ) {
        self.commit_offset(group, topic, queue_id, offset);
        let commit = crate::life::Commit {
            offset,
            client: conn.peer(),
            at_ms: crate::now_ms(),
        };
        self.life.record_commit(group, topic, queue_id, commit);
    }

    /// Stores a consumer's commit. A client commits to a slave only when its route shows
    /// no master (the Java client does; the Go client 2.1.2 waits for the master), so a
    /// slave keeps the commit to hand to the master when it returns.
    pub(crate) fn commit_offset(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        if self.role() == crate::Role::Master {
            self.offsets.commit(group, topic, queue_id, offset);
        } else {
            self.offsets.commit_unsent(group, topic, queue_id, offset);
        }
    }

    pub(crate) fn max_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        match header::<QueueRequestHeader>(req) {
            Ok(h) => RemotingCommand::response_to(req, response::SUCCESS).with_field(
                "offset",
                self.store.store().max_offset(&h.topic, h.queue_id),
            ),
            Err(resp) => resp,
        }
    }

    pub(crate) fn min_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        match header::<QueueRequestHeader>(req) {
            Ok(h) => RemotingCommand::response_to(req, response::SUCCESS).with_field(
                "offset",
                self.store.store().min_offset(&h.topic, h.queue_id),
            ),
            Err(resp) => resp,
        }
    }

    pub(crate) fn search_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<SearchOffsetRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        match self
            .store
            .store()
            .search_offset_by_time(&h.topic, h.queue_id, h.timestamp)
        {
            Ok(offset) => {
                RemotingCommand::response_to(req, response::SUCCESS).with_field("offset", offset)
            }
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    pub(crate) fn earliest_store_time(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<QueueRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        match self.store.store().earliest_store_time(&h.topic, h.queue_id) {
            Ok(ts) => RemotingCommand::response_to(req, response::SUCCESS)
                .with_field("timestamp", ts.unwrap_or(0)),
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }
}
