//! The JSON API behind the pages. Bad input gets a 4xx with `{"error": "..."}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferromq_client::admin::QueueProgress;
use ferromq_client::{ClientError, Message, MessageExt, MessageExtExt, Producer};
use ferromq_protocol::message::properties_iter;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::AppState;

type St = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/cluster", get(cluster))
        .route("/topics", get(topics).post(create_topic))
        .route("/topics/{topic}", get(topic).delete(delete_topic))
        .route("/topics/{topic}/messages", post(send_message))
        .route("/groups", get(groups))
        .route("/groups/{group}", get(group).delete(delete_group))
        .route("/groups/{group}/reset", post(reset_group))
        .route("/messages", get(messages_by_time))
        .route("/messages/by-key", get(messages_by_key))
        .route("/messages/by-id/{id}", get(message_by_id))
        .route("/messages/resend", post(resend))
        .route("/dlq/{group}/redeliver", post(redeliver_dlq))
        .route("/delayed", get(delayed))
        .route("/transactions", get(transactions))
        .route("/producers", get(producers))
        .route("/traces/{id}", get(message_trace))
        .route("/life", get(message_life))
        .merge(crate::access::routes())
}

/// An API error: status and message.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        let status = match &e {
            ClientError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ClientError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ClientError::Broker { code: 17, .. } => StatusCode::NOT_FOUND,
            // NO_PERMISSION: the dashboard's credentials may not do this.
            ClientError::Broker { code: 16, .. } => StatusCode::FORBIDDEN,
            ClientError::Broker {
                code: 13 | 23 | 29, ..
            } => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(status, e.to_string())
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

pub(crate) type ApiResult = Result<Json<Value>, ApiError>;

/// `system` is the name server's list of system topics (cluster and broker names).
fn kind_of(topic: &str, system: &[String]) -> &'static str {
    if topic.starts_with("%RETRY%") {
        "retry"
    } else if topic.starts_with("%DLQ%") {
        "dlq"
    } else if topic == "TBW102"
        || topic == "SELF_TEST_TOPIC"
        || topic.starts_with("rmq_sys_")
        || topic.starts_with("RMQ_SYS_")
        || topic.starts_with("SCHEDULE_TOPIC")
        || topic.starts_with("TRANS_")
        || topic.ends_with("_REPLY_TOPIC")
        || topic == "BenchmarkTest"
        || topic == "OFFSET_MOVED_EVENT"
        || system.iter().any(|s| s == topic)
    {
        "system"
    } else {
        "normal"
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%|_-".contains(&b))
}

fn message_json(m: &MessageExt) -> Value {
    let props: BTreeMap<&str, &str> = properties_iter(&m.properties).collect();
    json!({
        "msgId": m.msg_id(),
        "offsetMsgId": m.offset_msg_id(),
        "topic": m.topic,
        "queueId": m.queue_id,
        "queueOffset": m.queue_offset,
        "tags": m.tag(),
        "keys": m.keys(),
        "bodyText": String::from_utf8_lossy(&m.body),
        "bodyHex": m.body.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "bodySize": m.body.len(),
        "properties": props,
        "bornTimestamp": m.born_timestamp,
        "bornHost": m.born_host.to_string(),
        "storeTimestamp": m.store_timestamp,
        "storeHost": m.store_host.to_string(),
        "reconsumeTimes": m.reconsume_times,
    })
}

