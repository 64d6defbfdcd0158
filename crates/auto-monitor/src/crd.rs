//! The `MonitoringStack` custom resource: what monitoring is wanted (spec) and what
//! steward observed (status). The CRD YAML shipped in `crates/auto-monitor/crds/` is
//! generated from these types (`steward monitor crd`), and a unit test keeps the two
//! equal.
//!
//! Fields that people get wrong (component names, durations, thresholds) are plain
//! strings and numbers in the schema on purpose: the API server would reject an enum
//! mismatch with a generic message, while [`crate::core::validate`] names the field in a
//! status condition and leaves what is installed untouched.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod alerting;

pub use alerting::{Alerting, EmailReceiver, Receiver, SecretKey, SlackReceiver, WebhookReceiver};

/// API group of steward's resources.
pub const GROUP: &str = "steward.io";

/// Spec of a monitoring stack. Every field has a default, so `spec: {}` installs the
/// embedded stack with the original plan's defaults.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "steward.io",
    version = "v1alpha1",
    kind = "MonitoringStack",
    namespaced,
    status = "MonitoringStackStatus",
    shortname = "mstack",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Profile","type":"string","jsonPath":".status.profile"}"#,
    printcolumn = r#"{"name":"Monitored","type":"string","jsonPath":".status.summary"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringStackSpec {
    /// Components to run: prometheus, alertmanager, grafana, node-exporter,
    /// kube-state-metrics. Default: all five.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// embedded (steward applies its own manifests; the default) or helm
    /// (`helm upgrade --install` of a chart with values steward generates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_mode: Option<String>,
    /// auto (detect from the nodes and the API server), kind, minikube, k3s, eks,
    /// gke, aks or generic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Prometheus TSDB retention, a Prometheus duration such as `15d`. Default `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// Also drop the oldest blocks once the TSDB is larger than this, a size in
    /// Prometheus's units (`B`, `KB`, `MB`, `GB`, `TB`, powers of 2) such as `8GB`.
    /// Keep it below the volume's size (WAL and head block come on top). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_size: Option<String>,
    /// Scrape and rule evaluation interval, a Prometheus duration. Default `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    /// A Ready node not monitored after this long gets a Warning Event with the
    /// likely cause. Default `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onboarding_deadline: Option<String>,
    /// Alert thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
    /// Resource requests and limits per component (keys are component names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, ComponentResources>>,
    /// Container images per component (keys are component names); defaults are pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<BTreeMap<String, String>>,
    /// Nodes to monitor: node-exporter runs there and onboarding tracks them.
    /// Default: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Where the stack's Deployments run (node-exporter runs on every monitored node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Persistent volumes for Prometheus and Grafana; emptyDirs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Whose Prometheus scrapes: `steward` (its own; the default) or `external` (a
    /// Prometheus Operator's Prometheus that selects the stack's ServiceMonitor and
    /// PrometheusRule; steward runs none and reads onboarding from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// The Prometheus HTTP API steward reads onboarding status from. Default: the
    /// stack's own Service (`http://<name>-prometheus.<namespace>.svc:9090`), or with
    /// `prometheus: external` the selecting Prometheus's `prometheus-operated` Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
    /// Helm mode: chart reference and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSpec>,
    /// Where alerts go (Slack, webhook, email), by severity. Default: nowhere
    /// (Alertmanager's null receiver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerting: Option<Alerting>,
}

/// Alert thresholds; each rule's `for` is a Prometheus duration.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// HighCPUUsage fires above this percentage (0-100). Default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// HighMemoryUsage fires above this percentage (0-100). Default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f64>,
    /// DiskSpaceLow fires below this percentage of free space (0-100). Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_percent: Option<f64>,
    /// `for` of NodeDown. Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_down_for: Option<String>,
    /// `for` of HighCPUUsage and HighMemoryUsage. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_for: Option<String>,
    /// `for` of DiskSpaceLow. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_for: Option<String>,
    /// `for` of NodeNotMonitored. Default `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_monitored_for: Option<String>,
}

/// Requests and limits of one component, as Kubernetes quantities.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentResources {
    /// Requests (`cpu`, `memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, String>>,
    /// Limits (`cpu`, `memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, String>>,
}

/// Node selection for the stack's Deployments.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Node selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations (the Pod `tolerations` shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "toleration_list")]
    pub tolerations: Option<Vec<Toleration>>,
}

