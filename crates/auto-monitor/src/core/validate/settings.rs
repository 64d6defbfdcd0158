//! What a validated spec resolves to. Pure data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::crd::{ComponentResources, Placement};

/// One wrong field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path under the object, e.g. `spec.thresholds.cpuPercent`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// How the stack is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallMode {
    /// steward's own manifests.
    Embedded,
    /// `helm upgrade --install`.
    Helm,
}

/// A local cluster flavour; each fixes what that flavour breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// kind (control plane in a container).
    Kind,
    /// minikube.
    Minikube,
    /// k3s (one binary, embedded components).
    K3s,
    /// Amazon EKS (managed control plane).
    Eks,
    /// Google GKE (managed control plane).
    Gke,
    /// Azure AKS (managed control plane).
    Aks,
    /// Anything else.
    Generic,
}

impl Profile {
    /// Every profile, as the spec names them.
    pub const ALL: [Self; 7] = [
        Self::Kind,
        Self::Minikube,
        Self::K3s,
        Self::Eks,
        Self::Gke,
        Self::Aks,
        Self::Generic,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kind => "kind",
            Self::Minikube => "minikube",
            Self::K3s => "k3s",
            Self::Eks => "eks",
            Self::Gke => "gke",
            Self::Aks => "aks",
            Self::Generic => "generic",
        }
    }

    /// Whether the scheduler, controller manager and etcd can be scraped: not in
    /// a local cluster's container or binary, and not where the provider hides
    /// them (a scrape job or alert for them would only ever report them down).
    pub fn scrapes_control_plane(self) -> bool {
        self == Self::Generic
    }
}

/// Alert thresholds after defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Percent.
    pub cpu_percent: f64,
    /// Percent.
    pub memory_percent: f64,
    /// Percent free.
    pub disk_free_percent: f64,
    /// Prometheus durations, validated.
    pub node_down_for: String,
    /// `for` of the usage alerts.
    pub usage_for: String,
    /// `for` of DiskSpaceLow.
    pub disk_for: String,
    /// `for` of NodeNotMonitored.
    pub not_monitored_for: String,
}

/// The spec, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Enabled components, a subset of [`crate::crd::COMPONENTS`].
    pub components: BTreeSet<String>,
    /// Install mode.
    pub mode: InstallMode,
    /// Chosen profile; `None` means detect from the nodes.
    pub profile: Option<Profile>,
    /// Retention (Prometheus duration).
    pub retention: String,
    /// Retention by size (Prometheus size), if any.
    pub retention_size: Option<String>,
    /// Scrape interval (Prometheus duration).
    pub scrape_interval: String,
    /// Onboarding deadline.
    pub onboarding_deadline: Duration,
    /// Alert thresholds.
    pub thresholds: Thresholds,
    /// Resources by component.
    pub resources: BTreeMap<String, ComponentResources>,
    /// Images by component (defaults filled in).
    pub images: BTreeMap<String, String>,
    /// Placement of Deployments.
    pub placement: Placement,
    /// Nodes to monitor.
    pub node_selector: BTreeMap<String, String>,
    /// Persistent volumes.
    pub storage: super::Volumes,
    /// Explicit Prometheus URL.
    pub prometheus_url: Option<String>,
    /// `spec.prometheus: external`: no Prometheus of steward's own.
    pub external_prometheus: bool,
    /// Helm chart.
    pub helm: Option<crate::crd::HelmSpec>,
    /// Where alerts go.
    pub alerting: crate::core::alerting::Routing,
}

impl Settings {
    /// Whether a component is enabled.
    pub fn has(&self, component: &str) -> bool {
        self.components.contains(component)
    }
}

/// Default images, pinned.
pub const DEFAULT_IMAGES: [(&str, &str); 5] = [
    ("prometheus", "quay.io/prometheus/prometheus:v3.5.0"),
    ("alertmanager", "quay.io/prometheus/alertmanager:v0.28.1"),
    ("grafana", "docker.io/grafana/grafana:12.1.0"),
    ("node-exporter", "quay.io/prometheus/node-exporter:v1.9.1"),
    (
        "kube-state-metrics",
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.16.0",
    ),
];
