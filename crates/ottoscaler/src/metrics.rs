//! Metrics of the ottoscaler, declared once and served on the admin port.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The ottoscaler's metrics.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    runs: Family<Vec<(String, String)>, Counter>,
    attempts: Family<Vec<(String, String)>, Counter>,
    workers: Gauge,
    orphans: Counter,
    /// Stages waiting in the fair queue for a worker slot (kept by `Slots`).
    pub(crate) queued: Gauge,
}

impl Metrics {
    /// Registers every metric in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "steward_ottoscaler_runs",
            "Pipeline runs ended, by outcome",
            self.runs.clone(),
        );
        r.register(
            "steward_ottoscaler_stage_attempts",
            "Stage attempts ended, by outcome or failure class",
            self.attempts.clone(),
        );
        r.register(
            "steward_ottoscaler_workers",
            "Worker pods or processes known to the scaler",
            self.workers.clone(),
        );
        r.register(
            "steward_ottoscaler_queued_stages",
            "Pipeline stages waiting in the fair queue for a worker slot",
            self.queued.clone(),
        );
        r.register(
            "steward_ottoscaler_orphans_deleted",
            "Workers deleted because no live run or task owned them",
            self.orphans.clone(),
        );
    }

    /// A run ended.
    pub fn run(&self, outcome: &str) {
        self.runs
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    /// An attempt ended.
    pub fn attempt(&self, outcome: &str) {
        self.attempts
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    /// Workers known.
    pub fn workers(&self, n: usize) {
        self.workers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Orphans deleted.
    pub fn orphans(&self, n: usize) {
        self.orphans.inc_by(n as u64);
    }
}
