//! The stack under Pod Security `restricted`, with persistent volumes: what the API
//! server enforces, not what steward says about itself.

#![allow(clippy::unwrap_used)]

mod monitor_support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use monitor_support::{controller, create_stack, free_port};
use serde_json::json;
use testkit::wait;

const T: Duration = Duration::from_secs(90);

/// The stack's Deployments pass Pod Security `restricted`, as the API server
/// enforces it on a namespace labelled so: without their security contexts the
/// ReplicaSets could create no pod there. Prometheus and Grafana keep their data on
/// PersistentVolumeClaims (a StorageClass with no provisioner here, so their pods
/// wait for a volume): their pod templates, volumes and `fsGroup` included, are
/// accepted by a server-side dry run of a Pod in that namespace. (node-exporter
/// needs the host's namespaces; its namespace must allow `privileged`.)
#[tokio::test(flavor = "multi_thread")]
async fn the_stack_runs_under_pod_security_restricted_with_volumes() {
    let env = testkit::env("monpsa").await.unwrap();
    env.add_nodes("n", 1, |s| s).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let restricted = json!({ "metadata": { "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest" } } });
    namespaces
        .patch(&env.ns, &PatchParams::default(), &Patch::Merge(&restricted))
        .await
        .unwrap();
    // The API server enforces it: a pod without a security context is refused.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let bare: Pod = wait::from_json(json!({
        "metadata": { "name": "bare" },
        "spec": { "containers": [{ "name": "c", "image": "registry.invalid/c:1" }] } }));
    let refused = pods
        .create(&PostParams::default(), &bare)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("restricted"), "{refused}");
    let _ctl = controller(&env.ns, "http://127.0.0.1:1", free_port(), &[]).unwrap();
    let components = [
        "prometheus",
        "alertmanager",
        "grafana",
        "kube-state-metrics",
    ];
    let volume = json!({ "size": "1Gi", "storageClassName": "steward-test-no-provisioner" });
    create_stack(
        &env,
        json!({
            "components": components,
            "storage": { "prometheus": volume, "grafana": volume },
            "retentionSize": "800MB",
        }),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let ready = |d: &Deployment| {
        d.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .is_some_and(|r| r == 1)
    };
    let name = |d: &Deployment| d.metadata.name.clone().unwrap_or_default();
    let on_volumes = ["mon-prometheus", "mon-grafana"];
    wait::list(
        &deployments,
        &ListParams::default(),
        T,
        "4 Deployments, those without a volume with a ready pod",
        |ds| {
            ds.len() == components.len()
                && ds
                    .iter()
                    .all(|d| on_volumes.contains(&name(d).as_str()) || ready(d))
        },
    )
    .await
    .unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), &env.ns);
    for claim in on_volumes {
        let pvc = claims.get(claim).await.unwrap();
        let spec = pvc.spec.unwrap();
        assert_eq!(
            spec.storage_class_name.as_deref(),
            Some("steward-test-no-provisioner")
        );
        let d = deployments.get(claim).await.unwrap();
        let template = d.spec.unwrap().template;
        let pod_spec = template.spec.unwrap();
        let mounted = pod_spec.volumes.iter().flatten().any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
        });
        assert!(mounted, "{claim} does not mount its claim");
        let fs_group = pod_spec.security_context.as_ref().and_then(|s| s.fs_group);
        assert!(
            fs_group.is_some(),
            "{claim}: no fsGroup, the volume would not be writable"
        );
        if claim == "mon-prometheus" {
            let args = pod_spec.containers[0].args.clone().unwrap_or_default();
            assert!(
                args.contains(&"--storage.tsdb.retention.size=800MB".to_string()),
                "{args:?}"
            );
        }
        // What the ReplicaSet would create, admitted (or not) by the API server.
        let pod = Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{claim}-dry-run")),
                ..Default::default()
            },
            spec: Some(pod_spec),
            ..Pod::default()
        };
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        pods.create(&dry, &pod)
            .await
            .unwrap_or_else(|e| panic!("{claim}'s pod refused under restricted: {e}"));
    }
}
