//! Every metric of graceful drain, declared once.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set with one `reason`/`outcome`/`result` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// The value.
    pub outcome: String,
}

/// Label set of webhook decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    /// `allow_not_targeted`, `deny_start_drain`, ...
    pub decision: String,
}

/// Label set of a disruption budget's kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabel {
    /// `PodDisruptionBudget` or `StatefulSet`.
    pub budget: String,
}

/// Label set of config reloads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Label set of an error kind ([`crate::Error::metric_label`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The kind.
    pub kind: String,
}

/// Label set of a VerticalPodAutoscaler.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VpaLabel {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub vpa: String,
}

/// The metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Seconds from isolation to the final eviction.
    pub drain_duration: Histogram,
    /// Finished drains by outcome (`drained`, `delay`, `max_wait`, `blocked_by_pdb`, `restored`, `gone`).
    pub outcomes: Family<Outcome, Counter>,
    /// Drains under way (isolated, not yet evicted).
    pub active: Gauge,
    /// Drains that had to wait for a disruption budget, by budget kind
    /// (`PodDisruptionBudget`, `StatefulSet`).
    pub queued: Family<BudgetLabel, Counter>,
    /// Configuration reloads by result.
    pub config_reloads: Family<ReloadLabel, Counter>,
    /// Webhook answers by decision.
    pub webhook_requests: Family<DecisionLabel, Counter>,
    /// Seconds the webhook takes to answer.
    pub webhook_duration: Histogram,
    /// 1 for each VPA in Recreate mode that could use InPlaceOrRecreate (leader only,
    /// on a cluster that resizes pods in place).
    pub vpa_inplace_candidates: Family<VpaLabel, Gauge>,
    /// Failed controller steps by error kind (each is retried).
    pub reconcile_errors: Family<ErrorLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            drain_duration: Histogram::new(exponential_buckets(0.5, 2.0, 12)),
            outcomes: Family::default(),
            active: Gauge::default(),
            queued: Family::default(),
            config_reloads: Family::default(),
            webhook_requests: Family::default(),
            webhook_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            vpa_inplace_candidates: Family::default(),
            reconcile_errors: Family::default(),
        };
        // Known label values exist from the start (0): the series are there before
        // the first event, and `increase()` sees the first one.
        for budget in ["PodDisruptionBudget", "StatefulSet"] {
            m.queued
                .get_or_create(&BudgetLabel {
                    budget: budget.into(),
                })
                .inc_by(0);
        }
        for result in ["ok", "error"] {
            m.config_reloads
                .get_or_create(&ReloadLabel {
                    result: result.into(),
                })
                .inc_by(0);
        }
        registry.register(
            "steward_graceful_drain_duration_seconds",
            "Seconds from taking a pod out of load balancing to evicting it",
            m.drain_duration.clone(),
        );
        registry.register(
            "steward_graceful_drain_outcomes",
            "Finished drains by outcome",
            m.outcomes.clone(),
        );
        registry.register(
            "steward_graceful_drain_active_drains",
            "Pods being drained now",
            m.active.clone(),
        );
        registry.register(
            "steward_graceful_drain_queued",
            "Drains that waited for a disruption budget before isolating, by budget kind",
            m.queued.clone(),
        );
        registry.register(
            "steward_graceful_drain_config_reloads",
            "Configuration reloads by result",
            m.config_reloads.clone(),
        );
        registry.register(
            "steward_graceful_drain_webhook_requests",
            "Eviction webhook answers by decision",
            m.webhook_requests.clone(),
        );
        registry.register(
            "steward_graceful_drain_webhook_duration_seconds",
            "Seconds the eviction webhook takes to answer",
            m.webhook_duration.clone(),
        );
        registry.register(
            "steward_graceful_drain_vpa_inplace_candidates",
            "VerticalPodAutoscalers in Recreate mode that could use InPlaceOrRecreate on this cluster (1 each; leader only)",
            m.vpa_inplace_candidates.clone(),
        );
        registry.register(
            "steward_graceful_drain_reconcile_errors",
            "Failed drain controller steps by error kind (each is retried)",
            m.reconcile_errors.clone(),
        );
        m
    }

    /// Counts a failed controller step.
    pub fn reconcile_error(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Counts a finished drain.
    pub fn outcome(&self, outcome: &str) {
        self.outcomes
            .get_or_create(&Outcome {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a reload.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" }.to_string();
        self.config_reloads
            .get_or_create(&ReloadLabel { result })
            .inc();
    }
}

/// Label set of agent answers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`, `not_found`, `bad_request`, `error`.
    pub result: String,
}

/// The node agent's metrics (`steward graceful-drain agent`).
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    /// Answers of `/v1/connections` by result.
    pub requests: Family<ResultLabel, Counter>,
    /// Seconds one count takes (scan of /proc and the socket tables).
    pub scan_duration: Histogram,
    /// 1 while the agent's Node advertises it.
    pub advertised: Gauge,
}

impl AgentMetrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            scan_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            advertised: Gauge::default(),
        };
        registry.register(
            "steward_graceful_drain_agent_requests",
            "Connection-count answers by result",
            m.requests.clone(),
        );
        registry.register(
            "steward_graceful_drain_agent_scan_duration_seconds",
            "Seconds one connection count takes",
            m.scan_duration.clone(),
        );
        registry.register(
            "steward_graceful_drain_agent_advertised",
            "1 while the agent's Node advertises it",
            m.advertised.clone(),
        );
        m
    }

    /// Counts an answer.
    pub fn request(&self, result: &str) {
        self.requests
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }
}
