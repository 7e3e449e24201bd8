//! The push consumer: rebalance, one long-polling pull loop per assigned queue, flow
//! control, concurrent or orderly handling, send-back for retries, periodic offset
//! commits and a graceful shutdown that finishes in-flight handlers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_protocol::body::{
    ConsumerData, ConsumerIdList, LockBatchRequestBody, LockBatchResponseBody,
};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader,
};
use ferromq_protocol::message::{self, property, MessageExt};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::Connection;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::{allocate_averagely, ConsumeFrom, ConsumeResult, MessageModel, Selector};
use crate::error::{ClientError, Result};
use crate::instance::{route_queues, ClientInstance, Credentials, ServerRequestHandler};
use crate::message::MessageQueue;
use crate::producer::now_ms;

type BoxFuture = Pin<Box<dyn Future<Output = ConsumeResult> + Send>>;
type Handler = Arc<dyn Fn(Vec<MessageExt>) -> BoxFuture + Send + Sync>;

const PULL_SUSPEND: Duration = Duration::from_secs(15);
/// A subscribed topic's route is awaited this many times this long apart at start.
const ROUTE_WAIT_ATTEMPTS: usize = 10;
const ROUTE_WAIT_STEP: Duration = Duration::from_millis(500);
const PULL_CALL_TIMEOUT: Duration = Duration::from_secs(30);
const PULL_ERROR_BACKOFF: Duration = Duration::from_secs(3);
const FLOW_CONTROL_PAUSE: Duration = Duration::from_millis(50);
const REBALANCE_INTERVAL: Duration = Duration::from_secs(20);
const OFFSET_PERSIST_INTERVAL: Duration = Duration::from_secs(5);
const LOCK_RENEW_INTERVAL: Duration = Duration::from_secs(20);
const SUSPEND_PAUSE: Duration = Duration::from_secs(1);
const SEND_BACK_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// How long shutdown waits for handlers still running.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pull sysFlag bits.
const FLAG_COMMIT_OFFSET: i32 = 0x1;
const FLAG_SUSPEND: i32 = 0x2;
const FLAG_SUBSCRIPTION: i32 = 0x4;

/// Builds a [`PushConsumer`].
pub struct PushConsumerBuilder {
    namesrv: Vec<String>,
    group: String,
    instance: String,
    model: MessageModel,
    from: ConsumeFrom,
    orderly: bool,
    max_reconsume_times: Option<i32>,
    batch_size: usize,
    pull_batch: i32,
    threshold_messages: usize,
    threshold_bytes: usize,
    concurrency: usize,
    subscriptions: BTreeMap<String, Selector>,
    credentials: Option<Credentials>,
}