async fn cluster(State(s): St) -> ApiResult {
    let brokers = s.admin.brokers().await?;
    let mut out = Vec::new();
    for b in brokers {
        let info = s
            .admin
            .broker_runtime_info(&b.addr)
            .await
            .unwrap_or_default();
        let (put_tps, get_tps) = s.sampler.broker_tps(&b.broker_name);
        let get = |k: &str| info.get(k).cloned().unwrap_or_default();
        let num = |k: &str| info.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let data_bytes = num("commitLogMaxOffset") - num("commitLogMinOffset");
        let replication = match s.admin.ha_status(&b.addr).await {
            Ok(status) => replication_view(&status),
            Err(_) => Value::Null,
        };
        out.push(json!({
            "replication": replication,
            "cluster": b.cluster, "brokerName": b.broker_name, "brokerId": b.broker_id, "addr": b.addr,
            "role": if b.broker_id == 0 { "MASTER" } else { "SLAVE" },
            "version": get("brokerVersionDesc"), "putTps": put_tps, "getTps": get_tps,
            "msgPutTotal": get("msgPutTotalTodayNow"), "msgGetTotal": get("msgGetTotalTodayNow"),
            "commitLogMinOffset": get("commitLogMinOffset"), "commitLogMaxOffset": get("commitLogMaxOffset"),
            "dataBytes": data_bytes, "bootTimestamp": get("bootTimestamp"), "runtime": get("runtime"),
        }));
    }
    Ok(Json(
        json!({ "nameServers": s.namesrv, "brokers": out, "series": s.sampler.broker_series() }),
    ))
}

/// A broker's replication as the cluster page shows it: a master's slaves with how far
/// behind each is, or a slave's master and its own distance.
fn replication_view(status: &Value) -> Value {
    let end = status["masterCommitLogMaxOffset"].as_u64().unwrap_or(0);
    if status["master"] == true {
        let slaves: Vec<Value> = status["haConnectionInfo"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|c| {
                        json!({
                            "addr": c["addr"], "brokerId": c["brokerId"],
                            "ackOffset": c["slaveAckOffset"], "behindBytes": c["diff"],
                            "inSync": c["inSync"],
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "role": "master", "logEnd": end, "slaves": slaves,
            "masterEpoch": status["masterEpoch"], "syncStateSet": status["syncStateSet"],
        })
    } else {
        let client = &status["haClientRuntimeInfo"];
        let copied = client["maxOffset"].as_u64().unwrap_or(0);
        json!({
            "role": "slave", "logEnd": copied, "master": client["masterAddr"],
            "masterLogEnd": end, "behindBytes": end.saturating_sub(copied),
            "connected": client["activated"],
        })
    }
}

#[derive(Deserialize)]
struct TopicQuery {
    search: Option<String>,
    kind: Option<String>,
}

async fn topics(State(s): St, Query(q): Query<TopicQuery>) -> ApiResult {
    if let Some(k) = q.kind.as_deref() {
        if !["normal", "retry", "dlq", "system", "all", ""].contains(&k) {
            return Err(bad(format!(
                "unknown kind '{k}': use normal, retry, dlq, system or all"
            )));
        }
    }
    let search = q.search.unwrap_or_default().to_lowercase();
    // Apache's name servers answer it too; one that does not only loses the marking.
    let system = s.admin.system_topic_list().await.unwrap_or_default();
    let list: Vec<Value> = s
        .admin
        .topic_list()
        .await?
        .into_iter()
        .filter(|t| t.to_lowercase().contains(&search))
        .filter(|t| {
            q.kind
                .as_deref()
                .is_none_or(|k| k.is_empty() || k == "all" || k == kind_of(t, &system))
        })
        .map(|t| json!({ "topic": t, "kind": kind_of(&t, &system) }))
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
struct CreateTopic {
    topic: String,
    #[serde(default = "four")]
    queues: i32,
    #[serde(default = "rw")]
    perm: i32,
}

fn four() -> i32 {
    4
}
fn rw() -> i32 {
    6
}

async fn create_topic(
    State(s): St,
    body: Result<Json<CreateTopic>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(t) = body.map_err(|e| bad(format!("invalid request body: {e}")))?;
    if !valid_name(&t.topic) {
        return Err(bad(format!(
            "invalid topic name '{}': use up to 127 of %|a-zA-Z0-9_-",
            t.topic
        )));
    }
    if !(1..=1024).contains(&t.queues) {
        return Err(bad("queues must be between 1 and 1024"));
    }
    if !(0..=7).contains(&t.perm) {
        return Err(bad("perm must be between 0 and 7 (4 read, 2 write)"));
    }
    s.admin
        .create_topic(&t.topic, t.queues, t.perm, None)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "topic": t.topic, "queues": t.queues, "perm": t.perm })),
    ))
}

