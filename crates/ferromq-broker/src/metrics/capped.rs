//! A metric family with a bound on its label sets, as Apache's `metricsOtelCardinalityLimit`:
//! once a family holds that many, new label sets all count in one overflow series
//! (`otel_metric_overflow="true"`, Apache's spelling), and the broker says so once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use prometheus_client::metrics::family::{Family, MetricConstructor};
use tracing::warn;

/// Label names and values of one series; the common labels come from the registry.
pub type Labels = Vec<(&'static str, String)>;

pub struct Capped<M, C = fn() -> M> {
    name: &'static str,
    family: Family<Labels, M, C>,
    limit: usize,
    /// Label sets created so far (two threads creating the same one at once may count
    /// it twice: the bound is approximate by that much).
    created: AtomicUsize,
    warned: AtomicBool,
}

impl<M, C> Capped<M, C>
where
    M: Clone,
    C: MetricConstructor<M> + Clone,
{
    pub fn new(name: &'static str, constructor: C, limit: usize) -> Self {
        Capped {
            name,
            family: Family::new_with_constructor(constructor),
            limit: limit.max(2),
            created: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// The family, to register.
    pub fn family(&self) -> Family<Labels, M, C> {
        self.family.clone()
    }

    /// Applies `f` to the series of `labels`, or to the overflow series once the family
    /// is full.
    pub fn with(&self, labels: &Labels, f: impl FnOnce(&M)) {
        f(&self.handle(labels));
    }

    /// The series of `labels` (or the overflow series), to keep: prometheus-client's
    /// metrics are shared handles, so what is added to the clone shows in the family.
    pub fn handle(&self, labels: &Labels) -> M {
        if let Some(m) = self.family.get(labels) {
            return m.clone();
        }
        // One below the limit, so that the overflow series fits within it too.
        if self.created.load(Ordering::Relaxed) + 1 < self.limit {
            self.created.fetch_add(1, Ordering::Relaxed);
            return self.family.get_or_create(labels).clone();
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            warn!(
                metric = self.name,
                limit = self.limit,
                "metric label sets reached metricsOtelCardinalityLimit; new ones are counted together under otel_metric_overflow=\"true\""
            );
        }
        self.family
            .get_or_create(&vec![("otel_metric_overflow", "true".to_string())])
            .clone()
    }

    /// The label-set bound, which also bounds the handle caches in front of the family.
    pub fn limit(&self) -> usize {
        self.limit
    }
}
