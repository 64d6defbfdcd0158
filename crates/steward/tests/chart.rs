//! charts/steward rendered by the real helm binary: lint, versions, the objects of
//! each system alone and all together, labels, Pod Security, RBAC without
//! wildcards, bad values refused naming the key, and every PromQL through promtool.
//! The chart on the real control plane is tests/chart_cluster.rs.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod chart_support;

use chart_support::{chart, find, helm, kinds, pod_spec, render, render_raw, tool};
use serde_json::Value;

const ALL: [&str; 6] = [
    "gracefulDrain.enabled=true",
    "gracefulDrain.agent.enabled=true",
    "monitor.enabled=true",
    "ottoscaler.enabled=true",
    "drain.enabled=true",
    "drain.nodepoolName=general",
];

#[test]
fn lint_is_clean_and_versions_follow_the_crate() {
    let c = chart().display().to_string();
    for sets in [vec![], ALL.to_vec()] {
        let mut args = vec!["lint", "--strict", &c, "--kube-version", "1.34.4"];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let (ok, out, err) = helm(&args);
        assert!(ok, "helm lint {sets:?}:\n{out}{err}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }
    let meta: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"));
    // The CRD under crds/ is the one steward generates (crates/auto-monitor/crds/).
    let ours =
        std::fs::read_to_string(chart().join("crds/steward.io_monitoringstacks.yaml")).unwrap();
    let generated = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../auto-monitor/crds/steward.io_monitoringstacks.yaml"),
    )
    .unwrap();
    assert_eq!(
        ours, generated,
        "charts/steward/crds is stale: copy crates/auto-monitor/crds"
    );
}

/// What each system renders alone (prefix `rel-steward-`), and all of them
/// together: nothing more, nothing of another system.
#[test]
fn each_system_alone_and_all_together() {
    let systems: [(&[&str], &[&str]); 5] = [
        (
            &["gracefulDrain.enabled=true"],
            &[
                "ClusterRole/graceful-drain",
                "ClusterRoleBinding/graceful-drain",
                "ConfigMap/dashboard-graceful-drains",
                "ConfigMap/graceful-drain",
                "Deployment/graceful-drain",
                "Lease/graceful-drain",
                "PodDisruptionBudget/graceful-drain",
                "PrometheusRule/",
                "Role/graceful-drain",
                "RoleBinding/graceful-drain",
                "Secret/graceful-drain-tls",
                "Service/graceful-drain",
                "ServiceAccount/graceful-drain",
                "ServiceMonitor/graceful-drain",
                "ValidatingWebhookConfiguration/graceful-drain",
            ],
        ),
        (
            &[
                "gracefulDrain.enabled=true",
                "gracefulDrain.agent.enabled=true",
            ],
            &[
                "ClusterRole/graceful-drain",
                "ClusterRole/graceful-drain-agent",
                "ClusterRoleBinding/graceful-drain",
                "ClusterRoleBinding/graceful-drain-agent",
                "ConfigMap/dashboard-graceful-drains",
                "ConfigMap/graceful-drain",
                "DaemonSet/graceful-drain-agent",
                "Deployment/graceful-drain",
                "Lease/graceful-drain",
                "PodDisruptionBudget/graceful-drain",
                "PodMonitor/graceful-drain-agent",
                "PrometheusRule/",
                "Role/graceful-drain",
                "RoleBinding/graceful-drain",
                "Secret/graceful-drain-tls",
                "Service/graceful-drain",
                "ServiceAccount/graceful-drain",
                "ServiceAccount/graceful-drain-agent",
                "ServiceMonitor/graceful-drain",
                "ValidatingWebhookConfiguration/graceful-drain",
            ],
        ),
        (
            &["monitor.enabled=true"],
            &[
                "ClusterRole/monitor",
                "ClusterRoleBinding/monitor",
                "ConfigMap/dashboard-onboarding",
                "Deployment/monitor",
                "Lease/monitor",
                "PrometheusRule/",
                "Role/monitor",
                "RoleBinding/monitor",
                "Service/monitor",
                "ServiceAccount/monitor",
                "ServiceMonitor/monitor",
            ],
        ),
        (
            &["ottoscaler.enabled=true"],
            &[
                "ClusterRole/ottoscaler",
                "ClusterRoleBinding/ottoscaler",
                "ConfigMap/dashboard-pipelines",
                "Deployment/ottoscaler",
                "Lease/ottoscaler",
                "PodDisruptionBudget/ottoscaler",
                "PrometheusRule/",
                "Role/ottoscaler",
                "RoleBinding/ottoscaler",
                "Secret/ottoscaler-token",
                "Service/ottoscaler",
                "ServiceAccount/ottoscaler",
                "ServiceMonitor/ottoscaler",
            ],
        ),
        (
            &["drain.enabled=true", "drain.nodepoolName=general"],
            &[
                "ClusterRole/drain",
                "ClusterRoleBinding/drain",
                "ConfigMap/dashboard-node-rotations",
                "CronJob/drain",
                "Lease/steward-drain-general",
                "PodMonitor/drain",
                "PrometheusRule/",
                "Role/drain-lock",
                "RoleBinding/drain-lock",
                "ServiceAccount/drain",
            ],
        ),
    ];
    let short = |k: &str| {
        k.replacen("rel-steward-", "", 1)
            .replacen("/rel-steward", "/", 1)
    };
    let mut union: Vec<String> = Vec::new();
    for (sets, want) in systems {
        let got: Vec<String> = kinds(&render(sets, true))
            .iter()
            .map(|k| short(k))
            .collect();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{sets:?}");
        eprintln!("{sets:?}:\n  {}", got.join("\n  "));
        union.extend(got);
    }
    union.sort();
    union.dedup();
    let all: Vec<String> = kinds(&render(&ALL, true))
        .iter()
        .map(|k| short(k))
        .collect();
    assert_eq!(all, union);
    // Nothing at all by default; without the operator API no monitors or rules.
    assert!(render(&[], true).is_empty());
    let plain = kinds(&render(&ALL, false));
    assert!(
        !plain.iter().any(|k| k.starts_with("ServiceMonitor")
            || k.starts_with("PodMonitor")
            || k.starts_with("PrometheusRule")),
        "{plain:?}"
    );
    // A one-off drain renders a Job of this revision.
    let once = render(
        &[
            "drain.enabled=true",
            "drain.nodepoolName=g",
            "drain.runOnce=true",
        ],
        false,
    );
    find(&once, "Job", "-drain-r1");
}

#[test]
fn every_object_carries_the_standard_labels() {
    for o in render(&ALL, true) {
        let l = &o["metadata"]["labels"];
        for k in ["name", "instance", "version", "component", "managed-by"] {
            assert!(
                l[format!("app.kubernetes.io/{k}")].is_string(),
                "{k} missing on {}",
                o["metadata"]["name"]
            );
        }
        assert_eq!(l["app.kubernetes.io/version"], env!("CARGO_PKG_VERSION"));
    }
}

/// Every container but the node agent's passes Pod Security `restricted`.
#[test]
fn pods_are_restricted_but_the_agent() {
    let objs = render(&ALL, false);
    let workloads: Vec<&Value> = objs
        .iter()
        .filter(|o| {
            ["Deployment", "DaemonSet", "CronJob", "Job"].contains(&o["kind"].as_str().unwrap())
        })
        .collect();
    assert_eq!(workloads.len(), 5);
    for w in workloads {
        let name = w["metadata"]["name"].as_str().unwrap();
        let spec = pod_spec(w);
        let c = &spec["containers"][0]["securityContext"];
        if name.ends_with("-agent") {
            assert_eq!(spec["hostPID"], true);
            assert_eq!(
                c["capabilities"]["add"],
                serde_json::json!(["SYS_PTRACE", "DAC_READ_SEARCH"])
            );
            assert_eq!(c["allowPrivilegeEscalation"], false);
            continue;
        }
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert_eq!(c["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(c["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(
            c["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(
            spec["hostPID"].is_null() && spec["hostNetwork"].is_null(),
            "{name}"
        );
        // No secret on a command line, none in the environment's plain values.
        for a in chart_support::args(w) {
            assert!(
                !a.contains("token=") && !a.contains("hooks.slack.com"),
                "{name}: {a}"
            );
        }
    }
    let d = find(&objs, "Deployment", "-graceful-drain");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(
        pod_spec(d)["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let otto = find(&objs, "Deployment", "-ottoscaler");
    assert_eq!(otto["spec"]["replicas"], 2);
    assert_eq!(
        otto["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert_eq!(find(&objs, "CronJob", "-drain")["spec"]["suspend"], true);
}

/// No wildcard anywhere; steward's own objects only by name.
#[test]
fn rbac_has_no_wildcard_and_names_stewards_own_objects() {
    let objs = render(&ALL, false);
    for o in objs
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
    {
        for rule in o["rules"].as_array().unwrap() {
            let text = rule.to_string();
            assert!(!text.contains("\"*\""), "{}: {text}", o["metadata"]["name"]);
            let res: Vec<&str> = rule["resources"]
                .as_array()
                .map_or(vec![], |r| r.iter().map(|v| v.as_str().unwrap()).collect());
            let own = ["leases", "validatingwebhookconfigurations"]
                .iter()
                .any(|k| res.contains(k))
                || (res.contains(&"secrets") && o["kind"] == "Role");
            if own {
                assert!(
                    rule["resourceNames"].is_array(),
                    "{}: {text} needs resourceNames",
                    o["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn bad_values_fail_naming_the_key() {
    let table: [(&[&str], &str); 13] = [
        (&["gracefulDrain.replicas=two"], "/gracefulDrain/replicas"),
        (
            &["bogus.enabled=true"],
            "additional properties 'bogus' not allowed",
        ),
        (
            &[
                "gracefulDrain.enabled=true",
                "gracefulDrain.replicas=1",
                "gracefulDrain.leaderElection.enabled=false",
            ],
            "/gracefulDrain/leaderElection/enabled",
        ),
        (&["gracefulDrain.typo=1"], "'typo' not allowed"),
        (
            &[
                "monitor.enabled=true",
                "monitor.leaderElection.enabled=false",
            ],
            "monitor.leaderElection.enabled is false",
        ),
        (&["ottoscaler.replicas=0"], "/ottoscaler/replicas"),
        (
            &[
                "ottoscaler.enabled=true",
                "ottoscaler.notify.urls[0]=https://ci.example/hook",
            ],
            "ottoscaler.notify.urls needs ottoscaler.notify.existingSecret",
        ),
        (
            &["ottoscaler.notify.urls[0]=ftp://x"],
            "/ottoscaler/notify/urls/0",
        ),
        (&["drain.enabled=true"], "drain.nodepoolName is required"),
        (&["drain.timeout=15 minutes"], "/drain/timeout"),
        (
            &[
                "drain.enabled=true",
                "drain.nodepoolName=g",
                "drain.prometheus.auth.existingSecret=prom",
            ],
            "set drain.prometheus.auth.tokenKey (bearer token) or drain.prometheus.auth.username",
        ),
        (
            &["drain.prometheus.headers.Authorization=Bearer x"],
            "invalid propertyName 'Authorization'",
        ),
        (
            &["gracefulDrain.enabled=true", "certManager.enabled=true"],
            "certManager.enabled: this cluster does not serve cert-manager.io/v1",
        ),
    ];
    for (sets, needle) in table {
        let (ok, _, err) = render_raw(sets, false);
        assert!(!ok, "{sets:?} rendered");
        assert!(err.contains(needle), "{sets:?}: {err}");
    }
    // One replica with leader election on is allowed (and said in NOTES).
    render(
        &["gracefulDrain.enabled=true", "gracefulDrain.replicas=1"],
        false,
    );
    // Leader election off is fine for one monitor replica, which then never rolls out two.
    let one = render(
        &[
            "monitor.enabled=true",
            "monitor.replicas=1",
            "monitor.leaderElection.enabled=false",
        ],
        false,
    );
    assert_eq!(
        find(&one, "Deployment", "-monitor")["spec"]["strategy"]["type"],
        "Recreate"
    );
}

/// Every leaf of values.yaml is typed in values.schema.json.
#[test]
fn every_value_is_typed() {
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap())
            .unwrap();
    fn walk(v: &Value, s: &Value, path: &str) {
        let Some(map) = v.as_object() else { return };
        let Some(props) = s["properties"].as_object() else {
            return;
        };
        for (k, child) in map {
            let p = format!("{path}.{k}");
            let sub = props
                .get(k)
                .unwrap_or_else(|| panic!("{p} is not in values.schema.json"));
            assert!(
                sub.get("description").is_some() || sub.get("type").is_some(),
                "{p} untyped"
            );
            walk(child, sub, &p);
        }
    }
    walk(&values, &schema, "");
    // Documented: each leaf has a comment right above it or above one of its parents.
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let commented = |i: usize| i > 0 && lines[i - 1].trim_start().starts_with('#');
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with('-') || t.trim_end().ends_with(':') {
            continue;
        }
        let mut ok = commented(i);
        let mut level = indent(l);
        for j in (0..i).rev() {
            let lj = lines[j];
            if ok || level == 0 {
                break;
            }
            if !lj.trim().is_empty() && !lj.trim_start().starts_with('#') && indent(lj) < level {
                level = indent(lj);
                ok = commented(j);
            }
        }
        assert!(ok, "values.yaml:{}: `{t}` is not documented", i + 1);
    }
}

/// The rules and every dashboard query are valid PromQL (promtool check rules).
#[test]
fn rules_and_dashboards_pass_promtool() {
    let objs = render(&ALL, true);
    let rule = find(&objs, "PrometheusRule", "rel-steward");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, serde_saphyr::to_string(&rule["spec"]).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for cm in objs
        .iter()
        .filter(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
    {
        for (_, json) in cm["data"].as_object().unwrap() {
            let d: Value = serde_json::from_str(json.as_str().unwrap()).unwrap();
            for p in d["panels"].as_array().unwrap() {
                for t in p["targets"].as_array().unwrap() {
                    exprs.push(t["expr"].as_str().unwrap().to_string());
                }
            }
        }
    }
    assert!(exprs.len() >= 20, "{exprs:?}");
    let recording: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({ "record": format!("dashboard:query:{i}"), "expr": e }))
        .collect();
    let dash = dir.path().join("dashboards.yml");
    std::fs::write(
        &dash,
        serde_saphyr::to_string(
            &serde_json::json!({ "groups": [{ "name": "dashboards", "rules": recording }] }),
        )
        .unwrap(),
    )
    .unwrap();
    for f in [&rules, &dash] {
        let out = std::process::Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
