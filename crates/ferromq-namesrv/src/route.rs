//! The route table. One std mutex: every operation is short and never awaits, and none
//! walks every topic: a broker's registration or departure costs O(its own topics).
//!
//! A registration adds and updates the topics it carries (Apache's rule, so increments and
//! Apache brokers' split registrations work); only a body marked as the broker's whole
//! table (FerroMQ brokers' `ferromqWholeTable`) also drops the broker's topics missing from it.
//! A registration whose version the name server already has changes no route an operator
//! changed (a wiped write permission), whatever kind of registration recorded it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferromq_protocol::body::{
    perm, BrokerData, ClusterInfo, DataVersion, QueueData, RegisterBrokerBody, TopicRouteData,
};
use ferromq_protocol::header::RegisterBrokerRequestHeader;
use tracing::{info, warn};

struct LiveBroker {
    broker_name: String,
    cluster: String,
    broker_id: i64,
    last_update: Instant,
    timeout: Option<Duration>,
    connection_id: u64,
    /// Where its slaves replicate from (`haServerAddr`).
    ha_server_addr: String,
}

/// What a slave learns from registering: its master's remoting and HA addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterOfGroup {
    pub addr: String,
    pub ha_server_addr: String,
}

#[derive(Default)]
struct Tables {
    /// topic → brokerName → queue data
    topic_queues: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// brokerName → the topics it has queues of (the index of `topic_queues` by broker)
    topics_of_broker: HashMap<String, HashSet<String>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// brokerAddr → liveness
    live: HashMap<String, LiveBroker>,
    /// brokerAddr → the topic table version its master last registered: a registration
    /// with the same version leaves the routes as they are, so a write permission wiped by
    /// an operator stays wiped until the broker's topics change (Apache's behaviour).
    versions: HashMap<String, DataVersion>,
}

impl Tables {
    fn put_queues(&mut self, topic: &str, queues: QueueData) {
        self.topics_of_broker
            .entry(queues.broker_name.clone())
            .or_default()
            .insert(topic.to_string());
        self.topic_queues
            .entry(topic.to_string())
            .or_default()
            .insert(queues.broker_name.clone(), queues);
    }

    /// Whether the broker's queues of `topic` are as `carried` says, but for the permission.
    fn has_queues_like(&self, topic: &str, carried: &QueueData) -> bool {
        self.topic_queues
            .get(topic)
            .and_then(|q| q.get(&carried.broker_name))
            .is_some_and(|held| {
                QueueData {
                    perm: carried.perm,
                    ..held.clone()
                } == *carried
            })
    }

    /// A whole table names every topic the broker has: the others are gone from it.
    fn drop_topics_missing_from<V>(&mut self, broker_name: &str, table: &BTreeMap<String, V>) {
        let gone: Vec<String> = self
            .topics_of_broker
            .get(broker_name)
            .into_iter()
            .flatten()
            .filter(|topic| !table.contains_key(*topic))
            .cloned()
            .collect();
        for topic in gone {
            self.remove_queues(&topic, broker_name);
        }
    }

    /// Removes a broker's queues of `topic`, and the topic with its last broker.
    fn remove_queues(&mut self, topic: &str, broker_name: &str) {
        if let Some(queues) = self.topic_queues.get_mut(topic) {
            queues.remove(broker_name);
            if queues.is_empty() {
                self.topic_queues.remove(topic);
            }
        }
        if let Some(topics) = self.topics_of_broker.get_mut(broker_name) {
            topics.remove(topic);
        }
    }

    fn remove_broker_topics(&mut self, broker_name: &str) {
        for topic in self
            .topics_of_broker
            .remove(broker_name)
            .unwrap_or_default()
        {
            self.remove_queues(&topic, broker_name);
        }
    }
}

fn queue_data(broker_name: &str, tc: &ferromq_protocol::body::TopicConfig) -> QueueData {
    QueueData {
        broker_name: broker_name.to_string(),
        read_queue_nums: tc.read_queue_nums,
        write_queue_nums: tc.write_queue_nums,
        perm: tc.perm,
        topic_sys_flag: tc.topic_sys_flag,
    }
}

