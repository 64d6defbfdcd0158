//! After the scenarios: rules no request used, metric names against live
//! /metrics, `helm upgrade` with changed values, and `helm uninstall` leaving
//! nothing of the release.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ApiResource;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use testkit::wait;

use crate::chart_support::helm;
use crate::{REL, Release, T, kc};

/// Every (verb, group/resource) a Role or ClusterRole of ServiceAccount
/// `<release>-steward<sa>` grants that no audit event of it used.
pub fn unused_rules(rel: &Release, sa: &str, events: &[Value]) -> Vec<String> {
    let name = format!("{REL}-steward{sa}");
    let used: BTreeSet<(String, String, String)> = events
        .iter()
        .filter(|e| {
            e["responseStatus"]["code"]
                .as_u64()
                .is_some_and(|c| c < 400 || c == 404 || c == 409)
        })
        .map(|e| {
            let r = &e["objectRef"];
            let res = match r["subresource"].as_str() {
                Some(s) => format!("{}/{s}", r["resource"].as_str().unwrap_or("")),
                None => r["resource"].as_str().unwrap_or("").to_string(),
            };
            (
                e["verb"].as_str().unwrap_or("").to_string(),
                r["apiGroup"].as_str().unwrap_or("").to_string(),
                res,
            )
        })
        .collect();
    let mut out = Vec::new();
    let roles = rel
        .objs
        .iter()
        .filter(|o| {
            (o["kind"] == "Role" || o["kind"] == "ClusterRole")
                && o["metadata"]["name"] == name.as_str()
        })
        .count();
    eprintln!(
        "{name}: {} audit events, {} (verb, group, resource) used, {roles} roles; kinds: {:?}",
        events.len(),
        used.len(),
        crate::chart_support::kinds(&rel.objs)
    );
    for role in rel.objs.iter().filter(|o| {
        (o["kind"] == "Role" || o["kind"] == "ClusterRole")
            && o["metadata"]["name"] == name.as_str()
    }) {
        for rule in role["rules"].as_array().unwrap() {
            let strs = |k: &str| {
                rule[k].as_array().map_or(vec![], |a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                })
            };
            for g in strs("apiGroups") {
                for r in strs("resources") {
                    for v in strs("verbs") {
                        if !used.contains(&(v.clone(), g.clone(), r.clone())) {
                            out.push(format!(
                                "{} {name}: {v} {r}{}",
                                role["kind"].as_str().unwrap(),
                                if g.is_empty() {
                                    String::new()
                                } else {
                                    format!(".{g}")
                                }
                            ));
                        }
                    }
                }
            }
            for u in strs("nonResourceURLs") {
                out.push(format!(
                    "{} {name}: get {u} (non-resource; not in these scenarios)",
                    role["kind"].as_str().unwrap()
                ));
            }
        }
    }
    out
}

/// Names a /metrics text exports, with the suffixes Prometheus stores.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (n, kind) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            match kind {
                "counter" => {
                    names.insert(format!("{n}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{n}{s}"));
                    }
                }
                _ => {
                    names.insert(n.to_string());
                }
            }
        } else if !l.starts_with('#') && !l.is_empty() {
            names.insert(l.split(['{', ' ']).next().unwrap().to_string());
        }
    }
    names
}

/// Metric names in a PromQL text: identifiers starting with `steward_` or `apiserver_`.
fn used_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
            i += 1;
        }
        let word = &expr[start..i];
        let after_label_eq =
            expr[i..].trim_start().starts_with('=') || expr[i..].trim_start().starts_with("!=");
        if (word.starts_with("steward_") || word.starts_with("apiserver_")) && !after_label_eq {
            out.push(word.to_string());
        }
        i += 1;
    }
    out
}

