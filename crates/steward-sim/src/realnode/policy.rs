//! Real nodes never pull: a MutatingAdmissionPolicy (`assets/never-pull.yaml`) sets
//! `imagePullPolicy: Never` on every container, so a pod naming an image that was not
//! imported fails with `ErrImageNeverPull` on its kubelet. (Every registry host of
//! the nodes' containerd is also a closed loopback port, the second guard.)

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

use crate::error::{Error, Result};

const NEVER_PULL: &str = include_str!("../../assets/never-pull.yaml");

/// Creates the policy and its binding, then waits until the API server applies it
/// (policies are loaded asynchronously): a dry-run pod comes back with `Never`.
pub(crate) async fn never_pull(client: &kube::Client) -> Result<()> {
    let docs: Vec<DynamicObject> = serde_saphyr::from_multiple(NEVER_PULL).map_err(Error::Asset)?;
    for obj in docs {
        let types = obj.types.clone().unwrap_or_default();
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", &types.api_version));
        let gvk = GroupVersionKind::gvk(group, version, &types.kind);
        let plural = match types.kind.as_str() {
            "MutatingAdmissionPolicy" => "mutatingadmissionpolicies",
            _ => "mutatingadmissionpolicybindings",
        };
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::<DynamicObject>::all_with(client.clone(), &ar)
            .create(&PostParams::default(), &obj)
            .await?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let probe: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "steward-never-pull-probe"},
        "spec": {"containers": [{"name": "c", "image": crate::images::PAUSE_IMAGE}]}
    }))
    .map_err(Error::Json)?;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = pods.create(&dry, &probe).await?;
        let policy = got
            .spec
            .and_then(|s| s.containers.into_iter().next()?.image_pull_policy);
        if policy.as_deref() == Some("Never") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: "the never-pull MutatingAdmissionPolicy to take effect".into(),
                seconds: 30,
                logs: "kube-apiserver.log".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
