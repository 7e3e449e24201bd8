//! What the controller replicates: for each broker group (broker name), the brokers it has
//! assigned ids to, its master, the master epoch and the in-sync set with its epoch; and the
//! rules, as Apache's `ReplicasInfoManager` has them, that turn a request into an [`Event`]
//! (or a refusal). Events are the raft log's entries: applying them is deterministic, so
//! every controller node reaches the same state. Liveness is not replicated: each node
//! learns it from the brokers' heartbeats, and the rules take it as a predicate.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Apache's controller response codes (`ResponseCode` 2000-2016).
pub mod code {
    pub const FENCED_MASTER_EPOCH: i32 = 2000;
    pub const FENCED_SYNC_STATE_SET_EPOCH: i32 = 2001;
    pub const INVALID_MASTER: i32 = 2002;
    pub const INVALID_REPLICAS: i32 = 2003;
    pub const MASTER_NOT_AVAILABLE: i32 = 2004;
    pub const INVALID_REQUEST: i32 = 2005;
    pub const BROKER_NOT_ALIVE: i32 = 2006;
    pub const NOT_LEADER: i32 = 2007;
    pub const BROKER_METADATA_NOT_EXIST: i32 = 2008;
    pub const INVALID_CLEAN_BROKER_METADATA: i32 = 2009;
    pub const BROKER_NEED_TO_BE_REGISTERED: i32 = 2010;
    pub const MASTER_STILL_EXIST: i32 = 2011;
    pub const ELECT_MASTER_FAILED: i32 = 2012;
    pub const ALTER_SYNC_STATE_SET_FAILED: i32 = 2013;
    pub const BROKER_ID_INVALID: i32 = 2014;
}

/// The first id the controller gives a broker of a group (`FIRST_BROKER_CONTROLLER_ID`).
pub const FIRST_BROKER_ID: i64 = 1;

/// A request the rules refuse, with Apache's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{remark} (code {code})")]
pub struct Refusal {
    pub code: i32,
    pub remark: String,
}

fn refuse(code: i32, remark: impl Into<String>) -> Refusal {
    Refusal {
        code,
        remark: remark.into(),
    }
}

/// One broker the controller gave an id to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub address: String,
    /// `<address>;<ms>`: lets the broker that applied for the id apply again.
    pub check_code: String,
}

/// One broker group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerGroup {
    pub cluster: String,
    pub next_id: i64,
    pub replicas: BTreeMap<i64, Replica>,
    pub master: Option<i64>,
    pub master_epoch: i32,
    pub sync_state_set: BTreeSet<i64>,
    pub sync_state_set_epoch: i32,
}

impl BrokerGroup {
    pub fn address(&self, id: Option<i64>) -> Option<&str> {
        id.and_then(|id| self.replicas.get(&id))
            .map(|r| r.address.as_str())
    }
}

/// A change to the replicated state: one raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    ApplyBrokerId {
        cluster: String,
        broker_name: String,
        address: String,
        check_code: String,
        id: i64,
    },
    UpdateBrokerAddress {
        broker_name: String,
        id: i64,
        address: String,
    },
    /// `master: None`: the master is gone and nobody could replace it.
    ElectMaster {
        broker_name: String,
        master: Option<i64>,
    },
    AlterSyncStateSet {
        broker_name: String,
        set: BTreeSet<i64>,
    },
    /// `ids: None` removes the whole group.
    CleanBrokerData {
        broker_name: String,
        ids: Option<BTreeSet<i64>>,
    },
}

/// The state every controller node holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    pub groups: BTreeMap<String, BrokerGroup>,
}

/// What a broker last told this node in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInfo {
    pub epoch: i32,
    pub max_offset: i64,
    /// Lower is preferred (`brokerElectionPriority`).
    pub election_priority: i32,
}

/// Whether a broker is alive, and what it reported: the controller's liveness view.
pub trait Liveness {
    fn live(&self, broker_name: &str, id: i64) -> Option<LiveInfo>;
    fn alive(&self, broker_name: &str, id: i64) -> bool {
        self.live(broker_name, id).is_some()
    }
}

/// The outcome of an election the rules decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elected {
    pub master: i64,
    pub master_address: String,
    pub master_epoch: i32,
    pub sync_state_set: BTreeSet<i64>,
    pub sync_state_set_epoch: i32,
    /// Every broker of the group, by id: who to tell.
    pub members: BTreeMap<i64, String>,
}