impl PushConsumerBuilder {
    /// Signs every request, for brokers with ACL on.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some(Credentials::new(access_key, secret_key));
        self
    }
    pub fn name_servers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, addrs: I) -> Self {
        self.namesrv = addrs.into_iter().map(Into::into).collect();
        self
    }
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }
    /// Distinguishes several consumers of one group in one process.
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.instance = name.into();
        self
    }
    pub fn message_model(mut self, m: MessageModel) -> Self {
        self.model = m;
        self
    }
    pub fn consume_from(mut self, f: ConsumeFrom) -> Self {
        self.from = f;
        self
    }
    /// Orderly consumption: one batch at a time per queue, under a broker lock.
    pub fn orderly(mut self, yes: bool) -> Self {
        self.orderly = yes;
        self
    }
    /// Deliveries before a message goes to the dead-letter queue (default 16; orderly:
    /// unlimited).
    pub fn max_reconsume_times(mut self, n: i32) -> Self {
        self.max_reconsume_times = Some(n);
        self
    }
    /// Messages per handler call (default 1).
    pub fn consume_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
    /// Messages per pull (default 32).
    pub fn pull_batch_size(mut self, n: i32) -> Self {
        self.pull_batch = n.clamp(1, 1024);
        self
    }
    /// Pulls of a queue pause while this many of its messages are unfinished (default 1000).
    pub fn pull_threshold_per_queue(mut self, messages: usize, bytes: usize) -> Self {
        self.threshold_messages = messages.max(1);
        self.threshold_bytes = bytes.max(1);
        self
    }
    /// Handlers running at once (concurrent mode, default 20).
    pub fn consume_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    pub fn subscribe(mut self, topic: impl Into<String>, selector: Selector) -> Self {
        self.subscriptions.insert(topic.into(), selector);
        self
    }

    /// Starts consuming with `handler`.
    ///
    /// # Errors
    /// No name server or subscription, or a subscribed topic without a route.
    pub async fn start<F, Fut>(self, handler: F) -> Result<PushConsumer>
    where
        F: Fn(Vec<MessageExt>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ConsumeResult> + Send + 'static,
    {
        if self.namesrv.is_empty() {
            return Err(ClientError::InvalidArgument(
                "at least one name server is required".into(),
            ));
        }
        if self.subscriptions.is_empty() {
            return Err(ClientError::InvalidArgument(
                "subscribe to at least one topic before starting".into(),
            ));
        }
        let handler: Handler = Arc::new(move |msgs| Box::pin(handler(msgs)));
        let instance = ClientInstance::new(
            self.namesrv.clone(),
            &format!("{}-{}", self.group, self.instance),
            Duration::from_secs(5),
        );
        if let Some(c) = &self.credentials {
            instance.set_credentials(c.clone());
        }
        let mut subscriptions = self.subscriptions.clone();
        if self.model == MessageModel::Clustering {
            subscriptions.insert(format!("%RETRY%{}", self.group), Selector::All);
        }
        for topic in self.subscriptions.keys() {
            // A topic created a moment ago may not be registered yet (Apache registers
            // asynchronously): give it a few seconds before refusing to start.
            let mut found = false;
            for _ in 0..ROUTE_WAIT_ATTEMPTS {
                if instance.fetch_route(topic).await?.is_some() {
                    found = true;
                    break;
                }
                tokio::time::sleep(ROUTE_WAIT_STEP).await;
            }
            if !found {
                instance.close();
                return Err(ClientError::NoRoute {
                    topic: topic.clone(),
                });
            }
        }
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let inner = Arc::new(Inner {
            instance,
            handler,
            subscriptions,
            queues: Mutex::new(HashMap::new()),
            local_offsets: Mutex::new(HashMap::new()),
            rebalance_now: Notify::new(),
            semaphore,
            tasks: TaskTracker::new(),
            handlers: TaskTracker::new(),
            stop: CancellationToken::new(),
            sub_version: AtomicI64::new(now_ms()),
            config: self,
        });
        inner.instance.set_consumer(inner.consumer_data());
        inner
            .instance
            .add_handler(Arc::new(Requests(Arc::downgrade(&inner))));
        inner.instance.heartbeat_all().await;
        inner.tasks.spawn(inner.clone().rebalance_loop());
        inner.tasks.spawn(inner.clone().persist_loop());
        if inner.config.orderly && inner.config.model == MessageModel::Clustering {
            inner.tasks.spawn(inner.clone().lock_loop());
        }
        Ok(PushConsumer { inner })
    }
}

/// Per assigned queue: its pull loop's stop switch and what is in flight.
struct QueueState {
    stop: CancellationToken,
    progress: Arc<Progress>,
}

/// What a queue has pulled and what its handlers have not finished.
#[derive(Default)]
struct Progress {
    /// Next offset to pull.
    next_pull: AtomicI64,
    /// Offsets handed to handlers and not finished, with their sizes.
    in_flight: Mutex<BTreeMap<i64, usize>>,
    bytes: AtomicUsize,
    /// Last committed offset, to skip unchanged commits.
    committed: AtomicI64,
    /// The commit offset a pull in flight carries (0: none). The broker stores it on
    /// arrival, so the periodic commit need not send it again while the pull is held.
    carried: AtomicI64,
    locked: AtomicBool,
}

impl Progress {
    /// The offset to commit: the oldest unfinished message, or everything pulled.
    fn commit_offset(&self) -> i64 {
        let in_flight = self.in_flight.lock().expect("in-flight lock");
        in_flight
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.next_pull.load(Ordering::Acquire))
    }
}

struct Inner {
    config: PushConsumerBuilder,
    instance: Arc<ClientInstance>,
    handler: Handler,
    subscriptions: BTreeMap<String, Selector>,
    queues: Mutex<HashMap<MessageQueue, QueueState>>,
    /// Broadcasting: offsets kept by this client.
    local_offsets: Mutex<HashMap<MessageQueue, i64>>,
    rebalance_now: Notify,
    semaphore: Arc<Semaphore>,
    tasks: TaskTracker,
    handlers: TaskTracker,
    stop: CancellationToken,
    sub_version: AtomicI64,
}

