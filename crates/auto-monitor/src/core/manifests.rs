//! The embedded stack as typed Kubernetes objects. Pure: [`render`] turns a
//! [`Stack`] into the list of objects to apply; the installer applies them in order
//! and prunes whatever an earlier render had and this one has not.

pub mod exporter;
pub mod operator;
pub mod security;
pub mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::core::alerting::{self, TEMPLATE_FILE};
use crate::core::dashboards::dashboards;
use crate::core::promconfig::{prometheus_config, yaml};
use crate::core::rules::{embedded_rules_yaml, rules};
use crate::core::stack::Stack;
use crate::crd::ObjectRef;

/// One object to apply.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its API resource (for the dynamic API).
    pub resource: ApiResource,
    /// Whether it lives in a namespace.
    pub namespaced: bool,
    /// The object, `apiVersion` and `kind` included.
    pub object: Value,
}

impl Manifest {
    fn new<K>(obj: &K) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let mut object = serde_json::to_value(obj).unwrap_or_default();
        object["apiVersion"] = resource.api_version.clone().into();
        object["kind"] = resource.kind.clone().into();
        let namespaced = obj.meta().namespace.is_some();
        Self {
            resource,
            namespaced,
            object,
        }
    }

    /// Name of the object.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// Reference kept in the inventory.
    pub fn reference(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.resource.api_version.clone(),
            kind: self.resource.kind.clone(),
            namespace: self.object["metadata"]["namespace"]
                .as_str()
                .map(String::from),
            name: self.name().to_string(),
        }
    }
}

/// The rendered stack.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Objects in apply order (RBAC and config before workloads).
    pub manifests: Vec<Manifest>,
    /// Hash of the Prometheus configuration and rules.
    pub config_hash: String,
    /// The Prometheus configuration (YAML).
    pub prometheus_yaml: String,
    /// The rules file (YAML).
    pub rules_yaml: String,
}

/// Renders every object of the embedded stack.
pub fn render(stack: &Stack) -> Rendered {
    let s = &stack.settings;
    let prometheus_yaml = yaml(&prometheus_config(stack));
    let rules_yaml = embedded_rules_yaml(&rules(&s.thresholds));
    let config_hash = hash(&[&prometheus_yaml, &rules_yaml]);
    let mut out = Vec::new();
    if s.has("prometheus") {
        out.extend(rbac(stack, "prometheus", prometheus_rules()));
        out.push(Manifest::new(&config_map(
            stack,
            "prometheus",
            &stack.object_name("prometheus"),
            [
                ("prometheus.yml", prometheus_yaml.clone()),
                ("rules.yml", rules_yaml.clone()),
            ],
        )));
        if let Some(pvc) = workloads::pvc(stack, "prometheus") {
            out.push(Manifest::new(&pvc));
        }
        out.push(Manifest::new(&workloads::prometheus(stack, &config_hash)));
        out.push(Manifest::new(&service(stack, "prometheus", 9090)));
    }
    if s.has("alertmanager") {
        let routing = &s.alerting;
        let cfg = yaml(&alerting::config(routing));
        let templates = alerting::templates(routing.lang);
        let h = hash(&[&cfg, &templates]);
        out.push(Manifest::new(&config_map(
            stack,
            "alertmanager",
            &stack.object_name("alertmanager"),
            [("alertmanager.yml", cfg), (TEMPLATE_FILE, templates)],
        )));
        out.push(Manifest::new(&workloads::alertmanager(stack, &h)));
        out.push(Manifest::new(&service(stack, "alertmanager", 9093)));
    }
    if s.has("grafana") {
        out.extend(grafana_config(stack));
        let h = hash(
            &out.iter()
                .filter(|m| m.name().contains("grafana") || m.name().contains("dashboard"))
                .map(|m| m.object["data"].to_string())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        if let Some(pvc) = workloads::pvc(stack, "grafana") {
            out.push(Manifest::new(&pvc));
        }
        out.push(Manifest::new(&workloads::grafana(stack, &h)));
        out.push(Manifest::new(&service(stack, "grafana", 3000)));
    }
    if s.has("node-exporter") {
        out.push(Manifest::new(&exporter::node_exporter(stack)));
    }
    if s.has("kube-state-metrics") {
        out.extend(rbac(stack, "kube-state-metrics", ksm_rules()));
        out.push(Manifest::new(&workloads::kube_state_metrics(stack)));
        out.push(Manifest::new(&service(stack, "kube-state-metrics", 8080)));
    }
    Rendered {
        manifests: out,
        config_hash,
        prometheus_yaml,
        rules_yaml,
    }
}

/// First 16 hex digits of the SHA-256 of the parts.
pub fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn meta(stack: &Stack, component: &str, name: &str, namespaced: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespaced.then(|| stack.namespace.clone()),
        labels: Some(stack.labels(component)),
        ..ObjectMeta::default()
    }
}

