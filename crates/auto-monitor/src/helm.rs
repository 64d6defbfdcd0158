//! Helm install mode: CRDs first by server-side apply (Helm installs a chart's CRDs
//! once and never upgrades them), then `helm upgrade --install --atomic` with values
//! steward generates; `--atomic` rolls the release back when the upgrade fails.
//!
//! The values target the kube-prometheus-stack chart's keys: monitors and rules are
//! selected without the `release` label (the `*SelectorNilUsesHelmValues: false`
//! pitfall), node-exporter series get a `node` label, the control-plane scrapes that
//! always fail on kind/minikube/k3s are switched off by profile, and the chart's own
//! node alerts that steward's rules replace are disabled so nothing fires twice.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::core::alerting;
use crate::core::rules::{rules, rules_document};
use crate::core::stack::{FIELD_MANAGER, STACK_LABEL, Stack};
use crate::core::status;
use crate::core::validate::Profile;
use crate::crd::{HelmSpec, MonitoringStack, MonitoringStackStatus};
use crate::error::{Error, Result, kube as kerr};

/// kube-prometheus-stack alerts that steward's default rules replace.
const REPLACED_ALERTS: [&str; 4] = [
    "NodeFilesystemAlmostOutOfSpace",
    "NodeFilesystemSpaceFillingUp",
    "TargetDown",
    "NodeExporterDown",
];

/// The values steward generates for the chart. Pure.
pub fn values(stack: &Stack) -> Value {
    let s = &stack.settings;
    let control_plane = stack.profile.scrapes_control_plane();
    let r = |c: &str| {
        serde_json::to_value(crate::core::manifests::workloads::resources(stack, c))
            .unwrap_or_default()
    };
    let node_selector = s.placement.node_selector.clone().unwrap_or_default();
    let tolerations = s.placement.tolerations.clone().unwrap_or_default();
    json!({
        "prometheus": {
            "enabled": s.has("prometheus"),
            "prometheusSpec": {
                "retention": s.retention,
                "retentionSize": s.retention_size.clone().unwrap_or_default(),
                "scrapeInterval": s.scrape_interval,
                "evaluationInterval": s.scrape_interval,
                "resources": r("prometheus"),
                "serviceMonitorSelectorNilUsesHelmValues": false,
                "podMonitorSelectorNilUsesHelmValues": false,
                "ruleSelectorNilUsesHelmValues": false,
                "probeSelectorNilUsesHelmValues": false,
                "nodeSelector": node_selector,
                "tolerations": tolerations,
                "storageSpec": s.storage.prometheus.as_ref().map(|v| json!({
                    "volumeClaimTemplate": { "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": v.storage_class_name,
                        "resources": { "requests": { "storage": v.size } },
                    }},
                })).unwrap_or_else(|| json!({})),
            },
        },
        // The chart mounts `templateFiles` beside the configuration and each listed
        // Secret at /etc/alertmanager/secrets/<name>/, the paths the config names.
        "alertmanager": {
            "enabled": s.has("alertmanager"),
            "config": alerting::config(&s.alerting),
            "templateFiles": { alerting::TEMPLATE_FILE: alerting::templates(s.alerting.lang) },
            "alertmanagerSpec": {
                "nodeSelector": node_selector,
                "tolerations": tolerations,
                "secrets": alerting::secrets(&s.alerting),
            },
        },
        "grafana": {
            "enabled": s.has("grafana"),
            "persistence": s.storage.grafana.as_ref().map(|v| json!({
                "enabled": true,
                "size": v.size,
                "storageClassName": v.storage_class_name,
            })).unwrap_or_else(|| json!({ "enabled": false })),
            "nodeSelector": node_selector,
            "tolerations": tolerations,
            "sidecar": { "dashboards": { "enabled": true, "label": "grafana_dashboard", "labelValue": "1" } },
        },
        "nodeExporter": { "enabled": s.has("node-exporter") },
        "prometheus-node-exporter": {
            "resources": r("node-exporter"),
            "nodeSelector": s.node_selector,
            "tolerations": [{ "operator": "Exists" }],
            "prometheus": { "monitor": { "relabelings": [
                { "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace" },
            ]}},
        },
        "kubeStateMetrics": { "enabled": s.has("kube-state-metrics") },
        "kube-state-metrics": { "nodeSelector": node_selector, "tolerations": tolerations },
        "kubeEtcd": { "enabled": control_plane },
        "kubeScheduler": { "enabled": control_plane },
        "kubeControllerManager": { "enabled": control_plane },
        "kubeProxy": { "enabled": stack.profile != Profile::K3s },
        "defaultRules": { "disabled": REPLACED_ALERTS.iter().map(|a| (a.to_string(), json!(true))).collect::<serde_json::Map<_, _>>() },
        "additionalPrometheusRulesMap": { "steward-node": rules_document(&rules(&s.thresholds)) },
    })
}