/// Requests brokers send to consumers.
struct Requests(std::sync::Weak<Inner>);

impl ServerRequestHandler for Requests {
    fn handle(&self, _conn: &Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        let inner = self.0.upgrade()?;
        match req.code {
            request::NOTIFY_CONSUMER_IDS_CHANGED => {
                inner.rebalance_now.notify_one();
                None
            }
            request::RESET_CONSUMER_CLIENT_OFFSET
                if req.field("group") == Some(inner.config.group.as_str()) =>
            {
                let topic = req.field("topic").unwrap_or_default().to_string();
                inner.reset(&topic, &String::from_utf8_lossy(&req.body));
                None
            }
            request::GET_CONSUMER_RUNNING_INFO => {
                let info = serde_json::json!({
                    "properties": {"consumerGroup": inner.config.group, "clientId": inner.instance.client_id,
                                   "language": "RUST", "consumeOrderly": inner.config.orderly.to_string()},
                    "subscriptionSet": inner.subscriptions.iter().map(|(t, s)| s.subscription_data(t, 0)).collect::<Vec<_>>(),
                    "mqTable": {}, "statusTable": {},
                });
                Some(
                    RemotingCommand::response_to(&req, response::SUCCESS)
                        .with_body(info.to_string()),
                )
            }
            _ => None,
        }
    }
}

/// A running push consumer.
pub struct PushConsumer {
    inner: Arc<Inner>,
}

impl PushConsumer {
    pub fn builder() -> PushConsumerBuilder {
        PushConsumerBuilder {
            namesrv: Vec::new(),
            group: String::new(),
            instance: "DEFAULT".into(),
            model: MessageModel::Clustering,
            from: ConsumeFrom::LastOffset,
            orderly: false,
            max_reconsume_times: None,
            batch_size: 1,
            pull_batch: 32,
            threshold_messages: 1000,
            threshold_bytes: 100 * 1024 * 1024,
            concurrency: 20,
            subscriptions: BTreeMap::new(),
            credentials: None,
        }
    }

    /// The queues this consumer holds now.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        let mut q: Vec<MessageQueue> = self
            .inner
            .queues
            .lock()
            .expect("queue table lock")
            .keys()
            .cloned()
            .collect();
        q.sort();
        q
    }

    /// Stops pulling, waits for running handlers (up to 30 s), commits offsets, releases
    /// queue locks and leaves the group.
    pub async fn shutdown(self) {
        let inner = self.inner;
        inner.stop.cancel();
        let states: Vec<(MessageQueue, QueueState)> = inner
            .queues
            .lock()
            .expect("queue table lock")
            .drain()
            .collect();
        for (_, s) in &states {
            s.stop.cancel();
        }
        inner.tasks.close();
        inner.handlers.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            inner.tasks.wait().await;
            inner.handlers.wait().await;
        })
        .await;
        for (mq, s) in &states {
            inner.commit(mq, &s.progress, false).await;
        }
        if inner.config.orderly {
            let mqs: Vec<MessageQueue> = states.iter().map(|(mq, _)| mq.clone()).collect();
            inner.lock_request(request::UNLOCK_BATCH_MQ, &mqs).await;
        }
        for addr in inner.broker_addrs().await {
            let req = RemotingCommand::request(request::UNREGISTER_CLIENT)
                .with_field("clientID", &inner.instance.client_id)
                .with_field("consumerGroup", &inner.config.group);
            let _ = inner.instance.invoke(&addr, req).await;
        }
        inner.instance.close();
    }
}

impl Inner {
    fn consumer_data(&self) -> ConsumerData {
        let version = self.sub_version.load(Ordering::Relaxed);
        ConsumerData {
            group_name: self.config.group.clone(),
            consume_type: "CONSUME_PASSIVELY".into(),
            message_model: match self.config.model {
                MessageModel::Clustering => "CLUSTERING",
                MessageModel::Broadcasting => "BROADCASTING",
            }
            .into(),
            consume_from_where: match self.config.from {
                ConsumeFrom::LastOffset => "CONSUME_FROM_LAST_OFFSET",
                ConsumeFrom::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
                ConsumeFrom::Timestamp(_) => "CONSUME_FROM_TIMESTAMP",
            }
            .into(),
            subscription_data_set: self
                .subscriptions
                .iter()
                .map(|(t, s)| s.subscription_data(t, version))
                .collect(),
            unit_mode: false,
        }
    }