/// Persistent volumes of the stack.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Prometheus's TSDB volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Volume>,
    /// Grafana's database (users, API keys, dashboards saved in the UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana: Option<Volume>,
    /// Deprecated: the first form of `prometheus.size`, still read as it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Deprecated: the first form of `prometheus.storageClassName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// One PersistentVolumeClaim (ReadWriteOnce).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Size, a Kubernetes quantity such as `10Gi`.
    pub size: String,
    /// StorageClass; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Helm install mode settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmSpec {
    /// Chart reference (a path, `repo/name` or an OCI reference).
    pub chart: String,
    /// Chart version (pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Release name. Default: the MonitoringStack's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// How long `helm upgrade --wait` may take before the release is rolled back, a
    /// duration such as `5m`. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Extra chart values merged over the ones steward generates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub values: Option<serde_json::Value>,
}

/// Schema of a list of tolerations, checked by the Pod API when applied (k8s-openapi
/// types carry no JSON schema without a workspace-wide feature).
fn toleration_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "nullable": true,
        "items": {
            "type": "object",
            "properties": {
                "key": { "type": "string" },
                "operator": { "type": "string" },
                "value": { "type": "string" },
                "effect": { "type": "string" },
                "tolerationSeconds": { "type": "integer", "format": "int64" },
            },
        },
    })
}

/// Schema of a free-form object (kept as is by the API server).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// What steward observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringStackStatus {
    /// Pending, Installing, Installed, Invalid or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The profile in use (detected or chosen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `monitored/total` nodes, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// SpecValid, PreflightPassed, Installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pre-flight findings of the last install.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PreflightFinding>,
    /// Objects steward applied for this stack; what drops out is pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<ObjectRef>,
    /// When steward first applied the stack; nodes Ready before that are measured
    /// from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    /// Hash of the generated Prometheus configuration and rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Per-node onboarding, one entry per node in the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeOnboarding>,
}

/// A status condition (the `metav1.Condition` shape).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// For people; names the field when the spec is invalid.
    pub message: String,
    /// RFC 3339 time of the last status change.
    pub last_transition_time: String,
}

/// One pre-flight check.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreflightFinding {
    /// Check name.
    pub check: String,
    /// ok, warning or blocking.
    pub severity: String,
    /// What was found.
    pub message: String,
}

/// A reference to an applied object.
#[derive(
    Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// apiVersion.
    pub api_version: String,
    /// kind.
    pub kind: String,
    /// Namespace; absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// Onboarding of one node: each step's time (RFC 3339) as steward saw it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeOnboarding {
    /// Node name.
    pub node: String,
    /// When the node last turned Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<String>,
    /// The node-exporter pod on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_pod: Option<String>,
    /// When the exporter pod was scheduled to the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_scheduled_at: Option<String>,
    /// When the exporter pod turned Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_ready_at: Option<String>,
    /// Whether the node's scrape target is up now.
    #[serde(default)]
    pub target_up: bool,
    /// When steward first saw the target up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_up_at: Option<String>,
    /// Timestamp of the first sample steward saw from the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sample_at: Option<String>,
    /// Seconds from Ready to first sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onboarding_seconds: Option<f64>,
    /// Share of successful scrapes over the last hour (0-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    /// The step the node is at: NotReady, WaitingForExporter, ExporterStarting,
    /// WaitingForScrape, Monitored.
    pub step: String,
    /// Likely cause when the node is late, as last reported in an Event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_cause: Option<String>,
}

/// Component names the spec accepts.
pub const COMPONENTS: [&str; 5] = [
    "prometheus",
    "alertmanager",
    "grafana",
    "node-exporter",
    "kube-state-metrics",
];

/// The CRD as YAML, as shipped in the repository.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = MonitoringStack::crd();
    // A typed CRD always serialises: every field is a string, number, map or list.
    let body = serde_saphyr::to_string(&crd).unwrap_or_default();
    format!(
        "# Generated by `steward monitor crd` from crates/auto-monitor/src/crd.rs; do not edit.\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_crd_matches_the_types() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crds/steward.io_monitoringstacks.yaml"
        );
        let shipped = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            shipped == crd_yaml(),
            "{path} is stale: regenerate with `cargo run -p steward -- monitor crd > {path}`"
        );
    }
}
