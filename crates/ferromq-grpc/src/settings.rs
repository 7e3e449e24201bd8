//! The settings a client gets back on its Telemetry stream: its own, with what the broker
//! decides merged in, as Apache's proxy does (`GrpcClientSettingsManager`). Clients depend
//! on these: the Java producer refuses every send at `max_body_size` 0 and wants an
//! exponential backoff, push consumers need a batch size and a long-polling timeout, and
//! the Python client applies a reply only when it carries `metric`.

use ferromq_broker::Broker;
use ferromq_grpc_proto::v2::{
    self as pb, retry_policy::Strategy, settings::PubSub, CustomizedBackoff, ExponentialBackoff,
    RetryPolicy,
};

use crate::convert::millis_to_duration;

/// Apache's default group retry policy (`CustomizedRetryPolicy`): 1 s … 2 h.
const DEFAULT_RETRY_DELAYS_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];
const PRODUCER_MAX_ATTEMPTS: i32 = 3;
const RECEIVE_BATCH_SIZE: i32 = 32;
const LONG_POLLING_TIMEOUT_MS: i64 = 20_000;

/// The client's settings with the broker's merged in.
///
/// # Errors
/// Settings that are neither a producer's nor a consumer's.
pub fn merged(broker: &Broker, mut s: pb::Settings) -> Result<pb::Settings, String> {
    match &mut s.pub_sub {
        Some(PubSub::Publishing(p)) => {
            p.validate_message_type = true;
            p.max_body_size = i32::try_from(broker.config().max_message_size).unwrap_or(i32::MAX);
            s.backoff_policy = Some(RetryPolicy {
                max_attempts: PRODUCER_MAX_ATTEMPTS,
                strategy: Some(Strategy::ExponentialBackoff(ExponentialBackoff {
                    initial: Some(millis_to_duration(10)),
                    max: Some(millis_to_duration(1_000)),
                    multiplier: 2.0,
                })),
            });
        }
        Some(PubSub::Subscription(sub)) => {
            let group = sub
                .group
                .as_ref()
                .map(|g| g.name.clone())
                .unwrap_or_default();
            let config = broker.subscription_group(&group);
            sub.receive_batch_size = Some(RECEIVE_BATCH_SIZE);
            sub.long_polling_timeout = Some(millis_to_duration(LONG_POLLING_TIMEOUT_MS));
            sub.fifo = Some(config.as_ref().is_some_and(|g| g.consume_message_orderly()));
            let retry_max = config.as_ref().map_or(16, |g| g.retry_max_times);
            s.backoff_policy = Some(RetryPolicy {
                max_attempts: retry_max + 1,
                strategy: Some(group_backoff(config.as_ref())),
            });
        }
        None => return Err("there is no publishing or subscription data in settings".into()),
    }
    s.metric = Some(pb::Metric {
        on: false,
        endpoints: None,
    });
    Ok(s)
}

/// The group's `groupRetryPolicy`: exponential when it says so, else its customized
/// delays, else Apache's default delays.
fn group_backoff(config: Option<&ferromq_broker::groups::SubscriptionGroupConfig>) -> Strategy {
    let policy = config.and_then(|g| g.other.get("groupRetryPolicy"));
    let exponential =
        policy.and_then(|p| p.get("type")).and_then(|t| t.as_str()) == Some("EXPONENTIAL");
    if exponential {
        let e = policy.and_then(|p| p.get("exponentialRetryPolicy"));
        let num = |k: &str, d: i64| {
            e.and_then(|e| e.get(k))
                .and_then(|v| v.as_i64())
                .unwrap_or(d)
        };
        return Strategy::ExponentialBackoff(ExponentialBackoff {
            initial: Some(millis_to_duration(num("initial", 5_000))),
            max: Some(millis_to_duration(num("max", 7_200_000))),
            multiplier: num("multiplier", 2) as f32,
        });
    }
    let next: Vec<i64> = policy
        .and_then(|p| p.get("customizedRetryPolicy"))
        .and_then(|c| c.get("next"))
        .and_then(|n| n.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
        .filter(|v: &Vec<i64>| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_RETRY_DELAYS_MS.to_vec());
    Strategy::CustomizedBackoff(CustomizedBackoff {
        next: next.into_iter().map(millis_to_duration).collect(),
    })
}
