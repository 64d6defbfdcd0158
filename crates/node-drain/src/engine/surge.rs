//! Make-before-break for a Deployment's pod ([`crate::core::surge`]): restart the
//! Deployment once per run (as `kubectl rollout restart`), then wait until its
//! rollout has removed the pod, which it does only once the replacement is
//! available. The eviction that follows finds the pod gone or going. Any failure
//! here falls back to the plain eviction, whose PodDisruptionBudget still holds.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use super::{Engine, FIELD_MANAGER};
use crate::core::pods::controller;
use crate::core::removal::PodKey;
use crate::core::surge::{RESTARTED_AT, Surge, decide};

impl Engine {
    /// Restarts the pod's Deployment when an eviction would leave it no ready pod,
    /// and waits until the rollout removed the pod (the node's deadline or
    /// shutdown cancel the wait with the pod task).
    pub(super) async fn make_before_break(
        &self,
        (node, uid): (&str, Option<&str>),
        key: &PodKey,
        pod: &Pod,
    ) {
        let deployment = match self.deployment_of(key, pod).await {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "reading the pod's Deployment failed; evicting as usual");
                return;
            }
        };
        let name = format!("{}/{}", key.ns, deployment.name_any());
        match decide(&deployment, self.budgets.allowed_for(pod)) {
            Surge::Evict(why) => {
                tracing::debug!(pod = %key, deployment = %name, why, "no surge");
                return;
            }
            Surge::Restart => {}
        }
        // Held across the patch: a second pod of the same Deployment waits for the
        // first's restart instead of starting another (or none, if it failed).
        let mut restarted = self.restarted.lock().await;
        if !restarted.contains(&name) {
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), &key.ns);
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let patch = json!({ "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now } } } } });
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            if let Err(e) = api
                .patch(&deployment.name_any(), &pp, &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(pod = %key, deployment = %name, error = %e, "restarting the Deployment failed; evicting as usual");
                return;
            }
            restarted.insert(name.clone());
            tracing::info!(pod = %key, deployment = %name, %node, "restarted the Deployment: its replacement becomes Ready before the pod leaves");
            self.events.surged(node, uid, &key.to_string(), &name).await;
        }
        drop(restarted);
        self.wait_for_rollout(key).await;
    }

    /// The Deployment owning the pod's ReplicaSet, if it has one.
    async fn deployment_of(&self, key: &PodKey, pod: &Pod) -> kube::Result<Option<Deployment>> {
        let Some(rs) = controller(pod.owner_references(), "ReplicaSet") else {
            return Ok(None);
        };
        let rs = Api::<ReplicaSet>::namespaced(self.client.clone(), &key.ns)
            .get(rs)
            .await?;
        let Some(d) = controller(rs.owner_references(), "Deployment") else {
            return Ok(None);
        };
        Api::<Deployment>::namespaced(self.client.clone(), &key.ns)
            .get(d)
            .await
            .map(Some)
    }

    /// Until the pod (this UID) is gone or being deleted, by a watch; a watch that
    /// fails is started again (giving up would evict a workload's only pod).
    async fn wait_for_rollout(&self, key: &PodKey) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.ns);
        let uid = key.uid.clone();
        let leaving = move |p: Option<&Pod>| {
            p.is_none_or(|p| {
                p.uid().as_deref() != Some(uid.as_str()) || p.metadata.deletion_timestamp.is_some()
            })
        };
        loop {
            match await_condition(api.clone(), &key.name, leaving.clone()).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "watching the pod failed; watching again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
