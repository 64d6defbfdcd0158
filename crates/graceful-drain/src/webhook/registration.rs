//! The ValidatingWebhookConfiguration steward keeps up to date: where the API
//! server reaches the webhook, which namespaces it sends, and the CA it trusts.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{PATH, WEBHOOK};
use crate::error::{Result, kube as kerr};
use crate::events::CONTROLLER;

/// Where the API server reaches the webhook.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A URL (out-of-cluster, tests).
    Url(String),
    /// A Service in front of the replicas.
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Port.
        port: u16,
    },
}

/// Options of the webhook configuration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Name of the ValidatingWebhookConfiguration.
    pub name: String,
    /// Where it points.
    pub endpoint: Endpoint,
    /// Seconds the API server waits for an answer before ignoring the webhook.
    pub timeout_seconds: i32,
    /// Namespaces never sent (kube-system, steward's own, and more).
    pub excluded_namespaces: Vec<String>,
    /// Namespace labels a namespace must have to be sent (empty: every namespace).
    pub namespace_labels: BTreeMap<String, String>,
}

/// The ValidatingWebhookConfiguration: `CREATE pods/eviction`, failurePolicy Ignore
/// (a steward that is down lets evictions through without grace rather than block
/// them), a short timeout, sideEffects NoneOnDryRun (dry runs write nothing), and a
/// namespace selector that never sends kube-system or steward's own namespace.
pub fn configuration(r: &Registration, ca_bundle: &str) -> serde_json::Value {
    let mut client_config = match &r.endpoint {
        Endpoint::Url(url) => json!({ "url": format!("{}{PATH}", url.trim_end_matches('/')) }),
        Endpoint::Service {
            namespace,
            name,
            port,
        } => json!({
            "service": { "namespace": namespace, "name": name, "port": port, "path": PATH }
        }),
    };
    client_config["caBundle"] = base64(ca_bundle.as_bytes());
    let mut ns_selector = json!({ "matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": r.excluded_namespaces
    }] });
    if !r.namespace_labels.is_empty() {
        ns_selector["matchLabels"] = json!(r.namespace_labels);
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": r.name, "labels": { "app.kubernetes.io/managed-by": CONTROLLER } },
        "webhooks": [{
            "name": WEBHOOK,
            "clientConfig": client_config,
            "rules": [{ "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/eviction"], "scope": "Namespaced" }],
            "failurePolicy": "Ignore",
            "sideEffects": "NoneOnDryRun",
            "timeoutSeconds": r.timeout_seconds,
            "admissionReviewVersions": ["v1"],
            "namespaceSelector": ns_selector,
        }]
    })
}

/// Applies the configuration (server-side apply, steward's field manager).
pub async fn register(client: &Client, r: &Registration, ca_bundle: &str) -> Result<()> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let pp = PatchParams::apply(CONTROLLER).force();
    api.patch(&r.name, &pp, &Patch::Apply(configuration(r, ca_bundle)))
        .await
        .map_err(kerr(format!(
            "applying ValidatingWebhookConfiguration {}",
            r.name
        )))?;
    Ok(())
}

/// Base64 as Kubernetes writes `[]byte` fields (k8s-openapi's ByteString serialises so).
fn base64(bytes: &[u8]) -> serde_json::Value {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())).unwrap_or_default()
}
