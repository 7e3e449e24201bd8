//! SET_MESSAGE_REQUEST_MODE (401) and QUERY_ASSIGNMENT (400): server-side rebalancing, with
//! which Apache's 5.x Java client (`setClientRebalance(false)`) learns its queues and
//! whether to PULL or POP them (Apache's `QueryAssignmentProcessor`).

use ferromq_protocol::body::perm;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::request_mode::RequestMode;
use crate::topic::RETRY_GROUP_TOPIC_PREFIX;
use crate::Broker;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryAssignmentBody {
    topic: String,
    consumer_group: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    message_model: Option<String>,
}

/// A queue as Apache orders them: topic, broker name, queue id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Queue {
    topic: String,
    broker_name: String,
    queue_id: i32,
}

/// Apache's `AllocateMessageQueueAveragely`, as clients compute it.
fn allocate_averagely<'a>(all: &'a [Queue], cids: &[String], cid: &str) -> Vec<&'a Queue> {
    ferromq_protocol::rebalance::allocate_averagely(cid, cids, all)
}

impl Broker {
    pub(crate) fn set_message_request_mode(&self, req: &RemotingCommand) -> RemotingCommand {
        let mode: RequestMode = match serde_json::from_slice(&req.body) {
            Ok(m) => m,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("the request mode body is malformed: {e}"),
                )
            }
        };
        if mode.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            return RemotingCommand::error_response(
                req,
                response::NO_PERMISSION,
                "retry topic is not allowed to set mode",
            );
        }
        match self.request_modes.set(mode) {
            Ok(()) => RemotingCommand::response_to(req, response::SUCCESS),
            Err(why) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, why),
        }
    }

    pub(crate) fn all_message_request_modes(&self, req: &RemotingCommand) -> RemotingCommand {
        RemotingCommand::response_to(req, response::SUCCESS).with_body(self.request_modes.to_json())
    }

    pub(crate) async fn query_assignment(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: QueryAssignmentBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("the query assignment body is malformed: {e}"),
                )
            }
        };
        let mode = self
            .request_modes
            .get(&body.topic, &body.consumer_group)
            .unwrap_or_else(|| RequestMode {
                topic: body.topic.clone(),
                consumer_group: body.consumer_group.clone(),
                // Apache's defaultMessageRequestMode; retry topics are always pulled.
                mode: "PULL".into(),
                pop_share_queue_num: 0,
            });
        let mut all = self.topic_queues(&body.topic).await;
        all.sort();
        let assigned: Option<Vec<Queue>> = if body.message_model.as_deref() == Some("BROADCASTING")
        {
            Some(all.clone())
        } else {
            let cids = self.clients.consumer_ids(&body.consumer_group);
            if cids.is_empty() || all.is_empty() {
                None
            } else if mode.mode == "POP" {
                let share = mode.pop_share_queue_num;
                if share <= 0 || share as usize >= cids.len().saturating_sub(1) {
                    // Every consumer pops every broker's queues (queue id -1: all of them).
                    let mut brokers: Vec<Queue> = all
                        .iter()
                        .map(|q| Queue {
                            queue_id: -1,
                            ..q.clone()
                        })
                        .collect();
                    brokers.dedup();
                    Some(brokers)
                } else {
                    let index = cids.iter().position(|c| *c == body.client_id).unwrap_or(0);
                    let mut out: Vec<Queue> = allocate_averagely(&all, &cids, &body.client_id)
                        .into_iter()
                        .cloned()
                        .collect();
                    for i in 1..=share as usize {
                        let other = &cids[(index + i) % cids.len()];
                        out.extend(allocate_averagely(&all, &cids, other).into_iter().cloned());
                    }
                    out.sort();
                    out.dedup();
                    Some(out)
                }
            } else {
                Some(
                    allocate_averagely(&all, &cids, &body.client_id)
                        .into_iter()
                        .cloned()
                        .collect(),
                )
            }
        };
        let assignments: Value = match assigned {
            None => Value::Null,
            Some(queues) => queues
                .into_iter()
                .map(|q| {
                    json!({
                        "messageQueue": {"topic": q.topic, "brokerName": q.broker_name, "queueId": q.queue_id},
                        "mode": mode.mode,
                    })
                })
                .collect(),
        };
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_body(json!({ "messageQueueAssignments": assignments }).to_string())
    }

    /// Every readable queue of the topic in the cluster, as the name servers route it;
    /// this broker's own when no name server answers.
    async fn topic_queues(&self, topic: &str) -> Vec<Queue> {
        let ask =
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_field("topic", topic);
        for addr in self.config().namesrv_addrs.clone() {
            let Ok(resp) = crate::register::namesrv_invoke(self, &addr, ask.clone()).await else {
                continue;
            };
            if resp.code != response::SUCCESS {
                continue;
            }
            let Ok(route) = serde_json::from_slice::<Value>(&resp.body) else {
                continue;
            };
            let mut out = Vec::new();
            for qd in route["queueDatas"].as_array().into_iter().flatten() {
                let readable = qd["perm"]
                    .as_i64()
                    .is_some_and(|p| p as i32 & perm::READ != 0);
                let (Some(name), Some(n)) =
                    (qd["brokerName"].as_str(), qd["readQueueNums"].as_i64())
                else {
                    continue;
                };
                if readable {
                    out.extend((0..n as i32).map(|queue_id| Queue {
                        topic: topic.to_string(),
                        broker_name: name.to_string(),
                        queue_id,
                    }));
                }
            }
            return out;
        }
        let config = self.config();
        self.topics
            .get(topic)
            .filter(|t| t.perm & perm::READ != 0)
            .map(|t| {
                (0..t.read_queue_nums)
                    .map(|queue_id| Queue {
                        topic: topic.to_string(),
                        broker_name: config.broker_name.clone(),
                        queue_id,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<Queue> {
        (0..n)
            .map(|queue_id| Queue {
                topic: "t".into(),
                broker_name: "b".into(),
                queue_id,
            })
            .collect()
    }

    #[test]
    fn averaging_gives_the_first_consumers_the_remainder() {
        let all = queues(5);
        let cids: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let ids = |cid| {
            allocate_averagely(&all, &cids, cid)
                .iter()
                .map(|q| q.queue_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("a"), vec![0, 1, 2]);
        assert_eq!(ids("b"), vec![3, 4]);
        assert!(ids("stranger").is_empty());
        let many: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        let six = allocate_averagely(&all, &many, "6");
        assert!(
            six.is_empty(),
            "more consumers than queues: the last get none"
        );
    }
}
