//! Samples brokers' put/get counters and groups' consumed offsets every few seconds, so
//! the dashboard can show rates and charts without asking brokers for history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_client::admin::AdminClient;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

const SAMPLE_EVERY: Duration = Duration::from_secs(3);
/// Samples kept per series: a few minutes of chart.
const KEEP: usize = 120;

/// One point of a broker's series.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub at_ms: i64,
    pub put_tps: f64,
    pub get_tps: f64,
}

#[derive(Default)]
struct Series {
    last: Option<(i64, u64, u64)>,
    points: VecDeque<Point>,
}

/// (when, consumer offsets summed over the group's queues)
type Consumed = (i64, i64);

#[derive(Default)]
pub struct Sampler {
    brokers: Mutex<BTreeMap<String, Series>>,
    /// group → the last two samples of its consumed offsets
    groups: Mutex<BTreeMap<String, (Consumed, Consumed)>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Sampler {
    pub fn start(admin: AdminClient, shutdown: CancellationToken) -> Arc<Self> {
        let me = Arc::new(Sampler::default());
        let s = me.clone();
        tokio::spawn(async move {
            loop {
                s.sample(&admin).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
            }
        });
        me
    }

    async fn sample(&self, admin: &AdminClient) {
        let Ok(masters) = admin.masters().await else {
            return;
        };
        for (name, addr) in masters {
            let Ok(info) = admin.broker_runtime_info(&addr).await else {
                continue;
            };
            let num = |k: &str| info.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let (puts, gets, at) = (
                num("msgPutTotalTodayNow"),
                num("msgGetTotalTodayNow"),
                now_ms(),
            );
            let mut brokers = self.brokers.lock().expect("sampler lock");
            let series = brokers.entry(name).or_default();
            if let Some((t0, p0, g0)) = series.last {
                let dt = ((at - t0) as f64 / 1000.0).max(0.001);
                series.points.push_back(Point {
                    at_ms: at,
                    put_tps: puts.saturating_sub(p0) as f64 / dt,
                    get_tps: gets.saturating_sub(g0) as f64 / dt,
                });
                if series.points.len() > KEEP {
                    series.points.pop_front();
                }
            }
            series.last = Some((at, puts, gets));
        }
        let Ok(groups) = admin.consumer_groups().await else {
            return;
        };
        for g in groups.into_iter().take(200) {
            let Ok(progress) = admin.consumer_progress(&g, None).await else {
                continue;
            };
            let consumed: i64 = progress.iter().map(|p| p.consumer_offset).sum();
            let mut table = self.groups.lock().expect("sampler lock");
            let entry = table
                .entry(g)
                .or_insert(((now_ms(), consumed), (now_ms(), consumed)));
            *entry = (entry.1, (now_ms(), consumed));
        }
    }

    /// Recent put/get rates per broker.
    pub fn broker_series(&self) -> BTreeMap<String, Vec<Point>> {
        self.brokers
            .lock()
            .expect("sampler lock")
            .iter()
            .map(|(k, s)| (k.clone(), s.points.iter().copied().collect()))
            .collect()
    }

    /// The latest put/get rates of a broker.
    pub fn broker_tps(&self, broker: &str) -> (f64, f64) {
        let brokers = self.brokers.lock().expect("sampler lock");
        brokers
            .get(broker)
            .and_then(|s| s.points.back())
            .map_or((0.0, 0.0), |p| (p.put_tps, p.get_tps))
    }

    /// A group's recent consume rate.
    pub fn group_tps(&self, group: &str) -> f64 {
        let table = self.groups.lock().expect("sampler lock");
        table.get(group).map_or(0.0, |((t0, c0), (t1, c1))| {
            if t1 > t0 {
                (c1 - c0).max(0) as f64 / ((t1 - t0) as f64 / 1000.0)
            } else {
                0.0
            }
        })
    }
}
