//! Metrics of the ottoscaler, declared once and served on the admin port.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Seconds from 50 ms to about 28 h: a queue wait of a few milliseconds up to a
/// day-long pipeline.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 22))
}

fn histograms() -> Family<Labels, Histogram> {
    Family::new_with_constructor(seconds)
}

/// The ottoscaler's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    runs: Family<Labels, Counter>,
    attempts: Family<Labels, Counter>,
    run_seconds: Family<Labels, Histogram>,
    stage_seconds: Family<Labels, Histogram>,
    queue_seconds: Histogram,
    resumed: Counter,
    /// gRPC calls by method and code (filled by the server's layer).
    pub(crate) grpc: Family<Labels, Histogram>,
    workers: Gauge,
    orphans: Counter,
    /// Stages waiting in the fair queue for a worker slot (kept by `Slots`).
    pub(crate) queued: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            runs: Family::default(),
            attempts: Family::default(),
            run_seconds: histograms(),
            stage_seconds: histograms(),
            queue_seconds: seconds(),
            resumed: Counter::default(),
            grpc: crate::server::metrics_layer::family(),
            workers: Gauge::default(),
            orphans: Counter::default(),
            queued: Gauge::default(),
        }
    }
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
            "steward_ottoscaler_run_duration_seconds",
            "Pipeline runs from submission to their end, by outcome (across restarts)",
            self.run_seconds.clone(),
        );
        r.register(
            "steward_ottoscaler_stage_duration_seconds",
            "Stage attempts from their worker's creation to their end, by outcome or failure class",
            self.stage_seconds.clone(),
        );
        r.register(
            "steward_ottoscaler_stage_queue_seconds",
            "Time a stage attempt waited in the fair queue for a worker slot",
            self.queue_seconds.clone(),
        );
        r.register(
            "steward_ottoscaler_runs_resumed",
            "Runs a new scaler continued after a restart or a failover",
            self.resumed.clone(),
        );
        r.register(
            "steward_ottoscaler_grpc_request_duration_seconds",
            "gRPC calls from request to response headers, by method and code",
            self.grpc.clone(),
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

    /// A run ended after `seconds` (`None`: unknown).
    pub fn run(&self, outcome: &str, seconds: Option<f64>) {
        let l = vec![("outcome".into(), outcome.into())];
        self.runs.get_or_create(&l).inc();
        if let Some(s) = seconds {
            self.run_seconds.get_or_create(&l).observe(s);
        }
    }

    /// An attempt ended, `seconds` after its worker was created (`None`: it had none).
    pub fn attempt(&self, outcome: &str, seconds: Option<f64>) {
        let l = vec![("outcome".into(), outcome.into())];
        self.attempts.get_or_create(&l).inc();
        if let Some(s) = seconds {
            self.stage_seconds.get_or_create(&l).observe(s);
        }
    }

    /// An attempt waited `seconds` for a slot.
    pub fn queued_for(&self, seconds: f64) {
        self.queue_seconds.observe(seconds);
    }

    /// A run was continued by this process.
    pub fn resumed(&self) {
        self.resumed.inc();
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