#[derive(Default)]
pub struct RouteTable {
    tables: Mutex<Tables>,
}

impl RouteTable {
    /// Records a registration. Returns the master's address when the registrant is a slave.
    pub fn register(
        &self,
        h: &RegisterBrokerRequestHeader,
        body: &RegisterBrokerBody,
        connection_id: u64,
        timeout: Option<Duration>,
    ) -> Option<MasterOfGroup> {
        let mut t = self.tables.lock().expect("route table lock");
        let version = &body.topic_config_serialize_wrapper.data_version;
        if h.broker_id == 0 {
            // Apache's rule for controller mode: a master registration from an older epoch
            // (`stateVersion`) than the registered master's is a deposed master's late word.
            let current = t
                .brokers
                .get(&h.broker_name)
                .and_then(|bd| bd.broker_addrs.get(&0))
                .filter(|addr| **addr != h.broker_addr && t.live.contains_key(*addr))
                .and_then(|addr| t.versions.get(addr));
            if let Some(current) = current.filter(|c| c.state_version > version.state_version) {
                warn!(
                    broker_name = %h.broker_name,
                    broker_addr = %h.broker_addr,
                    epoch = version.state_version,
                    master_epoch = current.state_version,
                    "ignored a master registration from an older epoch than the registered master's"
                );
                t.live.remove(&h.broker_addr);
                return None;
            }
        }
        t.clusters
            .entry(h.cluster_name.clone())
            .or_default()
            .insert(h.broker_name.clone());
        let bd = t
            .brokers
            .entry(h.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: h.cluster_name.clone(),
                broker_name: h.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
                enable_acting_master: false,
            });
        // One address per id: a restarted broker on a new address replaces the old one.
        bd.broker_addrs
            .retain(|id, addr| *id != h.broker_id && *addr != h.broker_addr);
        bd.broker_addrs.insert(h.broker_id, h.broker_addr.clone());
        let master = bd.broker_addrs.get(&0).cloned();
        // As Apache's, any registration (FerroMQ's increments too) records the version it
        // carries: a whole table of that version arriving later changes nothing an operator
        // did meanwhile (a wiped write permission stays wiped).
        let increment = h.whole_table == Some(false);
        let unchanged = !increment
            && t.versions.get(&h.broker_addr) == Some(version)
            && t.live.contains_key(&h.broker_addr);
        let configs = &body.topic_config_serialize_wrapper.topic_config_table;
        if h.broker_id == 0 {
            if h.whole_table == Some(true) {
                t.drop_topics_missing_from(&h.broker_name, configs);
            }
            if unchanged {
                // The same table again: only mend what differs from it in more than the
                // permission (an increment that never arrived, a route deleted by
                // DELETE_TOPIC_IN_NAMESRV); permissions an operator changed stay.
                for (topic, tc) in configs {
                    let carried = queue_data(&h.broker_name, tc);
                    if !t.has_queues_like(topic, &carried) {
                        t.put_queues(topic, carried);
                    }
                }
            } else {
                t.versions.insert(h.broker_addr.clone(), version.clone());
                for (topic, tc) in configs {
                    t.put_queues(topic, queue_data(&h.broker_name, tc));
                }
            }
        }
        t.live.insert(
            h.broker_addr.clone(),
            LiveBroker {
                broker_name: h.broker_name.clone(),
                cluster: h.cluster_name.clone(),
                broker_id: h.broker_id,
                last_update: Instant::now(),
                timeout,
                connection_id,
                ha_server_addr: h.ha_server_addr.clone().unwrap_or_default(),
            },
        );
        if h.broker_id == 0 {
            return None;
        }
        master.map(|addr| MasterOfGroup {
            ha_server_addr: t
                .live
                .get(&addr)
                .map(|l| l.ha_server_addr.clone())
                .unwrap_or_default(),
            addr,
        })
    }

    pub fn touch(&self, broker_addr: &str) {
        if let Some(l) = self
            .tables
            .lock()
            .expect("route table lock")
            .live
            .get_mut(broker_addr)
        {
            l.last_update = Instant::now();
        }
    }

    pub fn unregister(&self, cluster: &str, broker_name: &str, broker_addr: &str, broker_id: i64) {
        let mut t = self.tables.lock().expect("route table lock");
        t.live.remove(broker_addr);
        t.versions.remove(broker_addr);
        Self::remove_broker_addr(&mut t, cluster, broker_name, broker_addr, broker_id);
        info!(broker_name, broker_addr, "broker unregistered");
    }

    fn remove_broker_addr(
        t: &mut Tables,
        cluster: &str,
        broker_name: &str,
        broker_addr: &str,
        broker_id: i64,
    ) {
        let mut now_empty = false;
        if let Some(bd) = t.brokers.get_mut(broker_name) {
            bd.broker_addrs
                .retain(|id, addr| !(*id == broker_id && addr == broker_addr));
            now_empty = bd.broker_addrs.is_empty();
        }
        // A group's queues stay routed while any of its brokers is: consumers read from a
        // slave while the master is away (Apache's `onChannelDestroy` keeps them too).
        // Producers skip a group whose route lists no master.
        if now_empty {
            t.remove_broker_topics(broker_name);
            t.brokers.remove(broker_name);
            if let Some(names) = t.clusters.get_mut(cluster) {
                names.remove(broker_name);
                if names.is_empty() {
                    t.clusters.remove(cluster);
                }
            }
        }
    }

    /// Drops brokers silent for longer than their timeout.
    pub fn expire(&self, default_timeout: Duration) {
        let mut t = self.tables.lock().expect("route table lock");
        let now = Instant::now();
        let dead: Vec<String> = t
            .live
            .iter()
            .filter(|(_, l)| {
                now.duration_since(l.last_update) > l.timeout.unwrap_or(default_timeout)
            })
            .map(|(a, _)| a.clone())
            .collect();
        for addr in dead {
            t.versions.remove(&addr);
            if let Some(l) = t.live.remove(&addr) {
                info!(broker_addr = %addr, broker_name = %l.broker_name, "broker expired after silence");
                Self::remove_broker_addr(&mut t, &l.cluster, &l.broker_name, &addr, l.broker_id);
            }
        }
    }

    /// Drops the brokers that registered over a connection that has closed.
    pub fn connection_closed(&self, connection_id: u64) -> Vec<String> {
        let mut t = self.tables.lock().expect("route table lock");
        let gone: Vec<String> = t
            .live
            .iter()
            .filter(|(_, l)| l.connection_id == connection_id)
            .map(|(a, _)| a.clone())
            .collect();
        for addr in &gone {
            t.versions.remove(addr);
            if let Some(l) = t.live.remove(addr) {
                Self::remove_broker_addr(&mut t, &l.cluster, &l.broker_name, addr, l.broker_id);
            }
        }
        gone
    }

    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let t = self.tables.lock().expect("route table lock");
        let queues = t.topic_queues.get(topic)?;
        let queue_datas: Vec<QueueData> = queues.values().cloned().collect();
        let broker_datas: Vec<BrokerData> = queues
            .keys()
            .filter_map(|name| t.brokers.get(name).cloned())
            .collect();
        if queue_datas.is_empty() || broker_datas.is_empty() {
            return None;
        }
        Some(TopicRouteData {
            queue_datas,
            broker_datas,
            filter_server_table: HashMap::new(),
        })
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        let t = self.tables.lock().expect("route table lock");
        ClusterInfo {
            broker_addr_table: t.brokers.clone(),
            cluster_addr_table: t
                .clusters
                .iter()
                .map(|(c, names)| (c.clone(), names.iter().cloned().collect()))
                .collect(),
        }
    }

    pub fn topics(&self) -> Vec<String> {
        self.tables
            .lock()
            .expect("route table lock")
            .topic_queues
            .keys()
            .cloned()
            .collect()
    }

    /// Apache's system topics: every cluster's name and its brokers' names, and the
    /// address of one broker (the dashboard and `topicList` read it).
    pub fn system_topics(&self) -> (Vec<String>, Option<String>) {
        let t = self.tables.lock().expect("route table lock");
        let mut topics = Vec::new();
        for (cluster, names) in &t.clusters {
            topics.push(cluster.clone());
            topics.extend(names.iter().cloned());
        }
        let addr = t
            .brokers
            .values()
            .find_map(|b| b.broker_addrs.values().next().cloned());
        (topics, addr)
    }

    /// Topics with queues on a broker of `cluster`.
    pub fn topics_of_cluster(&self, cluster: &str) -> Vec<String> {
        let t = self.tables.lock().expect("route table lock");
        let Some(names) = t.clusters.get(cluster) else {
            return Vec::new();
        };
        let topics: BTreeSet<&String> = names
            .iter()
            .filter_map(|b| t.topics_of_broker.get(b))
            .flatten()
            .collect();
        topics.into_iter().cloned().collect()
    }

    /// Topics whose `topicSysFlag` has every bit of `with` and none of `without`.
    pub fn topics_with_flags(&self, with: i32, without: i32) -> Vec<String> {
        let t = self.tables.lock().expect("route table lock");
        t.topic_queues
            .iter()
            .filter(|(_, queues)| {
                queues
                    .values()
                    .any(|q| q.topic_sys_flag & with == with && q.topic_sys_flag & without == 0)
            })
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// Takes (`wipe`) or gives back the write permission of every topic's queues on
    /// `broker_name`; returns how many topics it touched.
    pub fn set_write_perm(&self, broker_name: &str, wipe: bool) -> usize {
        let mut guard = self.tables.lock().expect("route table lock");
        let t = &mut *guard;
        let mut touched = 0;
        for topic in t.topics_of_broker.get(broker_name).into_iter().flatten() {
            if let Some(q) = t
                .topic_queues
                .get_mut(topic)
                .and_then(|queues| queues.get_mut(broker_name))
            {
                q.perm = if wipe {
                    q.perm & !perm::WRITE
                } else {
                    q.perm | perm::WRITE
                };
                touched += 1;
            }
        }
        info!(
            broker_name,
            wipe,
            topics = touched,
            "write permission changed by request"
        );
        touched
    }

    /// Whether the master at `broker_addr` last registered `version`; marks it alive.
    pub fn version_changed(&self, broker_addr: &str, version: &DataVersion) -> bool {
        let mut t = self.tables.lock().expect("route table lock");
        let Some(l) = t.live.get_mut(broker_addr) else {
            return true;
        };
        l.last_update = Instant::now();
        t.versions.get(broker_addr) != Some(version)
    }

    /// The broker group's members: id → address.
    pub fn broker_members(&self, broker_name: &str) -> BTreeMap<i64, String> {
        let t = self.tables.lock().expect("route table lock");
        t.brokers
            .get(broker_name)
            .map(|b| b.broker_addrs.clone())
            .unwrap_or_default()
    }

    /// A route registered by an administrator (REGISTER_TOPIC_IN_NAMESRV): the queues of
    /// brokers the name server knows.
    pub fn register_topic(&self, topic: &str, queues: &[QueueData]) {
        let mut t = self.tables.lock().expect("route table lock");
        let known: Vec<QueueData> = queues
            .iter()
            .filter(|q| t.brokers.contains_key(&q.broker_name))
            .cloned()
            .collect();
        for q in known {
            t.put_queues(topic, q);
        }
    }

    pub fn delete_topic(&self, topic: &str) {
        let mut t = self.tables.lock().expect("route table lock");
        let brokers: Vec<String> = t
            .topic_queues
            .get(topic)
            .map(|queues| queues.keys().cloned().collect())
            .unwrap_or_default();
        for broker_name in brokers {
            t.remove_queues(topic, &broker_name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferromq_protocol::body::{TopicConfig, TopicConfigSerializeWrapper};

    fn header(name: &str, addr: &str, id: i64) -> RegisterBrokerRequestHeader {
        RegisterBrokerRequestHeader {
            broker_name: name.into(),
            broker_addr: addr.into(),
            cluster_name: "C".into(),
            broker_id: id,
            ..Default::default()
        }
    }

    static NEXT_VERSION: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

    fn body(topics: &[&str]) -> RegisterBrokerBody {
        RegisterBrokerBody {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table: topics
                    .iter()
                    .map(|t| (t.to_string(), TopicConfig::new(t, 4, 6)))
                    .collect(),
                // Each body a new version, as a broker's table moves with every change.
                data_version: DataVersion {
                    timestamp: 0,
                    counter: NEXT_VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    state_version: 0,
                },
            },
            filter_server_list: vec![],
        }
    }

    #[test]
    fn route_lists_every_master_hosting_the_topic() {
        let t = RouteTable::default();
        t.register(&header("a", "127.0.0.1:1", 0), &body(&["T", "A"]), 1, None);
        t.register(&header("b", "127.0.0.1:2", 0), &body(&["T"]), 2, None);
        let route = t.route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 2);
        assert_eq!(route.broker_datas.len(), 2);
        assert_eq!(t.route("A").unwrap().broker_datas[0].broker_name, "a");
        assert!(t.route("missing").is_none());
    }

    fn whole(name: &str, addr: &str) -> RegisterBrokerRequestHeader {
        RegisterBrokerRequestHeader {
            whole_table: Some(true),
            ..header(name, addr, 0)
        }
    }

    #[test]
    fn a_whole_table_replaces_the_brokers_topics_and_leaves_others() {
        let t = RouteTable::default();
        t.register(&whole("a", "127.0.0.1:1"), &body(&["T", "Old"]), 1, None);
        t.register(&whole("b", "127.0.0.1:2"), &body(&["Old"]), 2, None);
        t.register(&whole("a", "127.0.0.1:1"), &body(&["T"]), 1, None);
        let old = t.route("Old").expect("b still hosts Old");
        assert_eq!(old.queue_datas.len(), 1);
        assert_eq!(old.queue_datas[0].broker_name, "b");
        assert!(t.route("T").is_some());
        assert_eq!(
            t.topics_of_cluster("C"),
            vec!["Old".to_string(), "T".to_string()]
        );
    }

    #[test]
    fn an_increment_or_an_unmarked_body_adds_and_updates_only() {
        let t = RouteTable::default();
        t.register(&whole("a", "127.0.0.1:1"), &body(&["T"]), 1, None);
        // A FerroMQ increment: one new topic.
        let increment = RegisterBrokerRequestHeader {
            whole_table: Some(false),
            ..header("a", "127.0.0.1:1", 0)
        };
        let new_topic = body(&["New"]);
        t.register(&increment, &new_topic, 1, None);
        assert!(
            !t.version_changed(
                "127.0.0.1:1",
                &new_topic.topic_config_serialize_wrapper.data_version
            ),
            "an increment records its version, as Apache's registrations do"
        );
        assert!(t.route("T").is_some(), "an increment removes nothing");
        assert!(t.route("New").is_some());
        // An Apache broker's split registration: each chunk adds to the others.
        t.register(&header("x", "127.0.0.1:5", 0), &body(&["X1"]), 5, None);
        t.register(&header("x", "127.0.0.1:5", 0), &body(&["X2"]), 5, None);
        assert!(t.route("X1").is_some() && t.route("X2").is_some());
        // An update changes the queues in place.
        let mut wider = body(&["T"]);
        let tc = wider
            .topic_config_serialize_wrapper
            .topic_config_table
            .get_mut("T")
            .unwrap();
        tc.write_queue_nums = 16;
        t.register(&header("a", "127.0.0.1:1", 0), &wider, 1, None);
        assert_eq!(t.route("T").unwrap().queue_datas[0].write_queue_nums, 16);
    }

    #[test]
    fn the_same_table_again_puts_back_a_deleted_route_only() {
        let t = RouteTable::default();
        let table = body(&["T", "U"]);
        t.register(&whole("a", "127.0.0.1:1"), &table, 1, None);
        t.delete_topic("U");
        assert!(t.route("U").is_none());
        assert_eq!(t.set_write_perm("a", true), 1, "only T is left to wipe");
        t.register(&whole("a", "127.0.0.1:1"), &table, 1, None);
        assert!(t.route("U").is_some(), "the broker still has U");
        assert_eq!(
            t.route("T").unwrap().queue_datas[0].perm,
            perm::READ,
            "the wipe holds"
        );
        t.connection_closed(1);
        assert!(t.topics().is_empty());
        assert!(t.topics_of_cluster("C").is_empty());
    }

    #[test]
    fn wiped_write_permission_holds_until_the_brokers_topics_change() {
        let t = RouteTable::default();
        let first = body(&["T"]);
        t.register(&header("a", "127.0.0.1:1", 0), &first, 1, None);
        assert_eq!(t.set_write_perm("a", true), 1);
        // The periodic registration carries the same version: the wipe stays.
        t.register(&header("a", "127.0.0.1:1", 0), &first, 1, None);
        assert_eq!(t.route("T").unwrap().queue_datas[0].perm, perm::READ);
        assert!(!t.version_changed(
            "127.0.0.1:1",
            &first.topic_config_serialize_wrapper.data_version
        ));
        t.set_write_perm("a", false);
        assert_eq!(t.route("T").unwrap().queue_datas[0].perm, 6);
        t.set_write_perm("a", true);
        // A new topic table replaces the routes, write permission included.
        t.register(&header("a", "127.0.0.1:1", 0), &body(&["T"]), 1, None);
        assert_eq!(t.route("T").unwrap().queue_datas[0].perm, 6);
    }

    #[test]
    fn a_wipe_outlives_the_whole_table_that_follows_an_increment() {
        let t = RouteTable::default();
        t.register(&whole("a", "127.0.0.1:1"), &body(&["T", "Gone"]), 1, None);
        // The broker deletes Gone and creates New (version 2), sending New as an increment.
        let mut next = body(&["T", "New"]);
        next.topic_config_serialize_wrapper.data_version.counter = 2;
        let mut increment_body = body(&["New"]);
        increment_body.topic_config_serialize_wrapper.data_version =
            next.topic_config_serialize_wrapper.data_version.clone();
        let increment = RegisterBrokerRequestHeader {
            whole_table: Some(false),
            ..header("a", "127.0.0.1:1", 0)
        };
        t.register(&increment, &increment_body, 1, None);
        assert_eq!(t.set_write_perm("a", true), 3, "T, Gone and New lose write");
        // The periodic whole table of version 2: the wipe stays, Gone goes.
        t.register(&whole("a", "127.0.0.1:1"), &next, 1, None);
        assert_eq!(t.route("T").unwrap().queue_datas[0].perm, perm::READ);
        assert_eq!(t.route("New").unwrap().queue_datas[0].perm, perm::READ);
        assert!(
            t.route("Gone").is_none(),
            "a whole table drops what it lacks"
        );
        // An update whose increment was lost is mended by the same table, wipe and all.
        let mut wider = next.clone();
        wider
            .topic_config_serialize_wrapper
            .topic_config_table
            .get_mut("New")
            .unwrap()
            .write_queue_nums = 16;
        t.register(&whole("a", "127.0.0.1:1"), &wider, 1, None);
        let new = &t.route("New").unwrap().queue_datas[0];
        assert_eq!(new.write_queue_nums, 16);
    }

    #[test]
    fn system_topics_are_the_cluster_and_broker_names() {
        let t = RouteTable::default();
        t.register(&header("a", "127.0.0.1:1", 0), &body(&["T"]), 1, None);
        let (topics, addr) = t.system_topics();
        assert_eq!(topics, vec!["C".to_string(), "a".to_string()]);
        assert_eq!(addr.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(t.topics_of_cluster("C"), vec!["T".to_string()]);
        assert!(t.topics_of_cluster("other").is_empty());
    }

    #[test]
    fn silent_brokers_expire_and_their_topics_vanish() {
        let t = RouteTable::default();
        t.register(
            &header("a", "127.0.0.1:1", 0),
            &body(&["T"]),
            1,
            Some(Duration::from_millis(1)),
        );
        t.register(&header("b", "127.0.0.1:2", 0), &body(&["U"]), 2, None);
        std::thread::sleep(Duration::from_millis(5));
        t.expire(Duration::from_secs(120));
        assert!(t.route("T").is_none());
        assert!(t.route("U").is_some());
        assert_eq!(
            t.cluster_info().cluster_addr_table["C"],
            vec!["b".to_string()]
        );
    }

    #[test]
    fn closing_the_registering_connection_unregisters() {
        let t = RouteTable::default();
        t.register(&header("a", "127.0.0.1:1", 0), &body(&["T"]), 7, None);
        assert_eq!(t.connection_closed(8), Vec::<String>::new());
        assert_eq!(t.connection_closed(7), vec!["127.0.0.1:1".to_string()]);
        assert!(t.route("T").is_none());
    }

    #[test]
    fn slave_registration_reports_the_master_and_adds_no_queues() {
        let t = RouteTable::default();
        let mut master_header = header("a", "127.0.0.1:1", 0);
        master_header.ha_server_addr = Some("127.0.0.1:2".into());
        t.register(&master_header, &body(&["T"]), 1, None);
        let master = t.register(
            &header("a", "127.0.0.1:3", 1),
            &body(&["T", "SlaveOnly"]),
            2,
            None,
        );
        assert_eq!(
            master,
            Some(MasterOfGroup {
                addr: "127.0.0.1:1".into(),
                ha_server_addr: "127.0.0.1:2".into()
            })
        );
        assert!(t.route("SlaveOnly").is_none());
        assert_eq!(t.route("T").unwrap().broker_datas[0].broker_addrs.len(), 2);
    }

    #[test]
    fn a_deposed_masters_late_registration_does_not_replace_the_new_master() {
        let t = RouteTable::default();
        let with_epoch = |epoch: i64| {
            let mut b = body(&["T"]);
            b.topic_config_serialize_wrapper.data_version.state_version = epoch;
            b
        };
        t.register(&header("a", "127.0.0.1:1", 0), &with_epoch(1), 1, None);
        t.register(&header("a", "127.0.0.1:2", 0), &with_epoch(2), 2, None);
        // The old master's registration from epoch 1, queued through a partition.
        t.register(&header("a", "127.0.0.1:1", 0), &with_epoch(1), 1, None);
        let route = t.route("T").unwrap();
        assert_eq!(route.broker_datas[0].broker_addrs[&0], "127.0.0.1:2");
        // Once it has learned the new epoch it registers as the slave it now is.
        let master = t.register(&header("a", "127.0.0.1:1", 1), &with_epoch(2), 1, None);
        assert_eq!(master.unwrap().addr, "127.0.0.1:2");
    }

    #[test]
    fn a_group_stays_routed_through_its_slave_while_the_master_is_gone() {
        let t = RouteTable::default();
        t.register(&header("a", "127.0.0.1:1", 0), &body(&["T"]), 1, None);
        t.register(&header("a", "127.0.0.1:3", 1), &body(&["T"]), 2, None);
        assert_eq!(t.connection_closed(1), vec!["127.0.0.1:1".to_string()]);
        let route = t.route("T").expect("the slave still serves T");
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(
            route.broker_datas[0]
                .broker_addrs
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![1],
            "no master listed, so producers skip the group"
        );
        t.connection_closed(2);
        assert!(t.route("T").is_none(), "gone with the group's last broker");
    }
}
