//! The Prometheus and Alertmanager configuration steward generates. Pure.
//!
//! Targets come from Kubernetes service discovery, never from per-node objects: the
//! node-exporter DaemonSet's pods are discovered with `role: pod` and the pod's node
//! name becomes the `node` label, so a new node is scraped as soon as its exporter
//! pod is Ready, without a reload. kubelet and cAdvisor are scraped through the API
//! server's node proxy, which works the same on kind, minikube, k3s and managed
//! clusters (no kubelet certificate to trust). The control-plane components are
//! scraped only on the generic profile: on kind, minikube and k3s they listen on
//! localhost or run inside one binary, and those targets would be down forever.

use serde_json::{Value, json};

use crate::core::rules::NODE_JOB;
use crate::core::stack::Stack;

/// Path of the rules file inside the Prometheus container.
pub const RULES_PATH: &str = "/etc/prometheus/rules.yml";

/// The Prometheus configuration document.
pub fn prometheus_config(stack: &Stack) -> Value {
    let s = &stack.settings;
    let mut jobs = vec![
        json!({ "job_name": "prometheus", "static_configs": [{ "targets": ["localhost:9090"] }] }),
    ];
    if s.has("node-exporter") {
        jobs.push(node_exporter_job(stack));
    }
    if s.has("kube-state-metrics") {
        jobs.push(json!({
            "job_name": "kube-state-metrics",
            "honor_labels": true,
            "static_configs": [{ "targets": [format!("{}:8080", stack.service_host("kube-state-metrics"))] }],
        }));
    }
    // steward's own components, and pods annotated for scraping (`core::selfmon`).
    jobs.push(crate::core::selfmon::steward_job());
    jobs.push(crate::core::selfmon::annotated_pods_job());
    jobs.push(node_proxy_job("kubelet", "/metrics"));
    jobs.push(node_proxy_job("cadvisor", "/metrics/cadvisor"));
    if stack.profile.scrapes_control_plane() {
        for (job, port) in [
            ("kube-scheduler", 10259),
            ("kube-controller-manager", 10257),
        ] {
            jobs.push(control_plane_job(job, port));
        }
    }
    let mut doc = json!({
        "global": {
            "scrape_interval": s.scrape_interval,
            "evaluation_interval": s.scrape_interval,
            "external_labels": { "steward_stack": format!("{}/{}", stack.namespace, stack.name) },
        },
        "rule_files": [RULES_PATH],
        "scrape_configs": jobs,
    });
    if s.has("alertmanager") {
        doc["alerting"] = json!({ "alertmanagers": [{
            "static_configs": [{ "targets": [format!("{}:9093", stack.service_host("alertmanager"))] }]
        }]});
    }
    doc
}

/// The node-exporter job: the DaemonSet's pods in the stack's namespace, by label.
fn node_exporter_job(stack: &Stack) -> Value {
    json!({
        "job_name": NODE_JOB,
        "kubernetes_sd_configs": [{ "role": "pod", "namespaces": { "names": [stack.namespace] } }],
        "relabel_configs": [
            { "action": "keep", "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name", "__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
              "regex": format!("node-exporter;{}", stack.name) },
            { "action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics" },
            { "source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node" },
            { "source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod" },
        ],
    })
}

/// kubelet or cAdvisor through the API server's node proxy.
fn node_proxy_job(job: &str, path: &str) -> Value {
    json!({
        "job_name": job,
        "scheme": "https",
        "authorization": { "credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token" },
        "tls_config": { "ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" },
        "kubernetes_sd_configs": [{ "role": "node" }],
        "relabel_configs": [
            { "source_labels": ["__meta_kubernetes_node_name"], "target_label": "node" },
            { "target_label": "__address__", "replacement": "kubernetes.default.svc:443" },
            { "source_labels": ["__meta_kubernetes_node_name"], "target_label": "__metrics_path__",
              "replacement": format!("/api/v1/nodes/${{1}}/proxy{path}") },
        ],
    })
}

/// A kubeadm static-pod control-plane component (generic profile only).
fn control_plane_job(component: &str, port: u16) -> Value {
    json!({
        "job_name": component,
        "scheme": "https",
        "authorization": { "credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token" },
        "tls_config": { "insecure_skip_verify": true },
        "kubernetes_sd_configs": [{ "role": "pod", "namespaces": { "names": ["kube-system"] } }],
        "relabel_configs": [
            { "action": "keep", "source_labels": ["__meta_kubernetes_pod_label_component"], "regex": component },
            { "source_labels": ["__meta_kubernetes_pod_ip"], "target_label": "__address__", "replacement": format!("${{1}}:{port}") },
            { "source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node" },
        ],
    })
}

/// YAML of a document.
pub fn yaml(v: &Value) -> String {
    // A JSON value always serialises: every node is a string, number, bool, map or list.
    serde_saphyr::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::validate::Profile;
    use crate::crd::MonitoringStackSpec;

    fn stack(profile: Profile, components: &[&str]) -> Stack {
        let spec = MonitoringStackSpec {
            components: Some(components.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        };
        let settings = crate::core::validate::validate(&spec).unwrap_or_else(|e| panic!("{e:?}"));
        Stack::new("mon", "monitoring", settings, profile)
    }

    fn jobs(v: &Value) -> Vec<String> {
        v["scrape_configs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["job_name"].as_str().map(String::from))
            .collect()
    }

    #[test]
    fn profile_decides_the_control_plane_jobs() {
        let all = ["prometheus", "node-exporter", "alertmanager"];
        for (profile, has_scheduler) in [
            (Profile::Kind, false),
            (Profile::Minikube, false),
            (Profile::K3s, false),
            (Profile::Eks, false),
            (Profile::Gke, false),
            (Profile::Aks, false),
            (Profile::Generic, true),
        ] {
            let c = prometheus_config(&stack(profile, &all));
            for job in ["kube-scheduler", "kube-controller-manager"] {
                assert_eq!(
                    jobs(&c).contains(&job.to_string()),
                    has_scheduler,
                    "{profile:?} {job}"
                );
            }
            assert!(jobs(&c).contains(&NODE_JOB.to_string()));
        }
    }

    #[test]
    fn components_decide_jobs_and_alerting() {
        let c = prometheus_config(&stack(Profile::Kind, &["prometheus"]));
        assert_eq!(
            jobs(&c),
            [
                "prometheus",
                "steward",
                "kubernetes-pods",
                "kubelet",
                "cadvisor"
            ]
        );
        assert!(c.get("alerting").is_none());
        let c = prometheus_config(&stack(
            Profile::Kind,
            &["prometheus", "kube-state-metrics", "alertmanager"],
        ));
        assert!(jobs(&c).contains(&"kube-state-metrics".to_string()));
        assert_eq!(
            c["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
            "mon-alertmanager.monitoring.svc:9093"
        );
    }
}