/// Merges `extra` over `base` (maps recursively, anything else replaced).
pub fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// Runs helm with `args`; its stdout, or its stderr as the error.
pub(crate) async fn helm(bin: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let what = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let child = tokio::process::Command::new(bin)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| Error::Helm {
            what: what.clone(),
            reason: format!("no answer within {timeout:?}"),
        })?
        .map_err(|e| Error::Helm {
            what: what.clone(),
            reason: format!("cannot run {bin}: {e} (install helm or use installMode: embedded)"),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::Helm { what, reason: err });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Applies the chart's CRDs with server-side apply; returns their names.
async fn apply_crds(
    client: &Client,
    bin: &str,
    chart: &str,
    version: Option<&str>,
) -> Result<Vec<String>> {
    // `--` ends the flags: nothing the stack names is read as one.
    let mut args = vec!["show", "crds"];
    if let Some(v) = version {
        args.extend(["--version", v]);
    }
    args.extend(["--", chart]);
    let text = helm(bin, &args, Duration::from_secs(120)).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    // Empty and null documents (a chart's `---` separators) are skipped.
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| Error::Helm {
        what: "show crds".into(),
        reason: format!("unreadable CRD YAML: {e}"),
    })?;
    for v in docs {
        let crd: CustomResourceDefinition = serde_json::from_value(v).map_err(|e| Error::Helm {
            what: "show crds".into(),
            reason: format!("not a CustomResourceDefinition: {e}"),
        })?;
        let name = crd.name_any();
        api.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .map_err(kerr(format!("applying CRD {name}")))?;
        names.push(name);
    }
    Ok(names)
}

/// One helm-mode pass: CRDs, then upgrade --install when the values or the spec changed.
pub async fn reconcile(
    client: &Client,
    bin: &str,
    ms: &MonitoringStack,
    stack: &Stack,
    status: &mut MonitoringStackStatus,
    now: Timestamp,
) -> Result<()> {
    let Some(spec) = stack.settings.helm.clone() else {
        return Ok(());
    };
    let mut v = values(stack);
    if let Some(extra) = &spec.values {
        merge(&mut v, extra);
    }
    let hash = crate::core::manifests::hash(&[
        &v.to_string(),
        &spec.chart,
        spec.version.as_deref().unwrap_or(""),
    ]);
    if !status::helm_due(status, &hash, ms.metadata.generation) {
        return Ok(());
    }
    status.observed_generation = ms.metadata.generation;
    status.profile = Some(stack.profile.as_str().into());
    let release = spec.release.clone().unwrap_or_else(|| stack.name.clone());
    match upgrade(client, bin, stack, &spec, &release, &v).await {
        Ok(crds) => {
            status::helm_deployed(status, &release, &crds, hash, now);
            tracing::info!(%release, chart = %spec.chart, "helm release deployed");
        }
        Err(e) => {
            // --atomic already rolled the release back to its last good revision.
            status::helm_failed(status, &e.to_string(), hash, now);
            tracing::warn!(%release, error = %e, "helm upgrade failed and was rolled back");
        }
    }
    Ok(())
}

