//! Renewal of push consumers' deliveries. A push consumer receives with `auto_renew` and
//! no invisible time: the front hides each message for `defaultInvisibleTimeMills` (60 s)
//! and, while the client's Telemetry stream lives, renews it `renewAheadTimeMillis` (10 s)
//! before it would reappear, for up to `renewMaxTimeMillis` (3 h), as Apache's proxy does, so slow processing never causes a redelivery. The client acks (or nacks)
//! with the handle it first got; the front substitutes the delivery's current pop time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_broker::Broker;
use tokio_util::sync::CancellationToken;

use crate::convert::now_ms;
use crate::service::Clients;

/// How often deliveries near their deadline are looked for.
const TICK: Duration = Duration::from_millis(500);

/// One delivery: which message of which queue, for which group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub offset: u64,
}

struct Renewal {
    client_id: String,
    pop_time: i64,
    visible_at: i64,
    since: Instant,
}

#[derive(Default)]
pub struct Renewals {
    // One lock for renewing and for taking: an ack never races a renewal of its message.
    tracked: Mutex<HashMap<Delivery, Renewal>>,
}

impl Renewals {
    pub fn track(&self, delivery: Delivery, client_id: &str, pop_time: i64, invisible_ms: i64) {
        self.tracked.lock().expect("renewals lock").insert(
            delivery,
            Renewal {
                client_id: client_id.to_string(),
                pop_time,
                visible_at: pop_time + invisible_ms,
                since: Instant::now(),
            },
        );
    }

    /// The current pop time of a renewed delivery, which stops being renewed (it is being
    /// acked, nacked or dead-lettered).
    pub fn take(&self, delivery: &Delivery) -> Option<i64> {
        self.tracked
            .lock()
            .expect("renewals lock")
            .remove(delivery)
            .map(|r| r.pop_time)
    }

    /// Renews what is about to reappear until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        broker: Arc<Broker>,
        clients: Arc<Clients>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            // Apache's proxy keys, read each round: updateBrokerConfig may change them.
            let config = broker.config();
            let invisible = config.default_invisible_time_ms as i64;
            let ahead = config.renew_ahead_time_ms as i64;
            let max_renewed = Duration::from_millis(config.renew_max_time_ms);
            let now = now_ms();
            let mut tracked = self.tracked.lock().expect("renewals lock");
            tracked.retain(|d, r| {
                if r.visible_at - now > ahead {
                    return true;
                }
                if !clients.is_live(&r.client_id) || r.since.elapsed() > max_renewed {
                    return false;
                }
                match broker.pop_change_invisible(
                    &d.group, &d.topic, d.queue_id, d.offset, r.pop_time, invisible,
                ) {
                    Ok(pop_time) => {
                        r.pop_time = pop_time;
                        r.visible_at = pop_time + invisible;
                        true
                    }
                    // Acknowledged, redelivered or gone meanwhile: nothing left to renew.
                    Err(_) => false,
                }
            });
        }
    }
}
