use super::*;
use crate::core::validate::{Profile, validate};
use crate::crd::{MonitoringStackSpec, Thresholds};

fn stack(spec: MonitoringStackSpec, profile: Profile) -> Stack {
    Stack::new(
        "mon",
        "monitoring",
        validate(&spec).unwrap_or_else(|e| panic!("{e:?}")),
        profile,
    )
}

fn find<'a>(r: &'a Rendered, kind: &str, name: &str) -> &'a Value {
    &r.manifests
        .iter()
        .find(|m| m.resource.kind == kind && m.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .object
}

#[test]
fn default_stack_has_every_component_and_labels() {
    let r = render(&stack(MonitoringStackSpec::default(), Profile::Generic));
    for (kind, name) in [
        ("Deployment", "mon-prometheus"),
        ("Deployment", "mon-alertmanager"),
        ("Deployment", "mon-grafana"),
        ("DaemonSet", "mon-node-exporter"),
        ("ConfigMap", "mon-steward-node-overview"),
        ("ConfigMap", "mon-steward-cluster-overview"),
        ("ClusterRole", "steward-monitor-monitoring-mon-prometheus"),
    ] {
        let o = find(&r, kind, name);
        assert_eq!(
            o["metadata"]["labels"][crate::core::stack::STACK_LABEL],
            "monitoring.mon"
        );
    }
    assert!(
        r.manifests
            .iter()
            .any(|m| m.name() == "mon-kube-state-metrics")
    );
    let cm = find(&r, "ConfigMap", "mon-steward-node-overview");
    assert_eq!(
        cm["metadata"]["labels"][super::DASHBOARD_LABEL],
        "steward-node-overview"
    );
    // Not the sidecar's label: a sidecar Grafana would load it twice with the chart's.
    assert!(cm["metadata"]["labels"].get("grafana_dashboard").is_none());
    // Cluster-scoped objects have no namespace; the rest are in the stack's.
    for m in &r.manifests {
        assert_eq!(
            m.object["metadata"]["namespace"].as_str().is_some(),
            m.namespaced,
            "{}",
            m.name()
        );
    }
}

#[test]
fn node_exporter_tolerates_every_taint_and_profile_decides_rootfs() {
    let generic = render(&stack(MonitoringStackSpec::default(), Profile::Generic));
    let ds = find(&generic, "DaemonSet", "mon-node-exporter");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{ "operator": "Exists" }])
    );
    assert_eq!(pod["containers"][0]["ports"][0]["hostPort"], 9100);
    assert_eq!(pod["containers"][0]["ports"][0]["name"], "metrics");
    assert!(pod["containers"][0]["args"].to_string().contains("rootfs"));
    let kind = render(&stack(MonitoringStackSpec::default(), Profile::Kind));
    let ds = find(&kind, "DaemonSet", "mon-node-exporter");
    assert!(
        !ds["spec"]["template"]["spec"]["containers"][0]["args"]
            .to_string()
            .contains("rootfs")
    );
}

#[test]
fn config_change_changes_the_prometheus_pod_template_hash() {
    let a = render(&stack(MonitoringStackSpec::default(), Profile::Kind));
    let b = render(&stack(
        MonitoringStackSpec {
            thresholds: Some(Thresholds {
                cpu_percent: Some(90.0),
                ..Default::default()
            }),
            ..Default::default()
        },
        Profile::Kind,
    ));
    let hash = |r: &Rendered| {
        find(r, "Deployment", "mon-prometheus")["spec"]["template"]["metadata"]["annotations"]
            [crate::core::stack::CONFIG_HASH_ANNOTATION]
            .clone()
    };
    assert_ne!(a.config_hash, b.config_hash);
    assert_eq!(hash(&a), a.config_hash);
    assert_eq!(hash(&b), b.config_hash);
    // Same input, same hash: no rollout without a change.
    assert_eq!(
        render(&stack(MonitoringStackSpec::default(), Profile::Kind)).config_hash,
        a.config_hash
    );
}