/// Every metric the PrometheusRule and the dashboards use is exported: steward's
/// by one of the scenario processes, `apiserver_*` by the API server.
pub async fn metric_names_exist(objs: &[Value], texts: &[&String]) {
    let mut have = BTreeSet::new();
    for t in texts {
        have.extend(exported(t));
    }
    let (ok, apiserver, err) = crate::kubectl(&["get", "--raw", "/metrics"], None).await;
    assert!(ok, "{err}");
    have.extend(exported(&apiserver));
    let mut exprs: Vec<String> = Vec::new();
    for o in objs {
        if o["kind"] == "PrometheusRule" {
            for g in o["spec"]["groups"].as_array().unwrap() {
                for r in g["rules"].as_array().unwrap() {
                    exprs.push(r["expr"].as_str().unwrap().to_string());
                }
            }
        }
        if o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1" {
            for (_, j) in o["data"].as_object().unwrap() {
                let d: Value = serde_json::from_str(j.as_str().unwrap()).unwrap();
                for p in d["panels"].as_array().unwrap() {
                    for t in p["targets"].as_array().unwrap() {
                        exprs.push(t["expr"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
    let missing: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| used_names(e))
        .filter(|n| !have.contains(n))
        .collect();
    assert!(!exprs.is_empty());
    assert!(
        missing.is_empty(),
        "rules or dashboards use metrics nothing exports: {missing:?}"
    );
}

/// A changed configuration and schedule; steward's caBundle, its certificate and
/// the generated token survive the upgrade.
pub async fn upgrade(rel: &Release, chart: &str) {
    let name = format!("{REL}-steward-graceful-drain");
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(rel.client.clone());
    let ca =
        |v: ValidatingWebhookConfiguration| v.webhooks.unwrap()[0].client_config.ca_bundle.clone();
    let before = ca(vwcs.get(&name).await.unwrap());
    let secrets: Api<Secret> = Api::namespaced(rel.client.clone(), &rel.ns);
    let tls = secrets.get(&format!("{name}-tls")).await.unwrap().data;
    let token = secrets
        .get(&format!("{REL}-steward-ottoscaler-token"))
        .await
        .unwrap()
        .data;
    let v = rel.values.display().to_string();
    let (ok, out, err) = helm(&[
        "upgrade",
        REL,
        chart,
        "-n",
        &rel.ns,
        "-f",
        &v,
        "--kubeconfig",
        &kc(),
        "--set",
        "gracefulDrain.config.defaults.maxWait=45s",
        "--set",
        "drain.schedule=0 3 * * 0",
    ]);
    assert!(ok, "helm upgrade:\n{out}\n{err}");
    let cm = Api::<ConfigMap>::namespaced(rel.client.clone(), &rel.ns)
        .get(&name)
        .await
        .unwrap();
    assert!(cm.data.unwrap()["config.yaml"].contains("maxWait: 45s"));
    let cron = Api::<CronJob>::namespaced(rel.client.clone(), &rel.ns)
        .get(&format!("{REL}-steward-drain"))
        .await
        .unwrap();
    let spec = cron.spec.unwrap();
    assert_eq!(
        (spec.schedule.as_str(), spec.suspend),
        ("0 3 * * 0", Some(false))
    );
    assert_eq!(
        ca(vwcs.get(&name).await.unwrap()),
        before,
        "the upgrade wiped steward's caBundle"
    );
    assert_eq!(
        secrets.get(&format!("{name}-tls")).await.unwrap().data,
        tls,
        "the upgrade wiped steward's certificate"
    );
    assert_eq!(
        secrets
            .get(&format!("{REL}-steward-ottoscaler-token"))
            .await
            .unwrap()
            .data,
        token,
        "the token changed"
    );
}

/// `helm uninstall`: nothing labelled with the release, none of steward's own
/// objects by name, and the EndpointSlice the test gave the Service garbage
/// collected with it; the CRD stays (Helm keeps crds/).
pub async fn uninstall(rel: &Release, chart: &str) {
    let _ = chart;
    let (ok, out, err) = helm(&[
        "uninstall",
        REL,
        "-n",
        &rel.ns,
        "--wait",
        "--kubeconfig",
        &kc(),
    ]);
    assert!(ok, "helm uninstall:\n{out}\n{err}");
    let sel = ListParams::default().labels(&format!("app.kubernetes.io/instance={REL}"));
    let kinds: [(&str, &str, &str); 19] = [
        ("apps", "v1", "Deployment"),
        ("apps", "v1", "DaemonSet"),
        ("batch", "v1", "CronJob"),
        ("batch", "v1", "Job"),
        ("", "v1", "Service"),
        ("", "v1", "ConfigMap"),
        ("", "v1", "Secret"),
        ("", "v1", "ServiceAccount"),
        ("coordination.k8s.io", "v1", "Lease"),
        ("rbac.authorization.k8s.io", "v1", "Role"),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
        ("policy", "v1", "PodDisruptionBudget"),
        ("networking.k8s.io", "v1", "NetworkPolicy"),
        ("monitoring.coreos.com", "v1", "PodMonitor"),
        ("monitoring.coreos.com", "v1", "ServiceMonitor"),
        ("monitoring.coreos.com", "v1", "PrometheusRule"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        (
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        ),
    ];
    // Listed across namespaces: the ottoscaler's Role lives in the worker namespace.
    for (group, version, kind) in kinds {
        let ar = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::all_with(rel.client.clone(), &ar);
        let left: Vec<String> = api
            .list(&sel)
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| format!("{kind} {}", kube::ResourceExt::name_any(o)))
            .collect();
        assert!(left.is_empty(), "left after uninstall: {left:?}");
    }
    // By name, whatever their labels: the Leases, the TLS Secret, the webhook
    // configuration, the EndpointSlice (garbage collected with the Service).
    let name = format!("{REL}-steward-graceful-drain");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(rel.client.clone(), &rel.ns);
    let secrets: Api<Secret> = Api::namespaced(rel.client.clone(), &rel.ns);
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(rel.client.clone(), &rel.ns);
    wait::until(T, "steward's own objects gone", || async {
        Ok(leases.get_opt(&name).await?.is_none()
            && leases
                .get_opt(&format!("{REL}-steward-monitor"))
                .await?
                .is_none()
            && secrets.get_opt(&format!("{name}-tls")).await?.is_none()
            && Api::<ValidatingWebhookConfiguration>::all(rel.client.clone())
                .get_opt(&name)
                .await?
                .is_none()
            && slices.get_opt(&format!("{name}-local")).await?.is_none())
    })
    .await
    .unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(rel.client.clone());
    assert!(
        crds.get_opt("monitoringstacks.steward.io")
            .await
            .unwrap()
            .is_some(),
        "Helm keeps crds/"
    );
}