async fn topic(State(s): St, Path(topic): Path<String>) -> ApiResult {
    let Some(route) = s.admin.topic_route(&topic).await? else {
        return Err(not_found(format!("unknown topic {topic}")));
    };
    let queues = s.admin.topic_status(&topic).await?;
    let mut groups = Vec::new();
    for (g, progress) in groups_on_topic(&s, &topic).await? {
        groups.push(json!({ "group": g, "lag": progress.iter().map(|p| p.lag).sum::<i64>() }));
    }
    let system = s.admin.system_topic_list().await.unwrap_or_default();
    Ok(Json(
        json!({ "topic": topic, "kind": kind_of(&topic, &system), "route": route, "queues": queues, "groups": groups }),
    ))
}

/// Groups that subscribe to or have committed offsets on a topic, with their progress on it.
async fn groups_on_topic(
    s: &AppState,
    topic: &str,
) -> Result<Vec<(String, Vec<QueueProgress>)>, ApiError> {
    let mut out = Vec::new();
    for g in s.admin.consumer_groups().await? {
        let progress: Vec<QueueProgress> = s
            .admin
            .consumer_progress(&g, None)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.topic == topic)
            .collect();
        if !progress.is_empty() {
            out.push((g, progress));
        }
    }
    Ok(out)
}

async fn delete_topic(State(s): St, Path(topic): Path<String>) -> ApiResult {
    if s.admin.topic_route(&topic).await?.is_none() {
        return Err(not_found(format!("unknown topic {topic}")));
    }
    s.admin.delete_topic(&topic).await?;
    Ok(Json(json!({ "deleted": topic })))
}

#[derive(Deserialize)]
struct SendBody {
    body: String,
    tag: Option<String>,
    keys: Option<String>,
}

async fn send_message(
    State(s): St,
    Path(topic): Path<String>,
    body: Result<Json<SendBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(b) = body.map_err(|e| bad(format!("invalid request body: {e}")))?;
    if !valid_name(&topic) {
        return Err(bad(format!("invalid topic name '{topic}'")));
    }
    let producer = s
        .producer
        .get_or_try_init(|| async {
            let builder = Producer::builder()
                .name_servers(s.namesrv.clone())
                .group("ferromq-dashboard");
            match &s.credentials {
                Some(c) => builder.credentials(&c.access_key, &c.secret_key).build(),
                None => builder.build(),
            }
        })
        .await?;
    let mut msg = Message::new(topic, b.body);
    if let Some(t) = b.tag.filter(|t| !t.is_empty()) {
        msg = msg.with_tag(t);
    }
    if let Some(k) = b.keys.filter(|k| !k.is_empty()) {
        msg = msg.with_keys(k.split_whitespace().map(str::to_string).collect::<Vec<_>>());
    }
    let r = producer.send(msg).await?;
    Ok(Json(
        json!({ "msgId": r.msg_id, "offsetMsgId": r.offset_msg_id, "queueId": r.queue.queue_id, "queueOffset": r.queue_offset }),
    ))
}

async fn groups(State(s): St) -> ApiResult {
    let mut out = Vec::new();
    for g in s.admin.consumer_groups().await? {
        let progress = s
            .admin
            .consumer_progress(&g, None)
            .await
            .unwrap_or_default();
        let consumers = s
            .admin
            .consumer_connections(&g)
            .await
            .ok()
            .and_then(|c| c["connectionSet"].as_array().map(Vec::len))
            .unwrap_or(0);
        out.push(json!({
            "group": g,
            "lag": progress.iter().map(|p| p.lag).sum::<i64>(),
            "consumeTps": s.sampler.group_tps(&g),
            "consumers": consumers,
        }));
    }
    Ok(Json(json!(out)))
}

