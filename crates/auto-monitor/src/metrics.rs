//! The metrics of `steward monitor`, declared once.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the per-step node gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// Onboarding step.
    pub step: String,
}

/// Labels of the error counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Error kind ([`crate::Error::metric_label`]).
    pub kind: String,
}

/// Every metric.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Seconds from a node turning Ready to its first sample.
    pub onboarding_seconds: Histogram,
    /// Nodes per onboarding step.
    pub nodes: Family<StepLabels, Gauge>,
    /// Reconcile errors by kind.
    pub errors: Family<ErrorLabels, Counter>,
    /// Installs (applies) done.
    pub applies: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            onboarding_seconds: Histogram::new([
                1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
            ]),
            nodes: Family::default(),
            errors: Family::default(),
            applies: Counter::default(),
        }
    }
}

impl Metrics {
    /// Counts a failed reconcile of this kind.
    pub fn reconcile_error(&self, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels { kind: kind.into() })
            .inc();
    }

    /// Registers every metric under `steward_monitor_`.
    pub fn register(&self, registry: &mut Registry) {
        // The crate's error kinds exist from the start (0), so the series are there
        // before the first error and `increase()` sees the first one.
        for kind in ["kubernetes", "prometheus", "input", "helm"] {
            self.errors
                .get_or_create(&ErrorLabels { kind: kind.into() })
                .inc_by(0);
        }
        let r = registry.sub_registry_with_prefix("steward_monitor");
        r.register_with_unit(
            "node_onboarding",
            "Seconds from a node turning Ready (or the stack being applied) to its first sample in Prometheus",
            prometheus_client::registry::Unit::Seconds,
            self.onboarding_seconds.clone(),
        );
        r.register(
            "nodes",
            "Monitored nodes by onboarding step",
            self.nodes.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconcile errors by kind",
            self.errors.clone(),
        );
        r.register(
            "applies",
            "Server-side applies of the whole stack",
            self.applies.clone(),
        );
    }
}
