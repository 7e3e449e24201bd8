//! Registration with name servers: at start, every `registerNameServerPeriod`, and right
//! after topics change; unregistration at shutdown.

use std::sync::Arc;
use std::time::Duration;

use ferromq_protocol::body::{perm, RegisterBrokerBody};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::header::{
    CommandHeader, RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader,
};
use ferromq_protocol::RemotingCommand;
use ferromq_remoting::NoInbound;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::Broker;

const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);

pub(crate) async fn registration_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(broker.config().register_name_server_period_ms);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
            _ = broker.register_now.notified() => {}
        }
        register_all(&broker).await;
    }
}

pub(crate) async fn register_all(broker: &Broker) {
    // A broker the controller has not yet given a role is not announced to clients.
    if broker.role() == crate::Role::Fenced {
        return;
    }
    let _one_at_a_time = broker.registering.lock().await;
    let mut wrapper = broker.topics.wrapper();
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
    }
    .encode(&mut req.ext_fields);
    req.body = body.into();
    let config = broker.config();
    let calls = config.namesrv_addrs.iter().map(|addr| {
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
