//! The broker's configuration over the wire: GET_BROKER_CONFIG and UPDATE_BROKER_CONFIG
//! (`mqadmin getBrokerConfig` / `updateBrokerConfig`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ferromq_protocol::code::response;
use ferromq_protocol::RemotingCommand;
use tracing::{info, warn};

use crate::config::{parse_properties, rewrite_properties, BrokerConfig};
use crate::Broker;

impl Broker {
    pub(crate) fn broker_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let version = serde_json::json!({
            "timestamp": self.boot_ms,
            "counter": self.config_version.load(std::sync::atomic::Ordering::Relaxed),
            "stateVersion": 0,
        });
        RemotingCommand::response_to(req, response::SUCCESS)
            .with_field("version", version.to_string())
            .with_body(self.config().to_properties())
    }

    /// Applies the keys in the body (Java properties) at once and writes them back to the
    /// `broker.conf` the broker was started with, as Apache does. Keys that only a restart
    /// can change are refused by name, and nothing changes then.
    pub(crate) fn update_broker_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let changes: HashMap<String, String> = match parse_properties(&req.body) {
            Ok(map) => map,
            Err(why) => {
                return RemotingCommand::error_response(
                    req,
                    response::SYSTEM_ERROR,
                    format!("the body is not a properties text: {why}"),
                )
            }
        };
        if changes.is_empty() {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                "no configuration key in the request",
            );
        }
        let next = {
            let mut current = self.config.write().expect("config lock");
            match current.with_runtime_changes(&changes) {
                Ok(next) => {
                    let next = Arc::new(next);
                    *current = next.clone();
                    next
                }
                Err(e) => {
                    return RemotingCommand::error_response(
                        req,
                        response::SYSTEM_ERROR,
                        e.to_string(),
                    )
                }
            }
        };
        self.config_version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!(?changes, "configuration changed at run time");
        self.topics
            .refresh_system_topics(&crate::system_topics(&next));
        // Permissions and system topics travel in the registration.
        self.request_registration();
        if let Err(e) = write_back(&next, &changes) {
            warn!(error = %e, "the configuration change applies but could not be written to broker.conf");
        }
        RemotingCommand::response_to(req, response::SUCCESS)
    }
}

/// Writes run-time changes into the broker's `broker.conf`, so that they survive a restart.
fn write_back(config: &BrokerConfig, changes: &HashMap<String, String>) -> std::io::Result<()> {
    let Some(path) = &config.file else {
        return Ok(());
    };
    let text = std::fs::read(path)?;
    let text: String = text.iter().map(|&b| char::from(b)).collect();
    let changes: BTreeMap<String, String> = changes
        .keys()
        .filter_map(|k| config.get(k).map(|v| (k.clone(), v)))
        .collect();
    let updated = rewrite_properties(&text, &changes);
    // ISO-8859-1 as Java writes it; characters beyond it as \u escapes.
    let mut bytes = Vec::with_capacity(updated.len());
    for c in updated.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => bytes.push(b),
            Err(_) => bytes.extend(format!("\\u{:04x}", u32::from(c)).bytes()),
        }
    }
    crate::persist::replace(path, &bytes)
}
