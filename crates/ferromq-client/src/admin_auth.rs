//! ACL 2.0's users and policies on one broker (codes 3001–3010), for the admin tools: the
//! bodies are Apache's `UserInfo` and `AclInfo`.

use ferromq_protocol::auth::{AclInfo, UserInfo};
use ferromq_protocol::code::request;
use ferromq_protocol::header::{
    AuthAclRequestHeader, AuthListAclsRequestHeader, AuthListUsersRequestHeader,
    AuthUserRequestHeader,
};
use ferromq_protocol::RemotingCommand;

use crate::admin::{json_body, AdminClient};
use crate::Result;

fn user_request(code: i32, username: &str) -> RemotingCommand {
    RemotingCommand::request(code).with_header(&AuthUserRequestHeader {
        username: Some(username.to_string()),
    })
}

impl AdminClient {
    /// The broker's users (an empty answer is no users).
    pub async fn users(&self, addr: &str) -> Result<Vec<UserInfo>> {
        let req = RemotingCommand::request(request::AUTH_LIST_USER)
            .with_header(&AuthListUsersRequestHeader::default());
        let resp = self.broker_call(addr, req, "AUTH_LIST_USER").await?;
        if resp.body.is_empty() {
            return Ok(Vec::new());
        }
        json_body(&resp, "AUTH_LIST_USER")
    }

    /// Creates a user (`Normal` unless `user_type` says `Super`).
    pub async fn create_user(&self, addr: &str, user: &UserInfo) -> Result<()> {
        let name = user.username.clone().unwrap_or_default();
        let req = user_request(request::AUTH_CREATE_USER, &name)
            .with_body(serde_json::to_vec(user).expect("UserInfo serializes"));
        self.broker_call(addr, req, "AUTH_CREATE_USER")
            .await
            .map(|_| ())
    }

    /// Changes the fields `user` gives (password, type, status).
    pub async fn update_user(&self, addr: &str, user: &UserInfo) -> Result<()> {
        let name = user.username.clone().unwrap_or_default();
        let req = user_request(request::AUTH_UPDATE_USER, &name)
            .with_body(serde_json::to_vec(user).expect("UserInfo serializes"));
        self.broker_call(addr, req, "AUTH_UPDATE_USER")
            .await
            .map(|_| ())
    }

    /// Deletes a user and its policies.
    pub async fn delete_user(&self, addr: &str, username: &str) -> Result<()> {
        let req = user_request(request::AUTH_DELETE_USER, username);
        self.broker_call(addr, req, "AUTH_DELETE_USER")
            .await
            .map(|_| ())
    }

    /// The broker's policies, every subject's.
    pub async fn acls(&self, addr: &str) -> Result<Vec<AclInfo>> {
        let req = RemotingCommand::request(request::AUTH_LIST_ACL)
            .with_header(&AuthListAclsRequestHeader::default());
        let resp = self.broker_call(addr, req, "AUTH_LIST_ACL").await?;
        if resp.body.is_empty() {
            return Ok(Vec::new());
        }
        json_body(&resp, "AUTH_LIST_ACL")
    }

    /// Adds policy entries to a subject's ACL; an entry for a resource it has replaces it.
    pub async fn put_acl(&self, addr: &str, acl: &AclInfo) -> Result<()> {
        let req = RemotingCommand::request(request::AUTH_CREATE_ACL)
            .with_header(&AuthAclRequestHeader {
                subject: acl.subject.clone(),
                ..AuthAclRequestHeader::default()
            })
            .with_body(serde_json::to_vec(acl).expect("AclInfo serializes"));
        self.broker_call(addr, req, "AUTH_CREATE_ACL")
            .await
            .map(|_| ())
    }

    /// Removes a subject's custom entry for `resource`, or its whole ACL without one.
    pub async fn delete_acl(
        &self,
        addr: &str,
        subject: &str,
        resource: Option<&str>,
    ) -> Result<()> {
        let req =
            RemotingCommand::request(request::AUTH_DELETE_ACL).with_header(&AuthAclRequestHeader {
                subject: Some(subject.to_string()),
                policy_type: None,
                resource: resource.map(str::to_string),
            });
        self.broker_call(addr, req, "AUTH_DELETE_ACL")
            .await
            .map(|_| ())
    }
}