/// What a registering broker learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The live master, when there is one.
    pub master: Option<(i64, String, i32, i32)>,
    pub sync_state_set: BTreeSet<i64>,
    pub sync_state_set_epoch: i32,
}

impl ControllerState {
    /// Applies one event; events the rules produced always apply.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ApplyBrokerId {
                cluster,
                broker_name,
                address,
                check_code,
                id,
            } => {
                let group = self
                    .groups
                    .entry(broker_name.clone())
                    .or_insert_with(|| BrokerGroup {
                        cluster: cluster.clone(),
                        next_id: FIRST_BROKER_ID,
                        replicas: BTreeMap::new(),
                        master: None,
                        master_epoch: 0,
                        sync_state_set: BTreeSet::new(),
                        sync_state_set_epoch: 0,
                    });
                if !group.replicas.contains_key(id) {
                    group.replicas.insert(
                        *id,
                        Replica {
                            address: address.clone(),
                            check_code: check_code.clone(),
                        },
                    );
                    group.next_id += 1;
                }
            }
            Event::UpdateBrokerAddress {
                broker_name,
                id,
                address,
            } => {
                if let Some(r) = self
                    .groups
                    .get_mut(broker_name)
                    .and_then(|g| g.replicas.get_mut(id))
                {
                    r.address = address.clone();
                }
            }
            Event::ElectMaster {
                broker_name,
                master,
            } => {
                if let Some(g) = self.groups.get_mut(broker_name) {
                    g.master = *master;
                    g.master_epoch += 1;
                    if let Some(m) = master {
                        g.sync_state_set = BTreeSet::from([*m]);
                        g.sync_state_set_epoch += 1;
                    }
                }
            }
            Event::AlterSyncStateSet { broker_name, set } => {
                if let Some(g) = self.groups.get_mut(broker_name) {
                    g.sync_state_set = set.clone();
                    g.sync_state_set_epoch += 1;
                }
            }
            Event::CleanBrokerData { broker_name, ids } => match ids {
                None => {
                    self.groups.remove(broker_name);
                }
                Some(ids) => {
                    if let Some(g) = self.groups.get_mut(broker_name) {
                        for id in ids {
                            g.replicas.remove(id);
                            g.sync_state_set.remove(id);
                        }
                        if g.replicas.is_empty() || g.sync_state_set.is_empty() {
                            self.groups.remove(broker_name);
                        }
                    }
                }
            },
        }
    }

    /// CONTROLLER_GET_NEXT_BROKER_ID.
    pub fn next_broker_id(&self, broker_name: &str) -> i64 {
        self.groups
            .get(broker_name)
            .map_or(FIRST_BROKER_ID, |g| g.next_id)
    }

    /// CONTROLLER_APPLY_BROKER_ID: an unused id, or one this broker applied for before.
    pub fn apply_broker_id(
        &self,
        cluster: &str,
        broker_name: &str,
        id: i64,
        check_code: &str,
    ) -> Result<Event, Refusal> {
        let address = check_code
            .split(';')
            .next()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                refuse(
                    code::INVALID_REQUEST,
                    "registerCheckCode must be '<address>;<ms>'",
                )
            })?;
        let event = Event::ApplyBrokerId {
            cluster: cluster.into(),
            broker_name: broker_name.into(),
            address: address.into(),
            check_code: check_code.into(),
            id,
        };
        match self.groups.get(broker_name) {
            None if id == FIRST_BROKER_ID => Ok(event),
            None => Err(refuse(
                code::BROKER_ID_INVALID,
                format!("broker group {broker_name} is new: its first broker takes id {FIRST_BROKER_ID}, not {id}"),
            )),
            Some(g) => match g.replicas.get(&id) {
                None => Ok(event),
                Some(r) if r.check_code == check_code => Ok(event),
                Some(r) => Err(refuse(
                    code::BROKER_ID_INVALID,
                    format!("id {id} of broker group {broker_name} belongs to {}", r.address),
                )),
            },
        }
    }

    /// CONTROLLER_REGISTER_BROKER: the group's live master and in-sync set, and an address
    /// update when the broker moved.
    pub fn register_broker(
        &self,
        broker_name: &str,
        id: i64,
        address: &str,
        live: &dyn Liveness,
    ) -> Result<(Registered, Option<Event>), Refusal> {
        let g = self.groups.get(broker_name).ok_or_else(|| {
            refuse(
                code::BROKER_NEED_TO_BE_REGISTERED,
                format!("broker group {broker_name} is not registered with the controller"),
            )
        })?;
        let known = g.replicas.get(&id).ok_or_else(|| {
            refuse(
                code::BROKER_NEED_TO_BE_REGISTERED,
                format!("id {id} is not registered in broker group {broker_name}"),
            )
        })?;
        let master = g.master.filter(|m| live.alive(broker_name, *m)).map(|m| {
            (
                m,
                g.address(Some(m)).unwrap_or_default().to_string(),
                g.master_epoch,
                g.sync_state_set_epoch,
            )
        });
        let update = (known.address != address).then(|| Event::UpdateBrokerAddress {
            broker_name: broker_name.into(),
            id,
            address: address.into(),
        });
        Ok((
            Registered {
                master,
                sync_state_set: g.sync_state_set.clone(),
                sync_state_set_epoch: g.sync_state_set_epoch,
            },
            update,
        ))
    }

    /// CONTROLLER_ELECT_MASTER. `requester` is the broker asking (None: the controller
    /// itself, after the master stopped heartbeating); `designate` makes the requester the
    /// preferred choice (an operator's `electMaster`).
    pub fn elect_master(
        &self,
        broker_name: &str,
        requester: Option<i64>,
        designate: bool,
        unclean: bool,
        live: &dyn Liveness,
    ) -> Result<(Elected, Event), ElectRefusal> {
        let g = self.groups.get(broker_name).ok_or_else(|| {
            ElectRefusal::Refused(refuse(
                code::BROKER_NEED_TO_BE_REGISTERED,
                format!("broker group {broker_name} is not registered with the controller"),
            ))
        })?;
        let mut chosen = None;
        if g.master_epoch == 0 {
            // The group never had a master: whoever asks first becomes it.
            chosen = requester.filter(|id| *id != -1);
        }
        if chosen.is_none() {
            let prefer = requester.filter(|_| designate);
            chosen = elect_policy(broker_name, &g.sync_state_set, g.master, prefer, live);
            if chosen.is_none() && unclean {
                let all: BTreeSet<i64> = g.replicas.keys().copied().collect();
                chosen = elect_policy(broker_name, &all, g.master, prefer, live);
            }
        }
        match chosen {
            Some(m) if Some(m) == g.master => Err(ElectRefusal::MasterStillExists(Elected {
                master: m,
                master_address: g.address(Some(m)).unwrap_or_default().into(),
                master_epoch: g.master_epoch,
                sync_state_set: g.sync_state_set.clone(),
                sync_state_set_epoch: g.sync_state_set_epoch,
                members: members(g),
            })),
            Some(m) => Ok((
                Elected {
                    master: m,
                    master_address: g.address(Some(m)).unwrap_or_default().into(),
                    master_epoch: g.master_epoch + 1,
                    sync_state_set: BTreeSet::from([m]),
                    sync_state_set_epoch: g.sync_state_set_epoch + 1,
                    members: members(g),
                },
                Event::ElectMaster {
                    broker_name: broker_name.into(),
                    master: Some(m),
                },
            )),
            None if requester.is_none_or(|id| id == -1) => {
                Err(ElectRefusal::NoMaster(Event::ElectMaster {
                    broker_name: broker_name.into(),
                    master: None,
                }))
            }
            None => Err(ElectRefusal::Refused(refuse(
                code::ELECT_MASTER_FAILED,
                format!("no broker of group {broker_name} can become its master"),
            ))),
        }
    }

    /// CONTROLLER_ALTER_SYNC_STATE_SET: the master reports who keeps up with it. Checked in
    /// Apache's order.
    pub fn alter_sync_state_set(
        &self,
        broker_name: &str,
        master: i64,
        master_epoch: i32,
        set: &BTreeSet<i64>,
        set_epoch: i32,
        live: &dyn Liveness,
    ) -> Result<(i32, Event), Refusal> {
        let failed = |why: String| refuse(code::ALTER_SYNC_STATE_SET_FAILED, why);
        let g = self
            .groups
            .get(broker_name)
            .ok_or_else(|| failed(format!("broker group {broker_name} is not registered")))?;
        if &g.sync_state_set == set {
            return Err(failed("the in-sync set is unchanged".into()));
        }
        if g.master != Some(master) {
            return Err(refuse(
                code::INVALID_MASTER,
                format!("the master is {:?}, not {master}", g.master),
            ));
        }
        if g.master_epoch != master_epoch {
            return Err(refuse(
                code::FENCED_MASTER_EPOCH,
                format!("the master epoch is {}, not {master_epoch}", g.master_epoch),
            ));
        }
        if g.sync_state_set_epoch != set_epoch {
            return Err(refuse(
                code::FENCED_SYNC_STATE_SET_EPOCH,
                format!(
                    "the in-sync set epoch is {}, not {set_epoch}",
                    g.sync_state_set_epoch
                ),
            ));
        }
        for id in set {
            if !g.replicas.contains_key(id) {
                return Err(refuse(
                    code::INVALID_REPLICAS,
                    format!("broker {id} does not exist"),
                ));
            }
            if !live.alive(broker_name, *id) {
                return Err(refuse(
                    code::BROKER_NOT_ALIVE,
                    format!("broker {id} is not alive"),
                ));
            }
        }
        if !set.contains(&master) {
            return Err(failed(format!(
                "the in-sync set must hold the master {master}"
            )));
        }
        Ok((
            g.sync_state_set_epoch + 1,
            Event::AlterSyncStateSet {
                broker_name: broker_name.into(),
                set: set.clone(),
            },
        ))
    }

    /// CLEAN_BROKER_DATA: forgets brokers (or a whole group) that will not come back.
    pub fn clean_broker_data(
        &self,
        broker_name: &str,
        ids: Option<BTreeSet<i64>>,
        clean_living: bool,
        live: &dyn Liveness,
    ) -> Result<Event, Refusal> {
        if !clean_living {
            if let Some(g) = self.groups.get(broker_name) {
                match &ids {
                    None if g.master.is_some_and(|m| live.alive(broker_name, m)) => {
                        return Err(refuse(
                            code::INVALID_CLEAN_BROKER_METADATA,
                            format!("broker group {broker_name} still has a live master"),
                        ))
                    }
                    Some(ids) => {
                        if let Some(id) = ids.iter().find(|id| live.alive(broker_name, **id)) {
                            return Err(refuse(
                                code::INVALID_CLEAN_BROKER_METADATA,
                                format!("broker {id} of group {broker_name} is alive"),
                            ));
                        }
                    }
                    None => {}
                }
            }
        }
        Ok(Event::CleanBrokerData {
            broker_name: broker_name.into(),
            ids,
        })
    }
}

