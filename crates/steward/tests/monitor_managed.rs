//! Managed control planes (issue 19): on a node that says EKS (its node group
//! label), the controller picks the `eks` profile and the Prometheus configuration
//! it writes has no job for the scheduler or the controller manager, which EKS
//! hides (kube-prometheus-stack's most reported false alert is
//! KubeControllerManagerDown on EKS); kubelet and cAdvisor are still scraped.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod monitor_support;

use std::time::Duration;

use auto_monitor::crd::MonitoringStack;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use monitor_support::{config_map_data, controller, create_stack, free_port};
use serde_json::{Value, json};
use testkit::wait;

const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn an_eks_node_gives_the_eks_profile_and_no_control_plane_jobs() {
    let env = testkit::env("mon-eks").await.unwrap();
    env.add_nodes("n", 1, |s| {
        s.label("eks.amazonaws.com/nodegroup", "workers")
    })
    .await
    .unwrap();
    let _ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &[]).unwrap();
    let stacks = create_stack(
        &env,
        json!({ "components": ["prometheus", "node-exporter"] }),
    )
    .await;
    let ms = wait::object(
        &stacks,
        "mon",
        T,
        "a profile in the status",
        |m: &MonitoringStack| {
            m.status
                .as_ref()
                .and_then(|s| s.profile.as_deref())
                .is_some()
        },
    )
    .await
    .unwrap();
    assert_eq!(ms.status.unwrap().profile.as_deref(), Some("eks"));
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let config = config_map_data(&cms, "mon-prometheus", "prometheus.yml").await;
    let config: Value = serde_saphyr::from_str(&config).unwrap();
    let jobs: Vec<&str> = config["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["job_name"].as_str())
        .collect();
    for hidden in ["kube-scheduler", "kube-controller-manager"] {
        assert!(!jobs.contains(&hidden), "{jobs:?}");
    }
    for kept in ["kubelet", "cadvisor", "node-exporter"] {
        assert!(jobs.contains(&kept), "{jobs:?}");
    }
}
