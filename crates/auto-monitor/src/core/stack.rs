//! One resolved stack: the MonitoringStack's name and namespace, its validated
//! settings and the profile in force. Naming and labels of every object live here.

use std::collections::BTreeMap;

use crate::core::validate::{Profile, Settings};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "steward-monitor";
/// Label naming the MonitoringStack (`<namespace>.<name>`) on every applied object.
pub const STACK_LABEL: &str = "steward.io/monitoring-stack";
/// Pod template annotation carrying the configuration hash; a new hash rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "steward.io/config-hash";

/// A stack ready to render.
#[derive(Debug, Clone)]
pub struct Stack {
    /// MonitoringStack name.
    pub name: String,
    /// Namespace of the MonitoringStack and of everything namespaced it installs.
    pub namespace: String,
    /// Validated settings.
    pub settings: Settings,
    /// Profile in force.
    pub profile: Profile,
    /// With `spec.prometheus: external`: the URL of the operator's Prometheus that
    /// pre-flight found selecting the stack's objects (`crate::core::external`).
    pub external_url: Option<String>,
}

impl Stack {
    /// A stack.
    pub fn new(name: &str, namespace: &str, settings: Settings, profile: Profile) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            settings,
            profile,
            external_url: None,
        }
    }

    /// Name of a component's objects: `<stack>-<component>`.
    pub fn object_name(&self, component: &str) -> String {
        format!("{}-{component}", self.name)
    }

    /// Name of a cluster-scoped object (unique across namespaces).
    pub fn cluster_name(&self, component: &str) -> String {
        format!(
            "steward-monitor-{}-{}-{component}",
            self.namespace, self.name
        )
    }

    /// In-cluster DNS name of a component's Service.
    pub fn service_host(&self, component: &str) -> String {
        format!("{}.{}.svc", self.object_name(component), self.namespace)
    }

    /// The value of [`STACK_LABEL`].
    pub fn stack_label(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// Labels selecting a component's pods.
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        [
            ("app.kubernetes.io/name".to_string(), component.to_string()),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
        ]
        .into()
    }

    /// Labels of every object of a component.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut l = self.selector(component);
        l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
        l.insert(STACK_LABEL.into(), self.stack_label());
        l
    }

    /// The Prometheus HTTP API steward reads onboarding from: `spec.prometheusUrl`,
    /// else steward's own Prometheus, or with `spec.prometheus: external` the chosen
    /// operator Prometheus (until one is found, the operator's Service in the stack's
    /// namespace).
    pub fn prometheus_url(&self) -> String {
        if let Some(u) = &self.settings.prometheus_url {
            return u.clone();
        }
        if self.settings.external_prometheus {
            return self.external_url.clone().unwrap_or_else(|| {
                format!("http://prometheus-operated.{}.svc:9090", self.namespace)
            });
        }
        self.own_prometheus_url()
    }

    /// Where Grafana's data source points: the Prometheus that holds the data
    /// (steward's own, whatever `spec.prometheusUrl` says, or the external one).
    pub fn datasource_url(&self) -> String {
        if self.settings.external_prometheus {
            self.prometheus_url()
        } else {
            self.own_prometheus_url()
        }
    }

    fn own_prometheus_url(&self) -> String {
        format!("http://{}:9090", self.service_host("prometheus"))
    }
}