async fn group(State(s): St, Path(group): Path<String>) -> ApiResult {
    if !s.admin.consumer_groups().await?.contains(&group) {
        return Err(not_found(format!("unknown consumer group {group}")));
    }
    let progress = s.admin.consumer_progress(&group, None).await?;
    let connections = s
        .admin
        .consumer_connections(&group)
        .await
        .unwrap_or(json!({ "connectionSet": [] }));
    Ok(Json(
        json!({ "group": group, "progress": progress, "connections": connections }),
    ))
}

async fn delete_group(State(s): St, Path(group): Path<String>) -> ApiResult {
    if !s.admin.consumer_groups().await?.contains(&group) {
        return Err(not_found(format!("unknown consumer group {group}")));
    }
    s.admin.delete_group(&group).await?;
    Ok(Json(json!({ "deleted": group })))
}

#[derive(Deserialize)]
struct ResetBody {
    topic: String,
    timestamp: i64,
}

async fn reset_group(
    State(s): St,
    Path(group): Path<String>,
    body: Result<Json<ResetBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(b) = body.map_err(|e| bad(format!("invalid request body: {e}")))?;
    if b.timestamp < 0 {
        return Err(bad("timestamp must be milliseconds since the epoch"));
    }
    s.admin
        .reset_offset_by_time(&group, &b.topic, b.timestamp)
        .await?;
    Ok(Json(
        json!({ "group": group, "topic": b.topic, "timestamp": b.timestamp }),
    ))
}

#[derive(Deserialize)]
struct TimeQuery {
    topic: String,
    begin: Option<i64>,
    end: Option<i64>,
    page: Option<usize>,
    size: Option<usize>,
}

async fn messages_by_time(State(s): St, Query(q): Query<TimeQuery>) -> ApiResult {
    let begin = q.begin.unwrap_or(0);
    let end = q.end.unwrap_or(i64::MAX);
    if begin > end {
        return Err(bad(format!(
            "the time range is empty: begin {begin} is after end {end}"
        )));
    }
    let size = q.size.unwrap_or(20).clamp(1, 200);
    let page = q.page.unwrap_or(0).min(1000);
    let all = s
        .admin
        .query_by_time(&q.topic, begin, end, (page + 1) * size)
        .await?;
    let items: Vec<Value> = all
        .iter()
        .skip(page * size)
        .take(size)
        .map(message_json)
        .collect();
    Ok(Json(json!({ "page": page, "size": size, "items": items })))
}

#[derive(Deserialize)]
struct KeyQuery {
    topic: String,
    key: String,
}

