//! The generated Prometheus configuration, rules and dashboard queries checked by
//! the real `promtool` (Debian's prometheus package, installed by hack/setup.sh):
//! `check config`, `check rules`, and one `test rules` unit test per alert proving it
//! fires after its `for` and not before.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::Path;
use std::process::Command;

use auto_monitor::core::dashboards::{checkable, dashboards};
use auto_monitor::core::promconfig::{RULES_PATH, prometheus_config, yaml};
use auto_monitor::core::rules::{Rule, embedded_rules_yaml, rules, rules_yaml};
use auto_monitor::core::stack::Stack;
use auto_monitor::core::validate::{Profile, validate};
use auto_monitor::crd::{MonitoringStackSpec, Thresholds};
use serde_json::{Value, json};

/// promtool built from the Prometheus Go module by hack/controlplane/build.sh:
/// Debian's is built without Kubernetes service discovery and rejects
/// `kubernetes_sd_configs` in `check config`.
fn promtool_bin() -> std::path::PathBuf {
    testkit::bin_dir()
        .expect("hack/controlplane/build.sh")
        .join("promtool")
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let bin = promtool_bin();
    let out = Command::new(&bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (built by hack/controlplane/build.sh)",
                bin.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn stack(profile: Profile) -> Stack {
    let settings = validate(&MonitoringStackSpec::default()).unwrap();
    Stack::new("mon", "monitoring", settings, profile)
}

#[test]
fn generated_config_passes_promtool_check_config_for_every_profile() {
    for profile in [
        Profile::Kind,
        Profile::Minikube,
        Profile::K3s,
        Profile::Generic,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let s = stack(profile);
        // The rules file the stack ships: node rules and steward's own.
        std::fs::write(
            d.join("rules.yml"),
            embedded_rules_yaml(&rules(&s.settings.thresholds)),
        )
        .unwrap();
        std::fs::write(d.join("token"), "t").unwrap();
        std::fs::write(d.join("ca.crt"), "").unwrap();
        // The in-pod paths, moved into the temp dir so promtool finds the files.
        let cfg = yaml(&prometheus_config(&s))
            .replace(RULES_PATH, &d.join("rules.yml").display().to_string())
            .replace(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                &d.join("token").display().to_string(),
            )
            .replace(
                "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                &d.join("ca.crt").display().to_string(),
            );
        std::fs::write(d.join("prometheus.yml"), cfg).unwrap();
        let out = promtool(&["check", "config", "prometheus.yml"], d);
        assert!(out.contains("SUCCESS"), "{profile:?}: {out}");
        let n = 5 + auto_monitor::core::selfmon::rules().len();
        assert!(
            out.contains(&format!("{n} rules found")),
            "{profile:?}: {out}"
        );
    }
}

#[test]
fn every_dashboard_query_parses() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = Vec::new();
    for d in dashboards() {
        for (i, p) in d.panels.iter().enumerate() {
            rules.push(json!({ "record": format!("steward:{}:{i}", d.uid.replace('-', "_")), "expr": checkable(&p.expr) }));
        }
        // The node variable's query too.
        let v = d.json();
        if let Some(q) = v["templating"]["list"][0]["query"].as_str() {
            let inner = q
                .trim_start_matches("label_values(")
                .trim_end_matches(", node)");
            rules.push(json!({ "record": "steward:variable", "expr": inner }));
        }
    }
    let n = rules.len();
    let doc = json!({ "groups": [{ "name": "panels", "rules": rules }] });
    std::fs::write(dir.path().join("panels.yml"), yaml(&doc)).unwrap();
    let out = promtool(&["check", "rules", "panels.yml"], dir.path());
    assert!(out.contains(&format!("{n} rules found")), "{out}");
}

/// One alert's unit test: the series, then evaluation times where it must not fire
/// and where it must, with the labels the alert carries.
struct Case {
    alert: &'static str,
    series: Vec<(&'static str, &'static str)>,
    quiet_at: &'static str,
    fires_at: &'static str,
    labels: Value,
}

fn alert_test(rule: &Rule, case: &Case) -> Value {
    let mut labels = case.labels.clone();
    labels["severity"] = rule.severity.into();
    let mut annotations = json!({});
    let node = labels["node"].as_str().unwrap_or_default().to_string();
    let mount = labels["mountpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let expand = |t: &str| {
        t.replace("{{ $labels.node }}", &node)
            .replace("{{ $labels.mountpoint }}", &mount)
    };
    annotations["summary"] = expand(&rule.summary).into();
    annotations["summary_ko"] = expand(&rule.summary_ko).into();
    json!({
        "interval": "15s",
        "input_series": case.series.iter().map(|(s, v)| json!({ "series": s, "values": v })).collect::<Vec<_>>(),
        "alert_rule_test": [
            { "eval_time": case.quiet_at, "alertname": case.alert, "exp_alerts": [] },
            { "eval_time": case.fires_at, "alertname": case.alert, "exp_alerts": [{ "exp_labels": labels, "exp_annotations": annotations }] },
        ],
    })
}

fn cases() -> Vec<Case> {
    vec![
        // Down for 1m: pending from t=0, firing after 1m.
        Case {
            alert: "NodeDown",
            series: vec![
                (r#"up{job="node-exporter",node="n1"}"#, "0x20"),
                (r#"up{job="node-exporter",node="n2"}"#, "1x20"),
            ],
            quiet_at: "45s",
            fires_at: "2m",
            labels: json!({ "job": "node-exporter", "node": "n1" }),
        },
        // Idle grows 0.1 s/s: 90 % busy (n1); n2 is 50 % busy and never fires.
        Case {
            alert: "HighCPUUsage",
            series: vec![
                (
                    r#"node_cpu_seconds_total{job="node-exporter",node="n1",cpu="0",mode="idle"}"#,
                    "0+1.5x60",
                ),
                (
                    r#"node_cpu_seconds_total{job="node-exporter",node="n2",cpu="0",mode="idle"}"#,
                    "0+7.5x60",
                ),
            ],
            quiet_at: "4m",
            fires_at: "7m",
            labels: json!({ "node": "n1" }),
        },
        Case {
            alert: "HighMemoryUsage",
            series: vec![
                (
                    r#"node_memory_MemAvailable_bytes{job="node-exporter",node="n1"}"#,
                    "10x40",
                ),
                (
                    r#"node_memory_MemTotal_bytes{job="node-exporter",node="n1"}"#,
                    "100x40",
                ),
                (
                    r#"node_memory_MemAvailable_bytes{job="node-exporter",node="n2"}"#,
                    "50x40",
                ),
                (
                    r#"node_memory_MemTotal_bytes{job="node-exporter",node="n2"}"#,
                    "100x40",
                ),
            ],
            quiet_at: "4m",
            fires_at: "6m",
            labels: json!({ "job": "node-exporter", "node": "n1" }),
        },
        // 10 % free on /; a nearly full tmpfs is ignored.
        Case {
            alert: "DiskSpaceLow",
            series: vec![
                (
                    r#"node_filesystem_avail_bytes{job="node-exporter",node="n1",device="/dev/sda1",fstype="ext4",mountpoint="/"}"#,
                    "10x40",
                ),
                (
                    r#"node_filesystem_size_bytes{job="node-exporter",node="n1",device="/dev/sda1",fstype="ext4",mountpoint="/"}"#,
                    "100x40",
                ),
                (
                    r#"node_filesystem_avail_bytes{job="node-exporter",node="n1",device="tmpfs",fstype="tmpfs",mountpoint="/run"}"#,
                    "1x40",
                ),
                (
                    r#"node_filesystem_size_bytes{job="node-exporter",node="n1",device="tmpfs",fstype="tmpfs",mountpoint="/run"}"#,
                    "100x40",
                ),
            ],
            quiet_at: "4m",
            fires_at: "6m",
            labels: json!({ "job": "node-exporter", "node": "n1", "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/" }),
        },
        // n1 is Ready with no exporter series; n2 is Ready and scraped.
        Case {
            alert: "NodeNotMonitored",
            series: vec![
                (
                    r#"kube_node_status_condition{job="kube-state-metrics",node="n1",condition="Ready",status="true"}"#,
                    "1x40",
                ),
                (
                    r#"kube_node_status_condition{job="kube-state-metrics",node="n2",condition="Ready",status="true"}"#,
                    "1x40",
                ),
                (r#"up{job="node-exporter",node="n2"}"#, "1x40"),
            ],
            quiet_at: "90s",
            fires_at: "3m",
            labels: json!({ "job": "kube-state-metrics", "node": "n1", "condition": "Ready", "status": "true" }),
        },
    ]
}

#[test]
fn each_alert_fires_after_its_for_and_not_before() {
    let settings = validate(&MonitoringStackSpec::default()).unwrap();
    let rules = rules(&settings.thresholds);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules_yaml(&rules)).unwrap();
    let out = promtool(&["check", "rules", "rules.yml"], dir.path());
    assert!(out.contains("5 rules found"), "{out}");
    let cases = cases();
    assert_eq!(cases.len(), rules.len(), "one case per rule");
    for case in &cases {
        let rule = rules.iter().find(|r| r.alert == case.alert).unwrap();
        let doc = json!({ "rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": [alert_test(rule, case)] });
        let file = format!("test-{}.yml", case.alert);
        std::fs::write(dir.path().join(&file), yaml(&doc)).unwrap();
        let out = promtool(&["test", "rules", &file], dir.path());
        assert!(out.contains("SUCCESS"), "{}: {out}", case.alert);
    }
}

/// The thresholds in the CR reach the rules: at 95 % the 90 %-busy node is quiet.
#[test]
fn a_raised_threshold_keeps_the_alert_quiet() {
    let spec = MonitoringStackSpec {
        thresholds: Some(Thresholds {
            cpu_percent: Some(95.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let rules = rules(&validate(&spec).unwrap().thresholds);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules_yaml(&rules)).unwrap();
    let case = cases()
        .into_iter()
        .find(|c| c.alert == "HighCPUUsage")
        .unwrap();
    let test = json!({
        "interval": "15s",
        "input_series": case.series.iter().map(|(s, v)| json!({ "series": s, "values": v })).collect::<Vec<_>>(),
        "alert_rule_test": [{ "eval_time": "10m", "alertname": "HighCPUUsage", "exp_alerts": [] }],
    });
    let doc = json!({ "rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": [test] });
    std::fs::write(dir.path().join("t.yml"), yaml(&doc)).unwrap();
    let out = promtool(&["test", "rules", "t.yml"], dir.path());
    assert!(out.contains("SUCCESS"), "{out}");
}
