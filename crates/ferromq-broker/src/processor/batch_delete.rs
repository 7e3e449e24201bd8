//! Apache 5.5.1's batch deletes: DELETE_TOPIC_IN_BROKER_LIST (5002, body `{"topicList": […]}`)
//! and DELETE_SUBSCRIPTION_GROUP_LIST (5003, body `{"groupNameList": […], "cleanOffset": b}`),
//! checked whole before anything is deleted, with Apache's INVALID_PARAMETER answers.

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use serde::Deserialize;

use crate::Broker;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicList {
    #[serde(default)]
    topic_list: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupList {
    #[serde(default)]
    group_name_list: Vec<String>,
    #[serde(default)]
    clean_offset: bool,
}

fn invalid(req: &RemotingCommand, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::error_response(req, response::INVALID_PARAMETER, remark.into())
}

/// The names, deduplicated in order; an empty list or a blank name is Apache's refusal.
fn names<'a>(
    req: &RemotingCommand,
    list: &'a [String],
    what: &str,
) -> Result<Vec<&'a str>, RemotingCommand> {
    if list.is_empty() {
        return Err(invalid(req, format!("The specified {what} list is blank.")));
    }
    let mut out: Vec<&str> = Vec::new();
    for name in list {
        if name.trim().is_empty() {
            return Err(invalid(req, format!("The specified {what} is blank.")));
        }
        if !out.contains(&name.as_str()) {
            out.push(name);
        }
    }
    Ok(out)
}

impl Broker {
    pub(crate) fn delete_topic_list(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: TopicList = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return invalid(
                    req,
                    format!("the body is not a DeleteTopicListRequestBody: {e}"),
                )
            }
        };
        let topics = match names(req, &body.topic_list, "topic") {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        if let Some(system) = topics.iter().find(|t| crate::metrics::is_system_topic(t)) {
            return invalid(
                req,
                format!("The topic[{system}] is conflict with system topic."),
            );
        }
        for topic in &topics {
            if let Err(e) = self.remove_topic(topic) {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("deleting the topic {topic} failed: {e}"),
                );
            }
        }
        self.request_registration();
        RemotingCommand::response_to(req, response::SUCCESS)
    }

    pub(crate) fn delete_group_list(&self, req: &RemotingCommand) -> RemotingCommand {
        let body: GroupList = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return invalid(
                    req,
                    format!("the body is not a DeleteSubscriptionGroupListRequestBody: {e}"),
                )
            }
        };
        let groups = match names(req, &body.group_name_list, "group name") {
            Ok(g) => g,
            Err(resp) => return resp,
        };
        for group in groups {
            if body.clean_offset {
                self.offsets.remove_group(group);
            }
            if let Err(e) = self.groups.delete(group) {
                return RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string());
            }
        }
        RemotingCommand::response_to(req, response::SUCCESS)
    }
}
