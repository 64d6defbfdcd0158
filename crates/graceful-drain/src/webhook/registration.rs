//! The ValidatingWebhookConfiguration steward keeps up to date: where the API
//! server reaches the webhook, which namespaces it sends, and the CA it trusts.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{PATH, WEBHOOK};
use crate::error::{Error, Result, kube as kerr};
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

/// Who owns the ValidatingWebhookConfiguration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookConfig {
    /// steward writes all of it (and creates it when missing).
    Full,
    /// Someone else (the Helm chart) owns it; steward only writes the caBundle.
    CaBundle,
}

/// Options of the webhook configuration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Name of the ValidatingWebhookConfiguration.
    pub name: String,
    /// Whether steward writes all of it or only its caBundle.
    pub owner: WebhookConfig,
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

/// Only the caBundle of steward's webhook, for a configuration someone else owns
/// (`--webhook-config ca-bundle`): applied alone, steward's field manager owns
/// nothing else, so a Helm upgrade and steward never fight over a field.
pub fn ca_bundle_only(r: &Registration, ca_bundle: &str) -> serde_json::Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": r.name },
        "webhooks": [{ "name": WEBHOOK, "clientConfig": { "caBundle": base64(ca_bundle.as_bytes()) } }]
    })
}

/// Why a configuration someone else owns cannot take steward's caBundle
/// (`None`: it can). Pure.
pub fn foreign_config_problem(current: Option<&ValidatingWebhookConfiguration>) -> Option<String> {
    let Some(c) = current else {
        return Some("not found".into());
    };
    let ours = c
        .webhooks
        .as_ref()
        .is_some_and(|ws| ws.iter().any(|w| w.name == WEBHOOK));
    (!ours).then(|| format!("has no webhook named {WEBHOOK}"))
}

/// Applies the configuration (server-side apply, steward's field manager); with
/// `--webhook-config ca-bundle` only its caBundle, and never creates it: a missing
/// configuration (or one without steward's webhook) is an error naming it.
pub async fn register(client: &Client, r: &Registration, ca_bundle: &str) -> Result<()> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let pp = PatchParams::apply(CONTROLLER).force();
    let body = match r.owner {
        WebhookConfig::Full => configuration(r, ca_bundle),
        WebhookConfig::CaBundle => {
            let current = api.get_opt(&r.name).await.map_err(kerr(format!(
                "reading ValidatingWebhookConfiguration {}",
                r.name
            )))?;
            if let Some(reason) = foreign_config_problem(current.as_ref()) {
                return Err(Error::WebhookConfig {
                    name: r.name.clone(),
                    reason,
                });
            }
            ca_bundle_only(r, ca_bundle)
        }
    };
    api.patch(&r.name, &pp, &Patch::Apply(body))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> Registration {
        Registration {
            name: "rel-steward-graceful-drain".into(),
            owner: WebhookConfig::CaBundle,
            endpoint: Endpoint::Url("https://x".into()),
            timeout_seconds: 3,
            excluded_namespaces: vec![],
            namespace_labels: BTreeMap::new(),
        }
    }

    /// `--webhook-config ca-bundle` writes the caBundle of steward's webhook and no
    /// other field, so the rules, selector and Service stay whoever owns them.
    #[test]
    fn ca_bundle_only_names_no_other_field() {
        let r = registration();
        let v = ca_bundle_only(&r, "PEM");
        assert_eq!(
            v["metadata"],
            json!({ "name": "rel-steward-graceful-drain" })
        );
        assert_eq!(
            v["webhooks"],
            json!([{ "name": WEBHOOK, "clientConfig": { "caBundle": "UEVN" } }])
        );
        let full = configuration(&r, "PEM");
        assert_eq!(full["webhooks"][0]["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(full["webhooks"][0]["name"], WEBHOOK);
    }

    #[test]
    fn a_foreign_configuration_must_hold_stewards_webhook() {
        let with = |names: &[&str]| -> ValidatingWebhookConfiguration {
            serde_json::from_value(json!({
                "metadata": { "name": "x" },
                "webhooks": names.iter().map(|n| json!({
                    "name": n, "clientConfig": {}, "sideEffects": "None",
                    "admissionReviewVersions": ["v1"]
                })).collect::<Vec<_>>()
            }))
            .unwrap()
        };
        // (configuration, problem)
        let table = [
            (None, Some("not found".to_string())),
            (
                Some(with(&[])),
                Some(format!("has no webhook named {WEBHOOK}")),
            ),
            (
                Some(with(&["other.example.com"])),
                Some(format!("has no webhook named {WEBHOOK}")),
            ),
            (Some(with(&["other.example.com", WEBHOOK])), None),
        ];
        for (config, problem) in table {
            assert_eq!(
                foreign_config_problem(config.as_ref()),
                problem,
                "{config:?}"
            );
        }
    }
}
