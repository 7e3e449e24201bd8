//! CLONE_GROUP_OFFSET (314): copies one group's committed offsets onto another, for a topic
//! or for every topic the source group has offsets on (Apache's admin API
//! `cloneGroupOffset(src, dest, topic, offline)`).

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use tracing::{info, warn};

use super::{header, not_blank};
use crate::Broker;
use ferromq_protocol::header::CloneGroupOffsetRequestHeader;

impl Broker {
    pub(crate) fn clone_group_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<CloneGroupOffsetRequestHeader>(req).and_then(|h| {
            not_blank(
                req,
                &[("srcGroup", &h.src_group), ("destGroup", &h.dest_group)],
            )
            .map(|()| h)
        }) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let (src, dest) = (h.src_group.as_str(), h.dest_group.as_str());
        let offline = h.offline == Some(true);
        // Apache clones only the header's topic even when it loops over the source's topics,
        // so without a topic it copies nothing; FerroMQ copies every topic it names.
        let topics = match h.topic.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(t) => vec![t.to_string()],
            None => self.offsets.topics_of_group(src),
        };
        let subscribed = self.clients.subscriptions(src);
        for topic in topics {
            if self.topics.get(&topic).is_none() {
                warn!(topic = %topic, "cloneGroupOffset: no such topic; skipped");
                continue;
            }
            // An online source group is cloned only on the topics it still subscribes.
            if !offline && !subscribed.is_empty() && !subscribed.iter().any(|s| s.topic == topic) {
                warn!(group = %src, topic = %topic, "cloneGroupOffset: the group no longer subscribes the topic; skipped");
                continue;
            }
            let offsets = self.offsets.group_offsets(src, &topic);
            for (queue_id, offset) in &offsets {
                self.offsets.commit(dest, &topic, *queue_id, *offset);
            }
            info!(from = %src, to = %dest, topic = %topic, queues = offsets.len(), "offsets cloned");
        }
        if let Err(e) = self.offsets.persist() {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("saving the cloned offsets failed: {e}"),
            );
        }
        RemotingCommand::response_to(req, response::SUCCESS)
    }
}
