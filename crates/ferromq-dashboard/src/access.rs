//! The Access page's API (ACL 2.0): each broker's users and policies, and the forms that
//! create, change and delete them. Changes go to every broker, masters and slaves (each
//! keeps its own tables, as in Apache); passwords are never shown.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferromq_protocol::auth::{AclInfo, PolicyEntryInfo, PolicyInfo, UserInfo};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{bad, ApiError, ApiResult};
use crate::AppState;

type St = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/access", get(access))
        .route("/access/users", post(create_user))
        .route(
            "/access/users/{name}",
            post(update_user).delete(delete_user),
        )
        .route("/access/acls", post(put_acl).delete(delete_acl))
}

/// Every broker's address, masters and slaves.
async fn all_brokers(s: &AppState) -> Result<Vec<(String, String)>, ApiError> {
    Ok(s.admin
        .brokers()
        .await?
        .into_iter()
        .map(|b| (format!("{} {}", b.broker_name, b.broker_id), b.addr))
        .collect())
}

async fn access(State(s): St) -> ApiResult {
    let mut out = Vec::new();
    for (broker, addr) in all_brokers(&s).await? {
        let users: Vec<Value> = s
            .admin
            .users(&addr)
            .await?
            .into_iter()
            .map(|u| json!({"username": u.username, "userType": u.user_type, "userStatus": u.user_status}))
            .collect();
        let acls = s.admin.acls(&addr).await?;
        out.push(json!({"broker": broker, "addr": addr, "users": users, "acls": acls}));
    }
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    user_type: Option<String>,
}

async fn create_user(
    State(s): St,
    Json(u): Json<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if u.username.trim().is_empty() || u.password.is_empty() {
        return Err(bad("a user needs a name and a password"));
    }
    let info = UserInfo {
        username: Some(u.username.clone()),
        password: Some(u.password),
        user_type: u.user_type.filter(|t| !t.is_empty()),
        user_status: None,
    };
    for (_, addr) in all_brokers(&s).await? {
        s.admin.create_user(&addr, &info).await?;
    }
    Ok((StatusCode::CREATED, Json(json!({"username": u.username}))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserChange {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
    #[serde(default)]
    user_status: Option<String>,
}

async fn update_user(
    State(s): St,
    Path(name): Path<String>,
    Json(c): Json<UserChange>,
) -> ApiResult {
    let info = UserInfo {
        username: Some(name.clone()),
        password: c.password.filter(|p| !p.is_empty()),
        user_type: c.user_type.filter(|t| !t.is_empty()),
        user_status: c.user_status.filter(|t| !t.is_empty()),
    };
    if info.password.is_none() && info.user_type.is_none() && info.user_status.is_none() {
        return Err(bad(
            "nothing to change: give password, userType or userStatus",
        ));
    }
    for (_, addr) in all_brokers(&s).await? {
        s.admin.update_user(&addr, &info).await?;
    }
    Ok(Json(json!({"username": name})))
}

async fn delete_user(State(s): St, Path(name): Path<String>) -> ApiResult {
    for (_, addr) in all_brokers(&s).await? {
        s.admin.delete_user(&addr, &name).await?;
    }
    Ok(Json(json!({"deleted": name})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Grant {
    subject: String,
    resources: Vec<String>,
    actions: Vec<String>,
    #[serde(default)]
    source_ips: Vec<String>,
    decision: String,
}

async fn put_acl(
    State(s): St,
    Json(g): Json<Grant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if g.resources.is_empty() || g.actions.is_empty() {
        return Err(bad("a policy needs resources and actions"));
    }
    let entries = g
        .resources
        .iter()
        .map(|r| PolicyEntryInfo {
            resource: Some(r.clone()),
            actions: Some(g.actions.clone()),
            source_ips: (!g.source_ips.is_empty()).then(|| g.source_ips.clone()),
            decision: Some(g.decision.clone()),
        })
        .collect();
    let acl = AclInfo {
        subject: Some(g.subject.clone()),
        policies: Some(vec![PolicyInfo {
            policy_type: None,
            entries: Some(entries),
        }]),
    };
    for (_, addr) in all_brokers(&s).await? {
        s.admin.put_acl(&addr, &acl).await?;
    }
    Ok((StatusCode::CREATED, Json(json!({"subject": g.subject}))))
}

#[derive(Deserialize)]
struct AclKey {
    subject: String,
    resource: Option<String>,
}

async fn delete_acl(State(s): St, Query(k): Query<AclKey>) -> ApiResult {
    for (_, addr) in all_brokers(&s).await? {
        s.admin
            .delete_acl(
                &addr,
                &k.subject,
                k.resource.as_deref().filter(|r| !r.is_empty()),
            )
            .await?;
    }
    Ok(Json(json!({"subject": k.subject, "resource": k.resource})))
}
