//! Registration with name servers: the whole topic table at start, every
//! `registerNameServerPeriod` and after a topic is deleted; only the changed topics right
//! after topics are created or updated (Apache's `registerIncrementBrokerData`), so that a
//! creation costs the same at 10,000 topics as at one. Unregistration at shutdown.

use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::body::{perm, RegisterBrokerBody};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, QueryDataVersionRequestHeader, RegisterBrokerRequestHeader,
    UnregisterBrokerRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::NoInbound;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::Broker;

const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);

/// What the registration task owes the name servers (changes coalesce while it sends).
#[derive(Default)]
pub(crate) struct PendingRegistration {
    whole: bool,
    topics: std::collections::BTreeSet<String>,
}

impl PendingRegistration {
    pub(crate) fn whole(&mut self) {
        self.whole = true;
    }

    pub(crate) fn topics(&mut self, names: impl IntoIterator<Item = String>) {
        self.topics.extend(names);
    }
}

pub(crate) async fn registration_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(broker.config().register_name_server_period_ms);
    let mut next_periodic = tokio::time::Instant::now() + period;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next_periodic) => {
                next_periodic = tokio::time::Instant::now() + period;
                if broker.config().force_register {
                    register_all(&broker).await;
                } else {
                    register_where_stale(&broker).await;
                }
            }
            _ = broker.register_now.notified() => {
                let pending = std::mem::take(&mut *broker.pending_registration.lock().expect("pending registration lock"));
                if pending.whole {
                    register_all(&broker).await;
                } else if !pending.topics.is_empty() {
                    let names: Vec<String> = pending.topics.into_iter().collect();
                    register_topics(&broker, &names).await;
                }
            }
        }
    }
}

/// Sends the whole topic table to every name server.
pub(crate) async fn register_all(broker: &Broker) {
    register(broker, None, None).await;
}

/// Sends only the named topics (those that still exist): after a creation or an update.
pub(crate) async fn register_topics(broker: &Broker, names: &[String]) {
    register(broker, Some(names), None).await;
}

/// `forceRegister=false`: the whole table goes only to the name servers whose copy of the
/// broker's table version is stale (QUERY_DATA_VERSION, which also keeps the broker alive
/// there, as Apache's).
async fn register_where_stale(broker: &Broker) {
    if broker.role() == crate::Role::Fenced {
        return;
    }
    let version = broker.topics.data_version();
    let mut ask = RemotingCommand::request(request::QUERY_DATA_VERSION);
    QueryDataVersionRequestHeader {
        broker_name: broker.config().broker_name.clone(),
        broker_addr: broker.config().advertised_addr(),
        cluster_name: broker.config().cluster_name.clone(),
        broker_id: broker.registered_broker_id(),
    }
    .encode(&mut ask.ext_fields);
    ask.body = serde_json::to_vec(&version)
        .expect("a data version serializes")
        .into();
    let config = broker.config();
    let answers = config.namesrv_addrs.iter().map(|addr| {
        let ask = ask.clone();
        async move {
            let stale = match namesrv_invoke(broker, addr, ask).await {
                Ok(resp) if resp.code == response::SUCCESS => {
                    resp.field("changed") != Some("false")
                }
                _ => true,
            };
            stale.then(|| addr.clone())
        }
    });
    let stale: Vec<String> = futures::future::join_all(answers)
        .await
        .into_iter()
        .flatten()
        .collect();
    if !stale.is_empty() {
        register(broker, None, Some(&stale)).await;
    }
}

