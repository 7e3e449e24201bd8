//! Loads spread over many topics with consumer groups reading them meanwhile (issue 21's
//! many-topics scenario, as the Go bench's `-topics`/`-groups`): topic `t` of the load is
//! `<topic>-<t:05>`, and group `g` of `<group>-g<g:03>` consumes the topics with
//! `t mod groups == g`, so each message is consumed once whatever the number of topics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ferromq_client::{ConsumeFrom, ConsumeResult, PushConsumer, Selector};

/// How long the groups get for their first rebalance before the load starts.
const ASSIGNMENT_WAIT: Duration = Duration::from_secs(5);
/// How long the groups get after the load to receive what was sent.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// The `t`-th topic of a load over `topics` topics: `topic` itself when there is one.
pub fn topic_name(topic: &str, topics: usize, t: usize) -> String {
    if topics <= 1 {
        topic.to_string()
    } else {
        format!("{topic}-{t:05}")
    }
}

/// Consumer groups reading the load's topics, and what they received.
pub struct Groups {
    consumers: Vec<PushConsumer>,
    received: Arc<AtomicU64>,
}

impl Groups {
    /// Starts `groups` push consumer groups (at most one per topic) from the first offset,
    /// and waits for their queues to be assigned.
    pub async fn start(
        namesrv: &str,
        topic: &str,
        topics: usize,
        groups: usize,
        group: &str,
    ) -> Result<Self> {
        let groups = groups.min(topics.max(1));
        let received = Arc::new(AtomicU64::new(0));
        let mut consumers = Vec::with_capacity(groups);
        for g in 0..groups {
            let mut builder = PushConsumer::builder()
                .name_servers([namesrv.to_string()])
                .group(format!("{group}-g{g:03}"))
                .instance_name(format!("bench-{}-g{g}", std::process::id()))
                .consume_from(ConsumeFrom::FirstOffset)
                .consume_batch_size(32);
            for t in (g..topics.max(1)).step_by(groups) {
                builder = builder.subscribe(topic_name(topic, topics, t), Selector::All);
            }
            let counter = received.clone();
            let consumer = builder
                .start(move |msgs| {
                    counter.fetch_add(msgs.len() as u64, Ordering::Relaxed);
                    async { ConsumeResult::Success }
                })
                .await
                .with_context(|| format!("consumer group {g}"))?;
            consumers.push(consumer);
        }
        tokio::time::sleep(ASSIGNMENT_WAIT).await;
        Ok(Groups {
            consumers,
            received,
        })
    }

    /// Waits (at most a minute) until `sent` messages arrived; returns how many did and
    /// how long the wait took, and stops the groups.
    pub async fn drain(self, sent: u64) -> (u64, f64) {
        let started = Instant::now();
        while self.received.load(Ordering::Relaxed) < sent && started.elapsed() < DRAIN_LIMIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (got, took) = (
            self.received.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64(),
        );
        for c in self.consumers {
            c.shutdown().await;
        }
        (got, took)
    }
}