    fn max_reconsume(&self) -> i32 {
        self.config
            .max_reconsume_times
            .unwrap_or(if self.config.orderly { i32::MAX } else { 16 })
    }

    async fn broker_addrs(&self) -> Vec<String> {
        let mut addrs = HashSet::new();
        for topic in self.subscriptions.keys() {
            if let Ok(Some(route)) = self.instance.route(topic).await {
                for b in &route.broker_datas {
                    if let Some(a) = b.broker_addrs.get(&0) {
                        addrs.insert(a.clone());
                    }
                }
            }
        }
        addrs.into_iter().collect()
    }

    async fn rebalance_loop(self: Arc<Self>) {
        loop {
            self.rebalance().await;
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(REBALANCE_INTERVAL) => {}
                _ = self.rebalance_now.notified() => {}
            }
        }
    }

    async fn rebalance(self: &Arc<Self>) {
        let mut changed = false;
        // The group's members as each broker listed them in this pass: a group of many topics
        // on one broker asks it once, not once per topic.
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for (topic, selector) in &self.subscriptions {
            let route = match self.instance.fetch_route(topic).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    debug!(topic = %topic, error = %e, "route lookup failed during rebalance");
                    continue;
                }
            };
            let mut all = route_queues(topic, &route, false);
            all.sort();
            let mine: Vec<MessageQueue> = match self.config.model {
                MessageModel::Broadcasting => all,
                MessageModel::Clustering => {
                    let Some(ids) = self.consumer_ids(&route, &mut members).await else {
                        continue;
                    };
                    allocate_averagely(&self.instance.client_id, &ids, &all)
                }
            };
            let wanted: HashSet<MessageQueue> = mine.into_iter().collect();
            let current: Vec<MessageQueue> = self
                .queues
                .lock()
                .expect("queue table lock")
                .keys()
                .filter(|q| &q.topic == topic)
                .cloned()
                .collect();
            for mq in current.iter().filter(|q| !wanted.contains(q)) {
                changed = true;
                let state = self.queues.lock().expect("queue table lock").remove(mq);
                if let Some(s) = state {
                    s.stop.cancel();
                    self.commit(mq, &s.progress, false).await;
                    if self.config.orderly {
                        self.lock_request(request::UNLOCK_BATCH_MQ, std::slice::from_ref(mq))
                            .await;
                    }
                }
            }
            for mq in wanted.into_iter().filter(|q| !current.contains(q)) {
                if self.start_queue(mq.clone(), selector.clone(), &route).await {
                    changed = true;
                }
            }
        }
        if changed {
            self.sub_version.store(now_ms(), Ordering::Relaxed);
            self.instance.set_consumer(self.consumer_data());
        }
    }

    /// The group's members, from the first of the route's masters that lists them; `known`
    /// keeps each broker's answer for the rest of the rebalance pass.
    async fn consumer_ids(
        &self,
        route: &ferromq_protocol::body::TopicRouteData,
        known: &mut HashMap<String, Vec<String>>,
    ) -> Option<Vec<String>> {
        for b in &route.broker_datas {
            let Some(addr) = b.broker_addrs.get(&0) else {
                continue;
            };
            if let Some(ids) = known.get(addr) {
                return Some(ids.clone());
            }
            let req = RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
                .with_field("consumerGroup", &self.config.group);
            match self.instance.invoke(addr, req).await {
                Ok(resp) if resp.code == response::SUCCESS => {
                    let mut list: ConsumerIdList = serde_json::from_slice(&resp.body).ok()?;
                    list.consumer_id_list.sort();
                    // A client connected twice is listed twice by some brokers.
                    list.consumer_id_list.dedup();
                    known.insert(addr.clone(), list.consumer_id_list.clone());
                    return Some(list.consumer_id_list);
                }
                Ok(_) => {
                    // The broker has not seen our heartbeat yet.
                    self.instance.heartbeat_all().await;
                }
                Err(e) => debug!(error = %e, "asking for the group's consumers failed"),
            }
        }
        None
    }

    /// Starts pulling a newly assigned queue; false when it cannot be taken now.
    async fn start_queue(
        self: &Arc<Self>,
        mq: MessageQueue,
        selector: Selector,
        route: &ferromq_protocol::body::TopicRouteData,
    ) -> bool {
        let Some(addr) = ClientInstance::master_addr(route, &mq.broker_name) else {
            return false;
        };
        let progress = Arc::new(Progress::default());
        if self.config.orderly && self.config.model == MessageModel::Clustering {
            if !self
                .lock_request(request::LOCK_BATCH_MQ, std::slice::from_ref(&mq))
                .await
                .contains(&mq)
            {
                return false;
            }
            progress.locked.store(true, Ordering::Release);
        }
        let Some(offset) = self.start_offset(&mq, &addr).await else {
            return false;
        };
        progress.next_pull.store(offset, Ordering::Release);
        progress.committed.store(offset, Ordering::Release);
        let stop = self.stop.child_token();
        self.queues.lock().expect("queue table lock").insert(
            mq.clone(),
            QueueState {
                stop: stop.clone(),
                progress: progress.clone(),
            },
        );
        let me = self.clone();
        self.tasks
            .spawn(async move { me.pull_loop(mq, selector, progress, stop).await });
        true
    }

    async fn start_offset(&self, mq: &MessageQueue, addr: &str) -> Option<i64> {
        if self.config.model == MessageModel::Broadcasting {
            if let Some(o) = self
                .local_offsets
                .lock()
                .expect("local offsets lock")
                .get(mq)
            {
                return Some(*o);
            }
        } else {
            let req = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
                .with_field("consumerGroup", &self.config.group)
                .with_field("topic", &mq.topic)
                .with_field("queueId", mq.queue_id);
            match self.instance.invoke(addr, req).await {
                Ok(resp) if resp.code == response::SUCCESS => {
                    return resp.field("offset").and_then(|o| o.parse().ok())
                }
                Ok(resp) if resp.code == response::QUERY_NOT_FOUND => {}
                Ok(resp) => {
                    warn!(queue = ?mq, code = resp.code, "querying the committed offset failed");
                    return None;
                }
                Err(e) => {
                    warn!(queue = ?mq, error = %e, "querying the committed offset failed");
                    return None;
                }
            }
        }
        if mq.topic.starts_with("%RETRY%") {
            return Some(0);
        }
        let (code, field, extra) = match self.config.from {
            ConsumeFrom::FirstOffset => return Some(0),
            ConsumeFrom::LastOffset => (request::GET_MAX_OFFSET, "offset", None),
            ConsumeFrom::Timestamp(ts) => (request::SEARCH_OFFSET_BY_TIMESTAMP, "offset", Some(ts)),
        };
        let mut req = RemotingCommand::request(code)
            .with_field("topic", &mq.topic)
            .with_field("queueId", mq.queue_id);
        if let Some(ts) = extra {
            req = req.with_field("timestamp", ts);
        }
        let resp = self.instance.invoke(addr, req).await.ok()?;
        resp.field(field).and_then(|o| o.parse().ok())
    }

    async fn pull_loop(
        self: Arc<Self>,
        mq: MessageQueue,
        selector: Selector,
        progress: Arc<Progress>,
        stop: CancellationToken,
    ) {
        while !stop.is_cancelled() {
            let unfinished = progress.in_flight.lock().expect("in-flight lock").len();
            if unfinished >= self.config.threshold_messages
                || progress.bytes.load(Ordering::Acquire) >= self.config.threshold_bytes
            {
                tokio::select! { _ = stop.cancelled() => break, _ = tokio::time::sleep(FLOW_CONTROL_PAUSE) => {} }
                continue;
            }
            if self.config.orderly
                && self.config.model == MessageModel::Clustering
                && !progress.locked.load(Ordering::Acquire)
            {
                tokio::select! { _ = stop.cancelled() => break, _ = tokio::time::sleep(SUSPEND_PAUSE) => {} }
                continue;
            }
            let outcome = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.pull_once(&mq, &selector, &progress) => r,
            };
            match outcome {
                Ok(msgs) if msgs.is_empty() => {}
                Ok(msgs) => {
                    if self.config.orderly {
                        self.consume_orderly(&mq, msgs, &progress, &stop).await;
                    } else {
                        self.dispatch_concurrently(&mq, msgs, &progress).await;
                        // Let handlers that finish at once do so, so that the next pull
                        // carries their commit and the broker holds an up-to-date offset
                        // without a separate UPDATE_CONSUMER_OFFSET for this batch.
                        tokio::task::yield_now().await;
                    }
                }
                Err(e) => {
                    debug!(queue = ?mq, error = %e, "pull failed; backing off");
                    tokio::select! { _ = stop.cancelled() => break, _ = tokio::time::sleep(PULL_ERROR_BACKOFF) => {} }
                }
            }
        }
    }

    async fn pull_once(
        &self,
        mq: &MessageQueue,
        selector: &Selector,
        progress: &Progress,
    ) -> Result<Vec<MessageExt>> {
        let route = self
            .instance
            .route(&mq.topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: mq.topic.clone(),
            })?;
        let addr = ClientInstance::master_addr(&route, &mq.broker_name).ok_or_else(|| {
            ClientError::NoRoute {
                topic: mq.topic.clone(),
            }
        })?;
        let offset = progress.next_pull.load(Ordering::Acquire);
        let commit = progress.commit_offset();
        let mut flag = FLAG_SUSPEND | FLAG_SUBSCRIPTION;
        if self.config.model == MessageModel::Clustering && commit > 0 {
            flag |= FLAG_COMMIT_OFFSET;
        }
        let mut req = RemotingCommand::request(request::PULL_MESSAGE);
        PullMessageRequestHeader {
            consumer_group: self.config.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            queue_offset: offset,
            max_msg_nums: self.config.pull_batch,
            sys_flag: flag,
            commit_offset: commit,
            suspend_timeout_millis: PULL_SUSPEND.as_millis() as i64,
            subscription: Some(selector.expression().to_string()),
            sub_version: self.sub_version.load(Ordering::Relaxed),
            expression_type: Some(selector.expression_type().into()),
            max_msg_bytes: None,
        }
        .encode(&mut req.ext_fields);
        let carries = flag & FLAG_COMMIT_OFFSET != 0;
        if carries {
            progress.carried.store(commit, Ordering::Release);
        }
        let resp = self
            .instance
            .invoke_timeout(&addr, req, PULL_CALL_TIMEOUT)
            .await;
        progress.carried.store(0, Ordering::Release);
        let resp = resp?;
        if carries
            && matches!(
                resp.code,
                response::SUCCESS
                    | response::PULL_NOT_FOUND
                    | response::PULL_RETRY_IMMEDIATELY
                    | response::PULL_OFFSET_MOVED
            )
        {
            // The broker took the pull, and with it the commit offset.
            progress.committed.fetch_max(commit, Ordering::AcqRel);
        }
        let h = PullMessageResponseHeader::decode(&resp.ext_fields);
        match (resp.code, h) {
            (response::SUCCESS, Ok(h)) => {
                let msgs =
                    MessageExt::decode_all(&resp.body).map_err(|e| ClientError::Malformed {
                        operation: "PULL_MESSAGE",
                        reason: e.to_string(),
                    })?;
                progress
                    .next_pull
                    .store(h.next_begin_offset, Ordering::Release);
                Ok(msgs
                    .into_iter()
                    .filter(|m| selector.accepts(property(&m.properties, message::property::TAGS)))
                    .map(restore_retry_topic)
                    .map(decompress)
                    .collect())
            }
            (response::PULL_NOT_FOUND | response::PULL_RETRY_IMMEDIATELY, Ok(h)) => {
                progress
                    .next_pull
                    .store(h.next_begin_offset, Ordering::Release);
                Ok(Vec::new())
            }
            (response::PULL_OFFSET_MOVED, Ok(h)) => {
                warn!(queue = ?mq, from = offset, to = h.next_begin_offset, "offset moved by the broker");
                progress
                    .next_pull
                    .store(h.next_begin_offset, Ordering::Release);
                Ok(Vec::new())
            }
            (code, _) => Err(ClientError::Broker {
                operation: "PULL_MESSAGE",
                addr,
                code,
                remark: resp.remark.unwrap_or_default(),
            }),
        }
    }

    async fn dispatch_concurrently(
        self: &Arc<Self>,
        mq: &MessageQueue,
        msgs: Vec<MessageExt>,
        progress: &Arc<Progress>,
    ) {
        {
            let mut in_flight = progress.in_flight.lock().expect("in-flight lock");
            for m in &msgs {
                in_flight.insert(m.queue_offset, m.body.len());
                progress.bytes.fetch_add(m.body.len(), Ordering::AcqRel);
            }
        }
        let mut rest = msgs;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(self.config.batch_size));
            let batch = std::mem::replace(&mut rest, tail);
            let Ok(permit) = self.semaphore.clone().acquire_owned().await else {
                return;
            };
            let me = self.clone();
            let mq = mq.clone();
            let progress = progress.clone();
            self.handlers.spawn(async move {
                me.consume_concurrently(&mq, batch, &progress).await;
                drop(permit);
            });
        }
    }

    async fn consume_concurrently(
        &self,
        mq: &MessageQueue,
        batch: Vec<MessageExt>,
        progress: &Progress,
    ) {
        let done: Vec<(i64, usize)> = batch
            .iter()
            .map(|m| (m.queue_offset, m.body.len()))
            .collect();
        let mut pending = batch;
        loop {
            let result = (self.handler)(pending.clone()).await;
            if result == ConsumeResult::Success || self.config.model == MessageModel::Broadcasting {
                break;
            }
            // Retry through the broker; a message it would not take is retried here.
            let mut failed = Vec::new();
            for m in pending {
                if !self.send_back(mq, &m, 0).await {
                    failed.push(m);
                }
            }
            if failed.is_empty() || self.stop.is_cancelled() {
                break;
            }
            tokio::time::sleep(SEND_BACK_RETRY_PAUSE).await;
            pending = failed;
        }
        let mut in_flight = progress.in_flight.lock().expect("in-flight lock");
        for (offset, bytes) in done {
            if in_flight.remove(&offset).is_some() {
                progress.bytes.fetch_sub(bytes, Ordering::AcqRel);
            }
        }
    }

    async fn consume_orderly(
        &self,
        mq: &MessageQueue,
        msgs: Vec<MessageExt>,
        progress: &Progress,
        stop: &CancellationToken,
    ) {
        let mut rest = msgs;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(self.config.batch_size));
            let batch = std::mem::replace(&mut rest, tail);
            let mut attempts = 0;
            loop {
                if stop.is_cancelled() {
                    // Not finished: the next owner gets these from the committed offset.
                    progress
                        .next_pull
                        .store(batch[0].queue_offset, Ordering::Release);
                    return;
                }
                attempts += 1;
                let result = (self.handler)(batch.clone()).await;
                if result == ConsumeResult::Success {
                    break;
                }
                if attempts > self.max_reconsume() {
                    for m in &batch {
                        self.send_back(mq, m, -1).await;
                    }
                    break;
                }
                tokio::select! { _ = stop.cancelled() => {}, _ = tokio::time::sleep(SUSPEND_PAUSE) => {} }
            }
            let last = batch.last().expect("non-empty batch").queue_offset;
            progress.next_pull.fetch_max(last + 1, Ordering::AcqRel);
        }
    }

    /// Sends a failed message back for a later retry (or to the DLQ with level -1).
    async fn send_back(&self, mq: &MessageQueue, m: &MessageExt, delay_level: i32) -> bool {
        let Ok(Some(route)) = self.instance.route(&mq.topic).await else {
            return false;
        };
        let Some(addr) = ClientInstance::master_addr(&route, &mq.broker_name) else {
            return false;
        };
        let req = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
            .with_field("offset", m.commit_log_offset)
            .with_field("group", &self.config.group)
            .with_field("delayLevel", delay_level)
            .with_field("originMsgId", m.offset_msg_id())
            .with_field("originTopic", &m.topic)
            .with_field("maxReconsumeTimes", self.max_reconsume().min(i32::MAX - 1));
        matches!(self.instance.invoke(&addr, req).await, Ok(r) if r.code == response::SUCCESS)
    }

    /// Sends the queue's commit offset unless the broker has it. `carried_counts`: a pull in
    /// flight that carries the offset is as good as a commit (not when the queue is let go
    /// or the consumer stops, as the pull may be dropped before it is sent).
    async fn commit(&self, mq: &MessageQueue, progress: &Progress, carried_counts: bool) {
        let offset = progress.commit_offset();
        if self.config.model == MessageModel::Broadcasting {
            self.local_offsets
                .lock()
                .expect("local offsets lock")
                .insert(mq.clone(), offset);
            return;
        }
        if progress.committed.load(Ordering::Acquire) == offset
            || (carried_counts && progress.carried.load(Ordering::Acquire) == offset)
        {
            return;
        }
        let Ok(Some(route)) = self.instance.route(&mq.topic).await else {
            return;
        };
        let Some(addr) = ClientInstance::master_addr(&route, &mq.broker_name) else {
            return;
        };
        let req = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_field("consumerGroup", &self.config.group)
            .with_field("topic", &mq.topic)
            .with_field("queueId", mq.queue_id)
            .with_field("commitOffset", offset);
        if matches!(self.instance.invoke(&addr, req).await, Ok(r) if r.code == response::SUCCESS) {
            progress.committed.store(offset, Ordering::Release);
        }
    }

    async fn persist_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(OFFSET_PERSIST_INTERVAL) => {}
            }
            let states: Vec<(MessageQueue, Arc<Progress>)> = self
                .queues
                .lock()
                .expect("queue table lock")
                .iter()
                .map(|(q, s)| (q.clone(), s.progress.clone()))
                .collect();
            for (mq, p) in states {
                self.commit(&mq, &p, true).await;
            }
        }
    }

    async fn lock_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(LOCK_RENEW_INTERVAL) => {}
            }
            let states: Vec<(MessageQueue, Arc<Progress>)> = self
                .queues
                .lock()
                .expect("queue table lock")
                .iter()
                .map(|(q, s)| (q.clone(), s.progress.clone()))
                .collect();
            let mqs: Vec<MessageQueue> = states.iter().map(|(q, _)| q.clone()).collect();
            let granted = self.lock_request(request::LOCK_BATCH_MQ, &mqs).await;
            for (mq, p) in states {
                p.locked.store(granted.contains(&mq), Ordering::Release);
            }
        }
    }

    /// LOCK_BATCH_MQ or UNLOCK_BATCH_MQ for queues, per broker. Returns the locked ones.
    async fn lock_request(&self, code: i32, mqs: &[MessageQueue]) -> HashSet<MessageQueue> {
        let mut by_broker: HashMap<String, Vec<MessageQueue>> = HashMap::new();
        for mq in mqs {
            by_broker
                .entry(mq.broker_name.clone())
                .or_default()
                .push(mq.clone());
        }
        let mut granted = HashSet::new();
        for (broker, qs) in by_broker {
            let Ok(Some(route)) = self.instance.route(&qs[0].topic).await else {
                continue;
            };
            let Some(addr) = ClientInstance::master_addr(&route, &broker) else {
                continue;
            };
            let body = LockBatchRequestBody {
                consumer_group: self.config.group.clone(),
                client_id: self.instance.client_id.clone(),
                only_this_broker: false,
                mq_set: qs,
            };
            let req = RemotingCommand::request(code)
                .with_body(serde_json::to_vec(&body).expect("lock body serializes"));
            if let Ok(resp) = self.instance.invoke(&addr, req).await {
                if let Ok(r) = serde_json::from_slice::<LockBatchResponseBody>(&resp.body) {
                    granted.extend(r.lock_ok_mq_set);
                }
            }
        }
        granted
    }

    /// The broker reset this group's offsets on a topic: drop the topic's queues without
    /// committing, and take them again from the reset offsets.
    fn reset(self: &Arc<Self>, topic: &str, _body: &str) {
        let dropped: Vec<QueueState> = {
            let mut queues = self.queues.lock().expect("queue table lock");
            let keys: Vec<MessageQueue> = queues
                .keys()
                .filter(|q| q.topic == topic)
                .cloned()
                .collect();
            keys.iter().filter_map(|k| queues.remove(k)).collect()
        };
        for s in dropped {
            s.stop.cancel();
            s.progress.in_flight.lock().expect("in-flight lock").clear();
        }
        self.local_offsets
            .lock()
            .expect("local offsets lock")
            .retain(|q, _| q.topic != topic);
        self.rebalance_now.notify_one();
    }
}

/// Messages from a retry topic are shown with their original topic.
fn restore_retry_topic(mut m: MessageExt) -> MessageExt {
    if m.topic.starts_with("%RETRY%") {
        if let Some(t) = property(&m.properties, message::property::RETRY_TOPIC) {
            m.topic = t.to_string();
        }
    }
    m
}

fn decompress(mut m: MessageExt) -> MessageExt {
    if m.sys_flag & message::sys_flag::COMPRESSED != 0 {
        if let Ok(out) = crate::message::inflate(&m.body) {
            m.body = out.into();
            m.sys_flag &= !message::sys_flag::COMPRESSED;
        }
    }
    m
}
