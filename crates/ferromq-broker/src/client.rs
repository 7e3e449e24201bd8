//! Producer and consumer connections by group, learned from heartbeats (`ProducerManager`
//! and `ConsumerManager` in Apache). The Go client never unregisters, so a closed
//! connection removes its client at once, and silence for `CHANNEL_EXPIRY` does too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_protocol::body::{ConsumerData, SubscriptionData};
use ferromq_protocol::LanguageCode;
use ferromq_remoting::Connection;

use crate::filter::{FilterError, MessageFilter};

/// A client silent this long is dropped (Apache `channelExpiredTimeout`).
pub const CHANNEL_EXPIRY: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct ClientChannel {
    pub conn: Connection,
    pub client_id: String,
    pub language: LanguageCode,
    pub version: i32,
    pub last_heartbeat: Instant,
}

/// A registered subscription and its filter, compiled once per subscription version.
struct Subscription {
    data: SubscriptionData,
    filter: Result<Arc<MessageFilter>, FilterError>,
}

impl Subscription {
    fn new(data: SubscriptionData) -> Self {
        let filter = MessageFilter::compile(&data.expression_type, &data.sub_string).map(Arc::new);
        Subscription { data, filter }
    }
}

#[derive(Default)]
struct ConsumerGroupInfo {
    channels: HashMap<u64, ClientChannel>,
    subscriptions: HashMap<String, Subscription>,
    consume_type: String,
    message_model: String,
    consume_from_where: String,
}

/// What a group's consumers told the broker about themselves.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroupSettings {
    pub consume_type: String,
    pub message_model: String,
    pub consume_from_where: String,
}

