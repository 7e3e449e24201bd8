//! What the broker knows of its clients, for tools: every producer connection
//! (GET_ALL_PRODUCER_INFO, 328; mqadmin `producer -b`), a group's subscription to a topic
//! (QUERY_SUBSCRIPTION_BY_CONSUMER, 345), and whether a group may read a topic
//! (UPDATE_AND_GET_GROUP_FORBIDDEN, 353). Shapes as Apache's `ProducerTableInfo`,
//! `QuerySubscriptionResponseBody` and `GroupForbidden`.

use std::collections::BTreeMap;

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use serde_json::json;

use super::{header, not_blank};
use crate::Broker;
use ferromq_protocol::header::{
    QuerySubscriptionByConsumerRequestHeader, UpdateGroupForbiddenRequestHeader,
};

impl Broker {
    /// GET_ALL_PRODUCER_INFO: `{"data": {group: [ProducerInfo…]}}`, every group's producers.
    pub(crate) fn all_producer_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let now = crate::now_ms();
        let mut data: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for group in self.clients.producer_groups() {
            let infos = self
                .clients
                .producer_channels(&group)
                .iter()
                .map(|c| {
                    json!({
                        "clientId": c.client_id,
                        // Java's InetSocketAddress text, which Apache's tools print.
                        "remoteIP": format!("/{}", c.conn.peer()),
                        "language": c.language.name(),
                        "version": c.version,
                        "lastUpdateTimestamp": now - c.last_heartbeat.elapsed().as_millis() as i64,
                    })
                })
                .collect::<Vec<_>>();
            if !infos.is_empty() {
                data.insert(group, infos);
            }
        }
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(json!({ "data": data }).to_string())
    }

    /// QUERY_SUBSCRIPTION_BY_CONSUMER: the group's subscription to the topic, absent when
    /// the group is offline or does not subscribe it (Apache answers SUCCESS either way).
    pub(crate) fn subscription_by_consumer(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<QuerySubscriptionByConsumerRequestHeader>(req)
            .and_then(|h| not_blank(req, &[("group", &h.group)]).map(|()| h))
        {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let (group, topic) = (h.group.as_str(), h.topic.as_deref().unwrap_or_default());
        let mut body = json!({ "group": group, "topic": topic });
        if let Some(sub) = self.clients.subscription(group, topic) {
            body["subscriptionData"] = serde_json::to_value(sub).unwrap_or_default();
        }
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body.to_string())
    }
}

impl Broker {
    /// UPDATE_AND_GET_GROUP_FORBIDDEN: with `readable`, forbids or allows the group to read
    /// the topic; answers `{"group", "topic", "readable"}` as it now stands.
    pub(crate) fn group_forbidden(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<UpdateGroupForbiddenRequestHeader>(req)
            .and_then(|h| not_blank(req, &[("group", &h.group), ("topic", &h.topic)]).map(|()| h))
        {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let (group, topic) = (h.group.as_str(), h.topic.as_str());
        if let Some(readable) = h.readable.as_deref() {
            // Java's Boolean.parseBoolean: anything but "true" is false.
            let readable = readable.eq_ignore_ascii_case("true");
            if let Err(e) = self.forbidden.set_readable(group, topic, readable) {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("saving the forbidden table failed: {e}"),
                );
            }
            tracing::info!(group, topic, readable, "group read permission changed");
        }
        let body = json!({
            "group": group,
            "topic": topic,
            "readable": self.forbidden.readable(group, topic),
        });
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body.to_string())
    }
}
