//! ACL 2.0's users and policies over the wire (AUTH_CREATE_USER … AUTH_LIST_ACL, 3001–3010),
//! as Apache's `AdminBrokerProcessor` answers them: bodies are Apache's `UserInfo` and
//! `AclInfo`, refusals NO_PERMISSION with Apache's message, a missing user or ACL on a get
//! a success without a body. The caller is the request's `AccessKey`, if signed: only super
//! users make, change or delete super users.

use ferromq_protocol::acl::ACCESS_KEY;
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    AuthAclRequestHeader, AuthListAclsRequestHeader, AuthListUsersRequestHeader,
    AuthUserRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::header;
use crate::auth::model::{AclInfo, UserInfo};
use crate::auth::Refusal;
use crate::Broker;

fn invalid(req: &RemotingCommand, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::error_response(req, response::INVALID_PARAMETER, remark.into())
}

fn answer(req: &RemotingCommand, result: Result<(), Refusal>) -> RemotingCommand {
    match result {
        Ok(()) => RemotingCommand::response_to(req, response::SUCCESS),
        Err(r) => RemotingCommand::error_response(req, r.code, r.remark),
    }
}

/// A success with the value as its JSON body; none when there is nothing to show.
fn with_body<T: Serialize>(req: &RemotingCommand, value: Option<T>) -> RemotingCommand {
    let resp = RemotingCommand::response_to(req, response::SUCCESS);
    match value.and_then(|v| serde_json::to_vec(&v).ok()) {
        Some(body) => resp.with_body(body),
        None => resp,
    }
}

fn body<T: DeserializeOwned>(req: &RemotingCommand, what: &str) -> Result<T, RemotingCommand> {
    serde_json::from_slice(&req.body)
        .map_err(|e| invalid(req, format!("the body is not a valid {what}: {e}")))
}

impl Broker {
    pub(crate) fn auth_admin(&self, req: &RemotingCommand) -> RemotingCommand {
        match self.auth_admin_inner(req) {
            Ok(resp) | Err(resp) => resp,
        }
    }

    fn auth_admin_inner(&self, req: &RemotingCommand) -> Result<RemotingCommand, RemotingCommand> {
        let caller = req.field(ACCESS_KEY);
        let auth = &self.auth;
        Ok(match req.code {
            request::AUTH_CREATE_USER
            | request::AUTH_UPDATE_USER
            | request::AUTH_DELETE_USER
            | request::AUTH_GET_USER => {
                let h = header::<AuthUserRequestHeader>(req)?;
                let username = h
                    .username
                    .filter(|u| !u.trim().is_empty())
                    .ok_or_else(|| invalid(req, "The username is blank"))?;
                match req.code {
                    request::AUTH_CREATE_USER => answer(
                        req,
                        auth.create_user(caller, &username, body::<UserInfo>(req, "UserInfo")?),
                    ),
                    request::AUTH_UPDATE_USER => answer(
                        req,
                        auth.update_user(caller, &username, body::<UserInfo>(req, "UserInfo")?),
                    ),
                    request::AUTH_DELETE_USER => answer(req, auth.delete_user(caller, &username)),
                    _ => with_body(req, auth.get_user(&username)),
                }
            }
            request::AUTH_LIST_USER => {
                let h = header::<AuthListUsersRequestHeader>(req)?;
                let users = auth.list_users(h.filter.as_deref());
                with_body(req, (!users.is_empty()).then_some(users))
            }
            request::AUTH_CREATE_ACL | request::AUTH_UPDATE_ACL => {
                let h = header::<AuthAclRequestHeader>(req)?;
                let info: AclInfo = body(req, "AclInfo")?;
                let subject = h
                    .subject
                    .or_else(|| info.subject.clone())
                    .unwrap_or_default();
                answer(req, auth.put_acl(&subject, &info))
            }
            request::AUTH_DELETE_ACL => {
                let h = header::<AuthAclRequestHeader>(req)?;
                let subject = h
                    .subject
                    .ok_or_else(|| invalid(req, "The subject is blank"))?;
                answer(
                    req,
                    auth.delete_acl(&subject, h.policy_type.as_deref(), h.resource.as_deref()),
                )
            }
            request::AUTH_GET_ACL => {
                let h = header::<AuthAclRequestHeader>(req)?;
                let subject = h
                    .subject
                    .ok_or_else(|| invalid(req, "The subject is blank"))?;
                match auth.get_acl(&subject) {
                    Ok(acl) => with_body(req, acl),
                    Err(r) => RemotingCommand::error_response(req, r.code, r.remark),
                }
            }
            request::AUTH_LIST_ACL => {
                let h = header::<AuthListAclsRequestHeader>(req)?;
                let acls =
                    auth.list_acls(h.subject_filter.as_deref(), h.resource_filter.as_deref());
                with_body(req, (!acls.is_empty()).then_some(acls))
            }
            _ => unreachable!("auth_admin is dispatched only for codes 3001-3010"),
        })
    }
}