/// Another front (the gRPC front) through which the broker reaches that front's clients:
/// transaction check-backs and thread stacks travel over its streams, not over remoting.
pub trait ClientFront: Send + Sync {
    /// Whether a producer of this group is connected.
    fn has_producer(&self, group: &str) -> bool;
    /// Asks one of the group's producers about `message` (restored to its real topic); it
    /// answers with an end-transaction naming `transaction_id`.
    fn check_transaction(
        &self,
        group: &str,
        message: ferromq_protocol::message::MessageExt,
        transaction_id: String,
    );
    /// Asks a client of this front for its thread stacks; `None` when it is not this
    /// front's client (or not connected).
    fn thread_stack(
        &self,
        client_id: &str,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<String, String>>>;
    /// Has a client of this front consume `message` now (VerifyMessageCommand); the answer
    /// is Apache's consume result (`CR_SUCCESS`, `CR_LATER`, `CR_RETURN_NULL`).
    fn verify_message(
        &self,
        client_id: &str,
        message: ferromq_protocol::message::MessageExt,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<&'static str, String>>>;
}

/// A client of another front (the gRPC front's 5.x clients), listed beside the remoting
/// clients so that `consumerConnection`, `producerConnection` and the dashboards show it.
#[derive(Clone, Debug)]
pub struct FrontClient {
    pub client_id: String,
    pub addr: String,
    /// Apache's `LanguageCode` name (JAVA, GO, PYTHON, HTTP for Node.js, …).
    pub language: String,
    pub version: String,
    pub role: FrontClientRole,
}

#[derive(Clone, Debug)]
pub enum FrontClientRole {
    /// A producer: Apache's proxy registers it under each topic as its producer group.
    Producer { topics: Vec<String> },
    Consumer {
        group: String,
        subscriptions: Vec<SubscriptionData>,
        /// Apache's consume type: CONSUME_PASSIVELY for push, CONSUME_ACTIVELY for simple.
        consume_type: &'static str,
    },
}

#[derive(Default)]
pub struct ClientManager {
    front_clients: Mutex<HashMap<String, FrontClient>>,
    producers: Mutex<HashMap<String, HashMap<u64, ClientChannel>>>,
    consumers: Mutex<HashMap<String, ConsumerGroupInfo>>,
    /// The groups subscribed to each topic, built from `consumers` when asked for and
    /// dropped when a group or a subscription comes or goes: "who consumes this topic",
    /// asked for each of thousands of topics, then costs a lookup, not a walk over every
    /// group. Locked after `consumers`.
    subscribers: Mutex<Option<HashMap<String, Vec<String>>>>,
    /// Request-reply: the connection each requester (by client id) last sent a request
    /// message over, so a reply reaches it before its first heartbeat does.
    requesters: Mutex<HashMap<String, Connection>>,
}

/// Requesters remembered at most; closed connections are dropped first when it is full.
const MAX_REQUESTERS: usize = 65_536;

impl ClientManager {
    pub fn register_producer(&self, group: &str, channel: ClientChannel) {
        let mut p = self.producers.lock().expect("producer table lock");
        p.entry(group.to_string())
            .or_default()
            .insert(channel.conn.id(), channel);
    }

    /// Registers a consumer's heartbeat. Returns whether the group's membership or its
    /// subscribed topics changed (members must then rebalance).
    pub fn register_consumer(&self, data: &ConsumerData, channel: ClientChannel) -> bool {
        let mut c = self.consumers.lock().expect("consumer table lock");
        let new_group = !c.contains_key(&data.group_name);
        let info = c.entry(data.group_name.clone()).or_default();
        let new_member = !info.channels.contains_key(&channel.conn.id());
        info.channels.insert(channel.conn.id(), channel);
        info.consume_type = data.consume_type.clone();
        info.message_model = data.message_model.clone();
        info.consume_from_where = data.consume_from_where.clone();
        let mut topics_changed = false;
        for sub in &data.subscription_data_set {
            let unchanged = info.subscriptions.get(&sub.topic).map(|old| {
                old.data.sub_version >= sub.sub_version
                    && old.data.sub_string == sub.sub_string
                    && old.data.expression_type == sub.expression_type
            });
            match unchanged {
                Some(true) => {}
                Some(false) => {
                    info.subscriptions
                        .insert(sub.topic.clone(), Subscription::new(sub.clone()));
                }
                None => {
                    topics_changed = true;
                    info.subscriptions
                        .insert(sub.topic.clone(), Subscription::new(sub.clone()));
                }
            }
        }
        // As Apache's `updateSubscription`: the heartbeat carries the whole subscription, so
        // a topic it no longer names is unsubscribed (Apache's 5.x client drops its POP retry
        // topic so when a PULL assignment turns into POP).
        let before = info.subscriptions.len();
        info.subscriptions.retain(|topic, _| {
            data.subscription_data_set
                .iter()
                .any(|sub| sub.topic == *topic)
        });
        topics_changed |= info.subscriptions.len() != before;
        if new_group || topics_changed {
            self.forget_subscribers();
        }
        new_member || topics_changed
    }

    /// Called with the consumer table locked, after a group or subscription changed.
    fn forget_subscribers(&self) {
        *self.subscribers.lock().expect("subscriber index lock") = None;
    }

    /// Removes one client from one group (UNREGISTER_CLIENT). Returns whether a consumer
    /// group lost a member.
    pub fn unregister(
        &self,
        conn_id: u64,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> bool {
        if let Some(g) = producer_group {
            if let Some(m) = self
                .producers
                .lock()
                .expect("producer table lock")
                .get_mut(g)
            {
                m.remove(&conn_id);
            }
        }
        let Some(g) = consumer_group else {
            return false;
        };
        let mut c = self.consumers.lock().expect("consumer table lock");
        let Some(info) = c.get_mut(g) else {
            return false;
        };
        let removed = info.channels.remove(&conn_id).is_some();
        if info.channels.is_empty() {
            c.remove(g);
            self.forget_subscribers();
        }
        removed
    }

    /// Forgets a closed connection everywhere. Returns the consumer groups it left.
    pub fn connection_closed(&self, conn_id: u64) -> Vec<String> {
        {
            let mut p = self.producers.lock().expect("producer table lock");
            for m in p.values_mut() {
                m.remove(&conn_id);
            }
            p.retain(|_, m| !m.is_empty());
        }
        self.requesters
            .lock()
            .expect("requester table lock")
            .retain(|_, c| c.id() != conn_id);
        let mut c = self.consumers.lock().expect("consumer table lock");
        let groups: Vec<String> = c
            .iter_mut()
            .filter_map(|(g, info)| info.channels.remove(&conn_id).map(|_| g.clone()))
            .collect();
        let before = c.len();
        c.retain(|_, info| !info.channels.is_empty());
        if c.len() != before {
            self.forget_subscribers();
        }
        groups
    }

    /// Connections whose last heartbeat is older than `expiry`.
    pub fn expired(&self, expiry: Duration) -> Vec<Connection> {
        let now = Instant::now();
        let mut out: Vec<Connection> = Vec::new();
        let stale = |ch: &ClientChannel| now.duration_since(ch.last_heartbeat) > expiry;
        for m in self.producers.lock().expect("producer table lock").values() {
            out.extend(m.values().filter(|c| stale(c)).map(|c| c.conn.clone()));
        }
        for info in self.consumers.lock().expect("consumer table lock").values() {
            out.extend(
                info.channels
                    .values()
                    .filter(|c| stale(c))
                    .map(|c| c.conn.clone()),
            );
        }
        out.sort_by_key(|c| c.id());
        out.dedup();
        out
    }

    /// Client ids of a group's live consumers, sorted.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .consumer_channels(group)
            .into_iter()
            .map(|ch| ch.client_id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn consumer_connections(&self, group: &str) -> Vec<Connection> {
        self.consumer_channels(group)
            .into_iter()
            .map(|ch| ch.conn)
            .collect()
    }

    /// Live consumer channels of a group.
    pub fn consumer_channels(&self, group: &str) -> Vec<ClientChannel> {
        let c = self.consumers.lock().expect("consumer table lock");
        c.get(group)
            .map(|i| i.channels.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The subscription a group registered for a topic.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        let c = self.consumers.lock().expect("consumer table lock");
        c.get(group)
            .and_then(|i| i.subscriptions.get(topic).map(|s| s.data.clone()))
    }

    /// The groups whose live consumers subscribe to `topic`.
    pub fn groups_subscribed_to(&self, topic: &str) -> Vec<String> {
        let c = self.consumers.lock().expect("consumer table lock");
        let mut index = self.subscribers.lock().expect("subscriber index lock");
        let index = index.get_or_insert_with(|| {
            let mut by_topic: HashMap<String, Vec<String>> = HashMap::new();
            for (group, info) in c.iter() {
                for topic in info.subscriptions.keys() {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push(group.clone());
                }
            }
            by_topic
        });
        index.get(topic).cloned().unwrap_or_default()
    }

    /// Every subscription of a group.
    pub fn subscriptions(&self, group: &str) -> Vec<SubscriptionData> {
        let c = self.consumers.lock().expect("consumer table lock");
        c.get(group)
            .map(|i| i.subscriptions.values().map(|s| s.data.clone()).collect())
            .unwrap_or_default()
    }

    /// The compiled filter of a group's subscription to a topic.
    pub fn filter(
        &self,
        group: &str,
        topic: &str,
    ) -> Option<Result<Arc<MessageFilter>, FilterError>> {
        let c = self.consumers.lock().expect("consumer table lock");
        c.get(group)
            .and_then(|i| i.subscriptions.get(topic).map(|s| s.filter.clone()))
    }

    /// Live producer channels of a group.
    /// Registers (or updates) another front's client.
    pub fn upsert_front_client(&self, client: FrontClient) {
        self.front_clients
            .lock()
            .expect("front clients lock")
            .insert(client.client_id.clone(), client);
    }

    pub fn remove_front_client(&self, client_id: &str) {
        self.front_clients
            .lock()
            .expect("front clients lock")
            .remove(client_id);
    }

    /// Other fronts' consumers in `group`.
    pub fn front_consumers(&self, group: &str) -> Vec<FrontClient> {
        let map = self.front_clients.lock().expect("front clients lock");
        map.values()
            .filter(|c| matches!(&c.role, FrontClientRole::Consumer { group: g, .. } if g == group))
            .cloned()
            .collect()
    }

    /// Other fronts' producers of `group` (a topic, for gRPC producers).
    pub fn front_producers(&self, group: &str) -> Vec<FrontClient> {
        let map = self.front_clients.lock().expect("front clients lock");
        map.values()
            .filter(|c| matches!(&c.role, FrontClientRole::Producer { topics } if topics.iter().any(|t| t == group)))
            .cloned()
            .collect()
    }

    pub fn producer_channels(&self, group: &str) -> Vec<ClientChannel> {
        let p = self.producers.lock().expect("producer table lock");
        p.get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Notes that `client_id` sent a request message over `conn` (request-reply).
    pub fn note_requester(&self, client_id: &str, conn: &Connection) {
        let mut r = self.requesters.lock().expect("requester table lock");
        if r.get(client_id).is_some_and(|c| c.id() == conn.id()) {
            return;
        }
        if r.len() >= MAX_REQUESTERS {
            r.retain(|_, c| !c.is_closed());
            if r.len() >= MAX_REQUESTERS {
                return;
            }
        }
        r.insert(client_id.to_string(), conn.clone());
    }

    /// The open connection of the client with this id: a producer's from its heartbeats
    /// (Apache's `ProducerManager.findChannel`), else the one it last sent a request over.
    pub fn find_producer(&self, client_id: &str) -> Option<Connection> {
        let by_heartbeat = {
            let p = self.producers.lock().expect("producer table lock");
            p.values()
                .flat_map(HashMap::values)
                .filter(|c| c.client_id == client_id && !c.conn.is_closed())
                .max_by_key(|c| c.last_heartbeat)
                .map(|c| c.conn.clone())
        };
        by_heartbeat.or_else(|| {
            self.requesters
                .lock()
                .expect("requester table lock")
                .get(client_id)
                .filter(|c| !c.is_closed())
                .cloned()
        })
    }

    /// Producer connections counted by (language, version), for the metrics.
    pub fn producer_connection_counts(&self) -> HashMap<(LanguageCode, i32), u64> {
        let mut counts = HashMap::new();
        for channels in self.producers.lock().expect("producer table lock").values() {
            for c in channels.values() {
                *counts.entry((c.language, c.version)).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Consumer connections counted by (group, language, version, consume type), for
    /// the metrics.
    pub fn consumer_connection_counts(&self) -> HashMap<(String, LanguageCode, i32, String), u64> {
        let mut counts = HashMap::new();
        for (group, info) in self.consumers.lock().expect("consumer table lock").iter() {
            for c in info.channels.values() {
                *counts
                    .entry((
                        group.clone(),
                        c.language,
                        c.version,
                        info.consume_type.clone(),
                    ))
                    .or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn producer_groups(&self) -> Vec<String> {
        self.producers
            .lock()
            .expect("producer table lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Groups with a live consumer on any front.
    pub fn consumer_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .consumers
            .lock()
            .expect("consumer table lock")
            .keys()
            .cloned()
            .collect();
        let front = self.front_clients.lock().expect("front clients lock");
        groups.extend(front.values().filter_map(|c| match &c.role {
            FrontClientRole::Consumer { group, .. } => Some(group.clone()),
            FrontClientRole::Producer { .. } => None,
        }));
        groups.sort();
        groups.dedup();
        groups
    }

    pub fn settings(&self, group: &str) -> Option<ConsumerGroupSettings> {
        self.consumers
            .lock()
            .expect("consumer table lock")
            .get(group)
            .map(|i| ConsumerGroupSettings {
                consume_type: i.consume_type.clone(),
                message_model: i.message_model.clone(),
                consume_from_where: i.consume_from_where.clone(),
            })
    }
}
