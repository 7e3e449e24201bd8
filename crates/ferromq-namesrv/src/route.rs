//! The route table. One std mutex: every operation is short and never awaits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferromq_protocol::body::{
    BrokerData, ClusterInfo, QueueData, RegisterBrokerBody, TopicRouteData,
};
use ferromq_protocol::header::RegisterBrokerRequestHeader;
use tracing::info;

struct LiveBroker {
    broker_name: String,
    cluster: String,
    broker_id: i64,
    last_update: Instant,
    timeout: Option<Duration>,
    connection_id: u64,
}

#[derive(Default)]
struct Tables {
    /// topic → brokerName → queue data
    topic_queues: BTreeMap<String, BTreeMap<String, QueueData>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// brokerAddr → liveness
    live: HashMap<String, LiveBroker>,
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
    ) -> Option<String> {
        let mut t = self.tables.lock().expect("route table lock");
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
        if h.broker_id == 0 {
            let configs = &body.topic_config_serialize_wrapper.topic_config_table;
            for queues in t.topic_queues.values_mut() {
                queues.remove(&h.broker_name);
            }
            for (topic, tc) in configs {
                t.topic_queues.entry(topic.clone()).or_default().insert(
                    h.broker_name.clone(),
                    QueueData {
                        broker_name: h.broker_name.clone(),
                        read_queue_nums: tc.read_queue_nums,
                        write_queue_nums: tc.write_queue_nums,
                        perm: tc.perm,
                        topic_sys_flag: tc.topic_sys_flag,
                    },
                );
            }
            t.topic_queues.retain(|_, q| !q.is_empty());
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
            },
        );
        if h.broker_id == 0 {
            None
        } else {
            master
        }
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
        if broker_id == 0 || now_empty {
            for queues in t.topic_queues.values_mut() {
                queues.remove(broker_name);
            }
            t.topic_queues.retain(|_, q| !q.is_empty());
        }
        if now_empty {
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

    pub fn delete_topic(&self, topic: &str) {
        self.tables
            .lock()
            .expect("route table lock")
            .topic_queues
            .remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferromq_protocol::body::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};

    fn header(name: &str, addr: &str, id: i64) -> RegisterBrokerRequestHeader {
        RegisterBrokerRequestHeader {
            broker_name: name.into(),
            broker_addr: addr.into(),
            cluster_name: "C".into(),
            broker_id: id,
            ..Default::default()
        }
    }

    fn body(topics: &[&str]) -> RegisterBrokerBody {
        RegisterBrokerBody {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table: topics
                    .iter()
                    .map(|t| (t.to_string(), TopicConfig::new(t, 4, 6)))
                    .collect(),
                data_version: DataVersion {
                    timestamp: 0,
                    counter: 0,
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

    #[test]
    fn reregistration_replaces_the_brokers_topics() {
        let t = RouteTable::default();
        t.register(
            &header("a", "127.0.0.1:1", 0),
            &body(&["T", "Old"]),
            1,
            None,
        );
        t.register(&header("a", "127.0.0.1:1", 0), &body(&["T"]), 1, None);
        assert!(t.route("Old").is_none());
        assert!(t.route("T").is_some());
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
        t.register(&header("a", "127.0.0.1:1", 0), &body(&["T"]), 1, None);
        let master = t.register(
            &header("a", "127.0.0.1:3", 1),
            &body(&["T", "SlaveOnly"]),
            2,
            None,
        );
        assert_eq!(master.as_deref(), Some("127.0.0.1:1"));
        assert!(t.route("SlaveOnly").is_none());
        assert_eq!(t.route("T").unwrap().broker_datas[0].broker_addrs.len(), 2);
    }
}