#[test]
fn components_and_storage_decide_objects() {
    let r = render(&stack(
        MonitoringStackSpec {
            components: Some(vec!["prometheus".into(), "kube-state-metrics".into()]),
            storage: Some(crate::crd::Storage {
                size: Some("5Gi".into()),
                ..Default::default()
            }),
            retention_size: Some("4GB".into()),
            ..Default::default()
        },
        Profile::K3s,
    ));
    let kinds: Vec<_> = r
        .manifests
        .iter()
        .map(|m| format!("{}/{}", m.resource.kind, m.name()))
        .collect();
    assert!(kinds.contains(&"PersistentVolumeClaim/mon-prometheus".to_string()));
    assert!(kinds.contains(&"Deployment/mon-kube-state-metrics".to_string()));
    assert!(
        !kinds
            .iter()
            .any(|k| k.contains("grafana") || k.contains("node-exporter"))
    );
    let prom = find(&r, "Deployment", "mon-prometheus");
    assert_eq!(
        prom["spec"]["template"]["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"],
        "mon-prometheus"
    );
    let args = &prom["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .is_some_and(|a| a.iter().any(|a| a == "--storage.tsdb.retention.size=4GB")),
        "{args}"
    );

    // Grafana's database on its own claim; without storage, an emptyDir.
    let spec = |storage: serde_json::Value| -> MonitoringStackSpec {
        serde_json::from_value(serde_json::json!({ "storage": storage })).unwrap_or_default()
    };
    let r = render(&stack(
        spec(serde_json::json!({ "grafana": { "size": "1Gi", "storageClassName": "slow" } })),
        Profile::Generic,
    ));
    let pvc = find(&r, "PersistentVolumeClaim", "mon-grafana");
    assert_eq!(pvc["spec"]["storageClassName"], "slow");
    assert!(
        !r.manifests
            .iter()
            .any(|m| m.name() == "mon-prometheus" && m.resource.kind == "PersistentVolumeClaim")
    );
    let data = |r: &crate::core::manifests::Rendered| {
        let g = find(r, "Deployment", "mon-grafana");
        g["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "data").cloned())
            .unwrap_or_default()
    };
    assert_eq!(
        data(&r)["persistentVolumeClaim"]["claimName"],
        "mon-grafana"
    );
    let plain = render(&stack(MonitoringStackSpec::default(), Profile::Generic));
    assert!(data(&plain)["emptyDir"].is_object(), "{}", data(&plain));
    let prom = find(&plain, "Deployment", "mon-prometheus");
    assert!(!prom.to_string().contains("retention.size"));
}

#[test]
fn receivers_secrets_are_mounted_where_the_configuration_reads_them() {
    let spec: MonitoringStackSpec = serde_json::from_value(serde_json::json!({
        "alerting": { "lang": "ko", "receivers": [
            { "name": "oncall", "slack": { "webhookUrlSecret": { "name": "slack", "key": "url" } } },
            { "name": "mail", "email": { "to": "ops@example.com", "from": "am@example.com",
              "smarthost": "smtp.example.com:587", "authPasswordSecret": { "name": "smtp", "key": "pw" } } },
        ] }
    }))
    .unwrap_or_default();
    let r = render(&stack(spec, Profile::Generic));
    let cm = find(&r, "ConfigMap", "mon-alertmanager");
    let config = cm["data"]["alertmanager.yml"].as_str().unwrap_or_default();
    assert!(
        config.contains("/etc/alertmanager/secrets/slack/url"),
        "{config}"
    );
    assert!(
        config.contains("/etc/alertmanager/secrets/smtp/pw"),
        "{config}"
    );
    assert!(
        cm["data"]["steward.tmpl"]
            .as_str()
            .unwrap_or_default()
            .contains("발생")
    );
    let pod = &find(&r, "Deployment", "mon-alertmanager")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        c["args"][0],
        "--config.file=/etc/alertmanager/config/alertmanager.yml"
    );
    let mounts: Vec<(String, String, bool)> = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            let path = m["mountPath"].as_str().unwrap_or_default().to_string();
            (name, path, m["readOnly"] == true)
        })
        .collect();
    for (volume, secret, path) in [
        ("secret-0", "slack", "/etc/alertmanager/secrets/slack"),
        ("secret-1", "smtp", "/etc/alertmanager/secrets/smtp"),
    ] {
        assert!(
            mounts.contains(&(volume.into(), path.into(), true)),
            "{mounts:?}"
        );
        let v = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == volume)
            .cloned()
            .unwrap_or_default();
        assert_eq!(v["secret"]["secretName"], secret);
    }
}