fn members(g: &BrokerGroup) -> BTreeMap<i64, String> {
    g.replicas
        .iter()
        .map(|(id, r)| (*id, r.address.clone()))
        .collect()
}

/// Why an election produced no new master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectRefusal {
    /// The current master stays (`MASTER_STILL_EXIST`, 2011).
    MasterStillExists(Elected),
    /// The controller found the master gone and nobody to replace it: the event records that
    /// the group has no master (`MASTER_NOT_AVAILABLE`, 2004).
    NoMaster(Event),
    Refused(Refusal),
}

/// Apache's `DefaultElectPolicy`: among the live candidates, the old master if it still
/// qualifies (and nobody else is preferred), else the preferred broker, else the one with
/// the highest epoch, then the longest log, then the lowest priority value.
fn elect_policy(
    broker_name: &str,
    candidates: &BTreeSet<i64>,
    old_master: Option<i64>,
    prefer: Option<i64>,
    live: &dyn Liveness,
) -> Option<i64> {
    let alive: Vec<(i64, LiveInfo)> = candidates
        .iter()
        .filter_map(|id| live.live(broker_name, *id).map(|l| (*id, l)))
        .collect();
    if let Some(old) = old_master {
        if alive.iter().any(|(id, _)| *id == old) && prefer.is_none_or(|p| p == old) {
            return Some(old);
        }
    }
    if let Some(p) = prefer {
        return alive.iter().any(|(id, _)| *id == p).then_some(p);
    }
    alive
        .into_iter()
        .max_by(|(a_id, a), (b_id, b)| {
            a.epoch
                .cmp(&b.epoch)
                .then(a.max_offset.cmp(&b.max_offset))
                .then(b.election_priority.cmp(&a.election_priority))
                // Deterministic among equals: the lower id.
                .then(b_id.cmp(a_id))
        })
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Live(HashMap<i64, LiveInfo>);

    impl Live {
        fn with(mut self, id: i64, epoch: i32, max_offset: i64) -> Self {
            self.0.insert(
                id,
                LiveInfo {
                    epoch,
                    max_offset,
                    election_priority: i32::MAX,
                },
            );
            self
        }
    }

    impl Liveness for Live {
        fn live(&self, _: &str, id: i64) -> Option<LiveInfo> {
            self.0.get(&id).cloned()
        }
    }

    fn group_of_three() -> ControllerState {
        let mut s = ControllerState::default();
        for id in 1..=3 {
            let e = s
                .apply_broker_id("C", "b", id, &format!("127.0.0.1:{id};1"))
                .unwrap();
            s.apply(&e);
        }
        s
    }

    #[test]
    fn ids_are_handed_out_in_order_and_only_once() {
        let mut s = ControllerState::default();
        assert_eq!(s.next_broker_id("b"), 1);
        let refused = s.apply_broker_id("C", "b", 2, "a:1;1").unwrap_err();
        assert_eq!(refused.code, code::BROKER_ID_INVALID);
        s.apply(&s.apply_broker_id("C", "b", 1, "a:1;1").unwrap());
        assert_eq!(s.next_broker_id("b"), 2);
        // The same broker applying again (a retry) is fine; another one is refused.
        assert!(s.apply_broker_id("C", "b", 1, "a:1;1").is_ok());
        assert_eq!(
            s.apply_broker_id("C", "b", 1, "x:9;5").unwrap_err().code,
            code::BROKER_ID_INVALID
        );
        assert_eq!(
            s.apply_broker_id("C", "b", 2, "").unwrap_err().code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn the_first_requester_becomes_master_then_the_policy_decides() {
        let mut s = group_of_three();
        let live = Live::default().with(1, 0, 0).with(2, 0, 0).with(3, 0, 0);
        let (elected, event) = s.elect_master("b", Some(2), false, false, &live).unwrap();
        assert_eq!((elected.master, elected.master_epoch), (2, 1));
        assert_eq!(elected.sync_state_set, BTreeSet::from([2]));
        s.apply(&event);
        // Asking again while the master lives changes nothing.
        assert!(matches!(
            s.elect_master("b", Some(3), false, false, &live),
            Err(ElectRefusal::MasterStillExists(e)) if e.master == 2
        ));
        // The master grows its in-sync set, then dies: the longest in-sync log wins.
        let (epoch, alter) = s
            .alter_sync_state_set("b", 2, 1, &BTreeSet::from([1, 2, 3]), 1, &live)
            .unwrap();
        assert_eq!(epoch, 2);
        s.apply(&alter);
        let live = Live::default().with(1, 1, 500).with(3, 1, 900);
        let (elected, event) = s.elect_master("b", None, false, false, &live).unwrap();
        assert_eq!(
            (
                elected.master,
                elected.master_epoch,
                elected.sync_state_set_epoch
            ),
            (3, 2, 3)
        );
        s.apply(&event);
        assert_eq!(
            s.groups["b"].sync_state_set,
            BTreeSet::from([3]),
            "an election resets the set"
        );
    }

    #[test]
    fn nobody_in_sync_and_alive_leaves_the_group_without_a_master() {
        let mut s = group_of_three();
        let live = Live::default().with(1, 0, 0);
        s.apply(&s.elect_master("b", Some(1), false, false, &live).unwrap().1);
        // The master (alone in its set) dies; 2 is alive but was never in sync.
        let live = Live::default().with(2, 1, 10);
        let Err(ElectRefusal::NoMaster(event)) = s.elect_master("b", None, false, false, &live)
        else {
            panic!("expected no master");
        };
        s.apply(&event);
        assert_eq!(s.groups["b"].master, None);
        assert_eq!(s.groups["b"].master_epoch, 2);
        // A broker asking gets 2012; unclean election would take 2.
        assert!(matches!(
            s.elect_master("b", Some(2), false, false, &live),
            Err(ElectRefusal::Refused(r)) if r.code == code::ELECT_MASTER_FAILED
        ));
        let (elected, _) = s.elect_master("b", Some(2), false, true, &live).unwrap();
        assert_eq!(elected.master, 2);
    }

    #[test]
    fn an_operator_can_hand_the_master_role_to_an_in_sync_broker_only() {
        let mut s = group_of_three();
        let live = Live::default().with(1, 1, 10).with(2, 1, 10).with(3, 1, 10);
        s.apply(&s.elect_master("b", Some(1), false, false, &live).unwrap().1);
        s.apply(
            &s.alter_sync_state_set("b", 1, 1, &BTreeSet::from([1, 2]), 1, &live)
                .unwrap()
                .1,
        );
        let (elected, _) = s.elect_master("b", Some(2), true, false, &live).unwrap();
        assert_eq!(elected.master, 2);
        assert!(matches!(
            s.elect_master("b", Some(3), true, false, &live),
            Err(ElectRefusal::Refused(r)) if r.code == code::ELECT_MASTER_FAILED
        ));
    }

    #[test]
    fn alter_sync_state_set_checks_in_apaches_order() {
        let mut s = group_of_three();
        let live = Live::default().with(1, 1, 10).with(2, 1, 10);
        s.apply(&s.elect_master("b", Some(1), false, false, &live).unwrap().1);
        let set = BTreeSet::from([1, 2]);
        let code_of = |r: Result<(i32, Event), Refusal>| r.unwrap_err().code;
        assert_eq!(
            code_of(s.alter_sync_state_set("nope", 1, 1, &set, 1, &live)),
            code::ALTER_SYNC_STATE_SET_FAILED
        );
        assert_eq!(
            code_of(s.alter_sync_state_set("b", 1, 1, &BTreeSet::from([1]), 1, &live)),
            code::ALTER_SYNC_STATE_SET_FAILED
        );
        assert_eq!(
            code_of(s.alter_sync_state_set("b", 2, 1, &set, 1, &live)),
            code::INVALID_MASTER
        );
        assert_eq!(
            code_of(s.alter_sync_state_set("b", 1, 0, &set, 1, &live)),
            code::FENCED_MASTER_EPOCH
        );
        assert_eq!(
            code_of(s.alter_sync_state_set("b", 1, 1, &set, 7, &live)),
            code::FENCED_SYNC_STATE_SET_EPOCH
        );
        assert_eq!(
            code_of(s.alter_sync_state_set("b", 1, 1, &BTreeSet::from([1, 9]), 1, &live)),
            code::INVALID_REPLICAS
        );
        assert_eq!(
            code_of(s.alter_sync_state_set("b", 1, 1, &BTreeSet::from([1, 3]), 1, &live)),
            code::BROKER_NOT_ALIVE
        );
        assert_eq!(
            code_of(s.alter_sync_state_set("b", 1, 1, &BTreeSet::from([2]), 1, &live)),
            code::ALTER_SYNC_STATE_SET_FAILED
        );
        assert!(s.alter_sync_state_set("b", 1, 1, &set, 1, &live).is_ok());
    }

    #[test]
    fn registering_reports_only_a_live_master_and_moves_addresses() {
        let mut s = group_of_three();
        let live = Live::default().with(1, 1, 10);
        s.apply(&s.elect_master("b", Some(1), false, false, &live).unwrap().1);
        let (reg, update) = s.register_broker("b", 2, "127.0.0.1:2", &live).unwrap();
        assert_eq!(reg.master, Some((1, "127.0.0.1:1".into(), 1, 1)));
        assert!(update.is_none());
        let (reg, update) = s
            .register_broker("b", 2, "10.0.0.2:2", &Live::default())
            .unwrap();
        assert_eq!(reg.master, None, "a dead master is not reported");
        s.apply(&update.unwrap());
        assert_eq!(s.groups["b"].replicas[&2].address, "10.0.0.2:2");
        assert_eq!(
            s.register_broker("b", 7, "x:1", &live).unwrap_err().code,
            code::BROKER_NEED_TO_BE_REGISTERED
        );
    }

    #[test]
    fn cleaning_refuses_live_brokers_unless_told() {
        let mut s = group_of_three();
        let live = Live::default().with(1, 1, 10);
        s.apply(&s.elect_master("b", Some(1), false, false, &live).unwrap().1);
        assert!(s.clean_broker_data("b", None, false, &live).is_err());
        assert!(s
            .clean_broker_data("b", Some(BTreeSet::from([1])), false, &live)
            .is_err());
        s.apply(
            &s.clean_broker_data("b", Some(BTreeSet::from([3])), false, &live)
                .unwrap(),
        );
        assert!(!s.groups["b"].replicas.contains_key(&3));
        s.apply(&s.clean_broker_data("b", None, true, &live).unwrap());
        assert!(s.groups.is_empty());
    }
}