/// The chart's CRDs, then `helm upgrade --install --atomic` with `values` in a
/// temporary file; the names of the CRDs applied.
async fn upgrade(
    client: &Client,
    bin: &str,
    stack: &Stack,
    spec: &HelmSpec,
    release: &str,
    values: &Value,
) -> Result<Vec<String>> {
    let crds = apply_crds(client, bin, &spec.chart, spec.version.as_deref()).await?;
    // A private file (mode 0600, a name nobody can guess), removed when dropped.
    let write = || -> std::io::Result<tempfile::NamedTempFile> {
        use std::io::Write;
        let mut f = tempfile::Builder::new()
            .prefix(&format!(
                "steward-monitor-{}-{}-",
                stack.namespace, stack.name
            ))
            .suffix(".yaml")
            .tempfile()?;
        f.write_all(crate::core::promconfig::yaml(values).as_bytes())?;
        f.flush()?;
        Ok(f)
    };
    let file = write().map_err(|e| Error::Helm {
        what: "values".into(),
        reason: format!("writing the values file: {e}"),
    })?;
    let file_s = file.path().display().to_string();
    // The release's own label (helm copies it onto its release Secrets) names the
    // stack, so a release whose stack is gone is found again (`crate::uninstall`).
    let labels = format!("{STACK_LABEL}={}", stack.stack_label());
    let mut args = vec![
        "upgrade",
        "--install",
        "--labels",
        &labels,
        "--namespace",
        &stack.namespace,
        "--values",
        &file_s,
        "--atomic",
        "--wait",
        "--timeout",
        spec.timeout.as_deref().unwrap_or("5m"),
        "--skip-crds",
    ];
    if let Some(ver) = &spec.version {
        args.extend(["--version", ver]);
    }
    args.extend(["--", release, &spec.chart]);
    let out = helm(bin, &args, Duration::from_secs(900)).await;
    drop(file);
    out.map(|_| crds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MonitoringStackSpec;

    fn stack(profile: Profile) -> Stack {
        let s = crate::core::validate::validate(&MonitoringStackSpec::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        Stack::new("mon", "m", s, profile)
    }

    #[test]
    fn values_avoid_the_pitfalls() {
        let v = values(&stack(Profile::Kind));
        assert_eq!(
            v["prometheus"]["prometheusSpec"]["serviceMonitorSelectorNilUsesHelmValues"],
            false
        );
        assert_eq!(
            v["prometheus"]["prometheusSpec"]["ruleSelectorNilUsesHelmValues"],
            false
        );
        assert_eq!(v["kubeScheduler"]["enabled"], false);
        assert_eq!(v["kubeEtcd"]["enabled"], false);
        assert_eq!(
            v["defaultRules"]["disabled"]["NodeFilesystemAlmostOutOfSpace"],
            true
        );
        assert_eq!(
            v["prometheus-node-exporter"]["prometheus"]["monitor"]["relabelings"][0]["targetLabel"],
            "node"
        );
        assert!(
            v["additionalPrometheusRulesMap"]["steward-node"]["groups"][0]["rules"]
                .as_array()
                .is_some_and(|r| r.len() == 5)
        );
        let g = values(&stack(Profile::Generic));
        assert_eq!(g["kubeScheduler"]["enabled"], true);
        let k3s = values(&stack(Profile::K3s));
        assert_eq!(k3s["kubeProxy"]["enabled"], false);
        // A managed control plane: nothing scraped (or alerted on) that the
        // provider hides; kube-proxy runs on the nodes there.
        for managed in [Profile::Eks, Profile::Gke, Profile::Aks] {
            let m = values(&stack(managed));
            for hidden in ["kubeControllerManager", "kubeScheduler", "kubeEtcd"] {
                assert_eq!(m[hidden]["enabled"], false, "{managed:?} {hidden}");
            }
            assert_eq!(m["kubeProxy"]["enabled"], true, "{managed:?}");
        }
    }

    #[test]
    fn merge_overrides_leaves() {
        let mut a = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut a, &json!({"a": {"b": 3}, "d": [2, 3]}));
        assert_eq!(a, json!({"a": {"b": 3, "c": 2}, "d": [2, 3]}));
    }
}