async fn messages_by_key(State(s): St, Query(q): Query<KeyQuery>) -> ApiResult {
    if q.key.is_empty() {
        return Err(bad("the key is empty"));
    }
    let found = s.admin.query_by_key(&q.topic, &q.key, 32).await?;
    Ok(Json(json!(found
        .iter()
        .map(message_json)
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
struct IdQuery {
    topic: Option<String>,
}

async fn message_by_id(
    State(s): St,
    Path(id): Path<String>,
    Query(q): Query<IdQuery>,
) -> ApiResult {
    let Some(m) = s.admin.query_by_id(q.topic.as_deref(), &id).await? else {
        return Err(not_found(format!("no message with id {id}")));
    };
    let mut groups = Vec::new();
    for (g, progress) in groups_on_topic(&s, &m.topic).await? {
        if let Some(p) = progress.iter().find(|p| p.queue_id == m.queue_id) {
            groups.push(json!({ "group": g, "consumed": p.consumer_offset > m.queue_offset }));
        }
    }
    let mut detail = message_json(&m);
    detail["groups"] = json!(groups);
    Ok(Json(detail))
}

#[derive(Deserialize)]
struct ResendBody {
    id: String,
    topic: Option<String>,
    group: String,
}

async fn resend(
    State(s): St,
    body: Result<Json<ResendBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(b) = body.map_err(|e| bad(format!("invalid request body: {e}")))?;
    let Some(m) = s.admin.query_by_id(b.topic.as_deref(), &b.id).await? else {
        return Err(not_found(format!("no message with id {}", b.id)));
    };
    let retry = format!("%RETRY%{}", b.group);
    s.admin.resend(&m, &retry).await?;
    Ok(Json(json!({ "resentTo": retry })))
}

async fn redeliver_dlq(State(s): St, Path(group): Path<String>) -> ApiResult {
    let dlq = format!("%DLQ%{group}");
    let msgs = s.admin.query_by_time(&dlq, 0, i64::MAX, 1000).await?;
    let retry = format!("%RETRY%{group}");
    for m in &msgs {
        s.admin.resend(m, &retry).await?;
    }
    Ok(Json(json!({ "redelivered": msgs.len() })))
}

async fn delayed(State(s): St) -> ApiResult {
    let mut out = Vec::new();
    for (name, addr) in s.admin.masters().await? {
        let info = s.admin.broker_runtime_info(&addr).await?;
        let levels: BTreeMap<u32, String> = info
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("scheduleMessagePending.level")
                    .and_then(|l| l.parse().ok())
                    .map(|l| (l, v.clone()))
            })
            .collect();
        let timers: BTreeMap<&str, String> = info
            .iter()
            .filter(|(k, _)| k.starts_with("timerPending"))
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        out.push(json!({ "broker": name, "levels": levels, "timers": timers }));
    }
    Ok(Json(json!(out)))
}

async fn transactions(State(s): St) -> ApiResult {
    let mut out = Vec::new();
    for (name, addr) in s.admin.masters().await? {
        match s.admin.undecided_transactions(&addr, 500).await {
            Ok(list) => out.push(json!({ "broker": name, "transactions": list })),
            Err(e) => out.push(json!({ "broker": name, "error": e.to_string() })),
        }
    }
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
struct ProducerQuery {
    group: Option<String>,
}

async fn producers(State(s): St, Query(q): Query<ProducerQuery>) -> ApiResult {
    let groups = match q.group {
        Some(g) => vec![g],
        None => s.admin.producer_groups().await?,
    };
    let mut out = Vec::new();
    for g in groups {
        out.push(json!({ "group": g, "connections": s.admin.producer_connections(&g).await? }));
    }
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
struct TraceQuery {
    #[serde(rename = "traceTopic")]
    trace_topic: Option<String>,
}

/// What clients with tracing on wrote about a message: the records and the graph drawn
/// from them (send, transaction ends, consumptions per group).
async fn message_trace(
    State(s): St,
    Path(id): Path<String>,
    Query(q): Query<TraceQuery>,
) -> ApiResult {
    let trace_topic = q
        .trace_topic
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| ferromq_client::trace::TRACE_TOPIC.to_string());
    let records = s
        .admin
        .message_trace(&trace_topic, &id, 64, 0, i64::MAX)
        .await?;
    if records.is_empty() {
        return Err(not_found(format!(
            "no trace of {id} on {trace_topic}: were the clients' traces on (Java enableMsgTrace, Go WithTrace), and is {id} the message's unique id?"
        )));
    }
    let graph = ferromq_client::trace::TraceGraph::build(&records);
    Ok(Json(json!({
        "msgId": id,
        "traceTopic": trace_topic,
        "records": records,
        "graph": graph,
    })))
}

#[derive(Deserialize)]
struct LifeQuery {
    topic: String,
    id: Option<String>,
    key: Option<String>,
}

/// A message's life from the brokers' own records (see `ferromq admin messageLife`).
async fn message_life(State(s): St, Query(q): Query<LifeQuery>) -> ApiResult {
    let id = q.id.as_deref().filter(|i| !i.is_empty());
    let key = q.key.as_deref().filter(|k| !k.is_empty());
    if q.topic.is_empty() || (id.is_none() && key.is_none()) {
        return Err(bad("a topic and a message id or key are needed"));
    }
    let lives = s.admin.message_life(&q.topic, id, key).await?;
    if lives.is_empty() {
        return Err(not_found(format!(
            "no message {} on {}",
            id.map_or_else(|| format!("with key {}", key.unwrap_or("")), str::to_string),
            q.topic
        )));
    }
    Ok(Json(json!(lives)))
}