fn config_map<const N: usize>(
    stack: &Stack,
    component: &str,
    name: &str,
    data: [(&str, String); N],
) -> ConfigMap {
    ConfigMap {
        metadata: meta(stack, component, name, true),
        data: Some(data.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        ..ConfigMap::default()
    }
}

fn service(stack: &Stack, component: &str, port: i32) -> Service {
    Service {
        metadata: meta(stack, component, &stack.object_name(component), true),
        spec: Some(ServiceSpec {
            selector: Some(stack.selector(component)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port,
                target_port: Some(IntOrString::Int(port)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn rule(groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: ["get", "list", "watch"].map(String::from).to_vec(),
        ..PolicyRule::default()
    }
}

fn prometheus_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "nodes",
                "nodes/proxy",
                "nodes/metrics",
                "pods",
                "services",
                "endpoints",
            ],
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"]),
        PolicyRule {
            non_resource_urls: Some(vec!["/metrics".into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        },
    ]
}

fn ksm_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "nodes",
                "pods",
                "services",
                "namespaces",
                "persistentvolumeclaims",
                "persistentvolumes",
                "resourcequotas",
                "limitranges",
                "configmaps",
                "secrets",
                "replicationcontrollers",
                "endpoints",
            ],
        ),
        rule(
            &["apps"],
            &["deployments", "daemonsets", "statefulsets", "replicasets"],
        ),
        rule(&["batch"], &["jobs", "cronjobs"]),
        rule(&["policy"], &["poddisruptionbudgets"]),
        rule(&["autoscaling"], &["horizontalpodautoscalers"]),
        rule(&["storage.k8s.io"], &["storageclasses"]),
    ]
}

/// ServiceAccount, ClusterRole and ClusterRoleBinding of a component.
fn rbac(stack: &Stack, component: &str, rules: Vec<PolicyRule>) -> Vec<Manifest> {
    let sa = k8s_openapi::api::core::v1::ServiceAccount {
        metadata: meta(stack, component, &stack.object_name(component), true),
        ..Default::default()
    };
    let name = stack.cluster_name(component);
    let role = ClusterRole {
        metadata: meta(stack, component, &name, false),
        rules: Some(rules),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(stack, component, &name, false),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: stack.object_name(component),
            namespace: Some(stack.namespace.clone()),
            ..Subject::default()
        }]),
    };
    vec![
        Manifest::new(&sa),
        Manifest::new(&role),
        Manifest::new(&binding),
    ]
}

/// Label of the embedded Grafana's dashboard ConfigMaps. Not Grafana's sidecar label
/// (`grafana_dashboard`): the embedded Grafana mounts them itself, and a sidecar
/// Grafana elsewhere would load every stack's copy next to the chart's under the
/// same uids.
pub const DASHBOARD_LABEL: &str = "steward.io/dashboard";

/// Grafana's provisioning: the Prometheus data source, the dashboard provider and
/// one ConfigMap per dashboard (labelled [`DASHBOARD_LABEL`]).
fn grafana_config(stack: &Stack) -> Vec<Manifest> {
    let datasource = serde_json::json!({
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus", "uid": "prometheus", "type": "prometheus", "access": "proxy",
            "url": stack.datasource_url(), "isDefault": true,
        }],
    });
    let provider = serde_json::json!({
        "apiVersion": 1,
        "providers": [{
            "name": "steward", "folder": "steward", "type": "file",
            "options": { "path": workloads::DASHBOARD_DIR },
        }],
    });
    let mut out = vec![Manifest::new(&config_map(
        stack,
        "grafana",
        &format!("{}-provisioning", stack.object_name("grafana")),
        [
            ("datasources.yaml", yaml(&datasource)),
            ("dashboards.yaml", yaml(&provider)),
        ],
    ))];
    for (uid, json) in dashboard_files() {
        let mut cm = config_map(
            stack,
            "grafana",
            &dashboard_config_map(stack, uid),
            [(&format!("{uid}.json")[..], json)],
        );
        cm.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(DASHBOARD_LABEL.into(), uid.into());
        out.push(Manifest::new(&cm));
    }
    out
}

/// Every dashboard the embedded Grafana loads, (uid, JSON): steward's node and
/// cluster overviews, then steward's own (the chart's files).
pub(crate) fn dashboard_files() -> Vec<(&'static str, String)> {
    dashboards()
        .into_iter()
        .map(|d| (d.uid, d.json().to_string()))
        .chain(
            crate::core::selfmon::DASHBOARDS
                .into_iter()
                .map(|(uid, json)| (uid, json.to_string())),
        )
        .collect()
}

/// Name of a dashboard's ConfigMap.
pub(crate) fn dashboard_config_map(stack: &Stack, uid: &str) -> String {
    format!("{}-{uid}", stack.name)
}

#[cfg(test)]
mod tests;