/// `only`: the topics of an increment, else the whole table. `to`: these name servers,
/// else all.
async fn register(broker: &Broker, only: Option<&[String]>, to: Option<&[String]>) {
    // A broker the controller has not yet given a role is not announced to clients.
    if broker.role() == crate::Role::Fenced {
        return;
    }
    let _one_at_a_time = broker.registering.lock().await;
    let mut wrapper = match only {
        Some(names) => broker.topics.wrapper_of(names),
        None => broker.topics.wrapper(),
    };
    // A broker made read-only (or write-only) by `brokerPermission` advertises every topic
    // so, as Apache's `registerBrokerAll`: clients then send (or pull) elsewhere.
    let broker_perm = broker.config().broker_permission;
    if broker_perm & (perm::READ | perm::WRITE) != perm::READ | perm::WRITE {
        for topic in wrapper.topic_config_table.values_mut() {
            topic.perm &= broker_perm;
        }
    }
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper,
        filter_server_list: vec![],
    };
    let body = serde_json::to_vec(&body).expect("registration body serializes");
    let mut req = RemotingCommand::request(request::REGISTER_BROKER);
    RegisterBrokerRequestHeader {
        broker_name: broker.config().broker_name.clone(),
        broker_addr: broker.config().advertised_addr(),
        cluster_name: broker.config().cluster_name.clone(),
        ha_server_addr: Some(broker.config().ha_server_addr()),
        broker_id: broker.registered_broker_id(),
        compressed: Some(false),
        body_crc32: Some(ferromq_protocol::message::body_crc(&body) as i32),
        heartbeat_timeout_millis: None,
        whole_table: Some(only.is_none()),
    }
    .encode(&mut req.ext_fields);
    req.body = body.into();
    let config = broker.config();
    let calls = config
        .namesrv_addrs
        .iter()
        .filter(|addr| to.is_none_or(|to| to.contains(addr)))
        .map(|addr| {
        let req = req.clone();
        async move {
            match namesrv_invoke(broker, addr, req).await {
                Ok(resp) if resp.code == response::SUCCESS => {
                    debug!(namesrv = %addr, "registered");
                    if broker.role() == crate::Role::Slave {
                        broker.learn_master(resp.field("masterAddr"));
                        broker.learn_master_ha(resp.field("haServerAddr"));
                    }
                }
                Ok(resp) => warn!(namesrv = %addr, code = resp.code, remark = ?resp.remark, "registration refused"),
                Err(e) => warn!(namesrv = %addr, error = %e, "registration failed"),
            }
        }
    });
    futures::future::join_all(calls).await;
}

pub(crate) async fn unregister_all(broker: &Broker) {
    let mut req = RemotingCommand::request(request::UNREGISTER_BROKER);
    UnregisterBrokerRequestHeader {
        broker_name: broker.config().broker_name.clone(),
        broker_addr: broker.config().advertised_addr(),
        cluster_name: broker.config().cluster_name.clone(),
        broker_id: broker.registered_broker_id(),
    }
    .encode(&mut req.ext_fields);
    let config = broker.config();
    let calls = config.namesrv_addrs.iter().map(|addr| {
        let req = req.clone();
        async move {
            if let Err(e) = namesrv_invoke(broker, addr, req).await {
                warn!(namesrv = %addr, error = %e, "unregistration failed");
            }
        }
    });
    futures::future::join_all(calls).await;
}

/// Name-server connections are kept open: a name server forgets brokers whose
/// registering connection closes. A closed one is replaced on the next call.
pub(crate) async fn namesrv_invoke(
    broker: &Broker,
    addr: &str,
    req: RemotingCommand,
) -> Result<RemotingCommand, ferromq_remoting::RemotingError> {
    let cached = broker
        .namesrv_conns
        .lock()
        .expect("namesrv connections lock")
        .get(addr)
        .filter(|c| !c.is_closed())
        .cloned();
    let conn = match cached {
        Some(c) => c,
        None => {
            let c = ferromq_remoting::connect(addr, Arc::new(NoInbound), REGISTER_TIMEOUT).await?;
            broker
                .namesrv_conns
                .lock()
                .expect("namesrv connections lock")
                .insert(addr.to_string(), c.clone());
            c
        }
    };
    conn.invoke(req, REGISTER_TIMEOUT).await
}
