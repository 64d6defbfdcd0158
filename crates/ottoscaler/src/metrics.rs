//! Metrics of the ottoscaler, declared once and served on the admin port.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A series' labels.
pub type Labels = Vec<(String, String)>;

/// A gauge family set from whole counts at once: a label set counted once reads 0
/// once it is gone, instead of keeping its last value.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    family: Family<Labels, Gauge>,
    seen: Arc<Mutex<BTreeSet<Labels>>>,
}

impl Counts {
    fn seen(&self) -> std::sync::MutexGuard<'_, BTreeSet<Labels>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the series `l` exist from the next [`Counts::set`] on (at 0 until
    /// counted).
    pub fn touch(&self, l: Labels) {
        self.seen().insert(l);
    }

    /// Sets every series to its count in `now`, 0 for those not in it.
    pub fn set(&self, now: &BTreeMap<Labels, i64>) {
        let mut seen = self.seen();
        seen.extend(now.keys().cloned());
        for l in seen.iter() {
            self.family
                .get_or_create(l)
                .set(now.get(l).copied().unwrap_or(0));
        }
    }
}

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
    workers: Counts,
    orphans: Counter,
    /// Stages waiting in the fair queue for a worker slot (kept by `Slots`).
    pub(crate) queued: Gauge,
    /// The same by worker class and team (kept by `Slots`).
    pub(crate) queue_depth: Counts,
    /// Log lines workers wrote that reached a run's or task's buffer.
    pub(crate) log_lines: Counter,
    /// Log lines a client did not get: it fell behind the buffer, which had
    /// dropped them (each client's gap counted once).
    pub(crate) log_lines_dropped: Counter,
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
            workers: Counts::default(),
            orphans: Counter::default(),
            queued: Gauge::default(),
            queue_depth: Counts::default(),
            log_lines: Counter::default(),
            log_lines_dropped: Counter::default(),
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
            "Worker pods or processes known to the scaler, by worker class, state (phase) and team",
            self.workers.family.clone(),
        );
        r.register(
            "steward_ottoscaler_queue_depth",
            "Pipeline stages waiting for a worker slot, by worker class and team",
            self.queue_depth.family.clone(),
        );
        r.register(
            "steward_ottoscaler_log_lines_received",
            "Log lines of workers received into the run and task log buffers",
            self.log_lines.clone(),
        );
        r.register(
            "steward_ottoscaler_log_lines_dropped",
            "Log lines a streaming client did not get because it fell behind the buffer",
            self.log_lines_dropped.clone(),
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

    /// Workers known, by (class, state, team).
    pub fn workers(&self, counts: &BTreeMap<(String, String, String), i64>) {
        let now = counts
            .iter()
            .map(|((class, state, team), n)| {
                let l = vec![
                    ("class".into(), class.clone()),
                    ("state".into(), state.clone()),
                    ("team".into(), team.clone()),
                ];
                (l, *n)
            })
            .collect();
        self.workers.set(&now);
    }

    /// Orphans deleted.
    pub fn orphans(&self, n: usize) {
        self.orphans.inc_by(n as u64);
    }
}
