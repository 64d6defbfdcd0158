//! The embedded install: gather the pre-flight snapshot, server-side apply every
//! rendered object with the `steward-monitor` field manager, prune what the last
//! inventory had and this render has not, and tell when everything is Available.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource, ResourceExt};
use steward_kube::error::ok_if_not_found;
use steward_kube::list::list_all;

use crate::core::external::OperatorPrometheus;
use crate::core::manifests::Manifest;
use crate::core::preflight::Cluster;
use crate::core::preflight::snapshot::{Listed, snapshot};
use crate::core::stack::{FIELD_MANAGER, STACK_LABEL, Stack};
use crate::crd::{MonitoringStack, ObjectRef};
use crate::error::{Result, kube as kerr};

/// Applies every manifest; namespaced objects are owned by the MonitoringStack so
/// deleting it removes them (cluster-scoped RBAC is pruned through the inventory).
pub async fn apply(
    client: &Client,
    owner: &MonitoringStack,
    manifests: &[Manifest],
) -> Result<Vec<ObjectRef>> {
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let owner_ref = owner.controller_owner_ref(&());
    let mut applied = Vec::with_capacity(manifests.len());
    for m in manifests {
        let mut obj = m.object.clone();
        if m.namespaced
            && let Some(o) = &owner_ref
        {
            obj["metadata"]["ownerReferences"] = serde_json::to_value([o]).unwrap_or_default();
        }
        let r = m.reference();
        api_for(client, &m.resource, r.namespace.as_deref())
            .patch(m.name(), &pp, &Patch::Apply(&obj))
            .await
            .map_err(kerr(format!("applying {} {}", r.kind, r.name)))?;
        applied.push(r);
    }
    Ok(applied)
}

pub(crate) fn api_for(client: &Client, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// The API resource of an inventory entry. Every kind steward applies pluralises by
/// lowercasing and adding `s` (ConfigMap, ClusterRoleBinding, DaemonSet, ...).
pub(crate) fn resource_of(r: &ObjectRef) -> ApiResource {
    let (group, version) = r
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &r.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &r.kind);
    ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", r.kind.to_lowercase()))
}

/// What the stack installed: the inventory of the MonitoringStack as the API server
/// has it now, with `known` (the status this pass started from). The watch's copy
/// can be older than this controller's last status write (a spec change seen
/// before the status patch that preceded it), and pruning from it alone would
/// forget what that write recorded and leave those objects behind.
pub async fn inventory(
    client: &Client,
    ms: &MonitoringStack,
    known: &[ObjectRef],
) -> Result<Vec<ObjectRef>> {
    let api: Api<MonitoringStack> =
        Api::namespaced(client.clone(), &ms.namespace().unwrap_or_default());
    let live = api
        .get_opt(&ms.name_any())
        .await
        .map_err(kerr("reading the MonitoringStack's inventory"))?;
    let mut all: Vec<ObjectRef> = known.to_vec();
    for r in live
        .and_then(|m| m.status)
        .map(|s| s.inventory)
        .unwrap_or_default()
    {
        if !all.contains(&r) {
            all.push(r);
        }
    }
    Ok(all)
}

/// Deletes what `old` has and `new` has not, only if it still carries this stack's
/// label (an object someone else took over is left alone). Returns what was deleted.
pub async fn prune(
    client: &Client,
    stack: &Stack,
    old: &[ObjectRef],
    new: &[ObjectRef],
) -> Result<Vec<ObjectRef>> {
    let keep: BTreeSet<&ObjectRef> = new.iter().collect();
    let mut pruned = Vec::new();
    for r in old.iter().filter(|r| !keep.contains(r)) {
        let api = api_for(client, &resource_of(r), r.namespace.as_deref());
        let Some(obj) = api
            .get_opt(&r.name)
            .await
            .map_err(kerr(format!("reading {} {}", r.kind, r.name)))?
        else {
            continue;
        };
        if obj.labels().get(STACK_LABEL) != Some(&stack.stack_label()) {
            tracing::warn!(kind = %r.kind, name = %r.name, "not pruning an object that lost the stack label");
            continue;
        }
        // Gone meanwhile: pruned all the same.
        ok_if_not_found(api.delete(&r.name, &DeleteParams::background()).await)
            .map_err(kerr(format!("pruning {} {}", r.kind, r.name)))?;
        tracing::info!(kind = %r.kind, name = %r.name, "pruned");
        pruned.push(r.clone());
    }
    Ok(pruned)
}

/// Workloads not yet Available, as `Kind/name (why)`; empty when all are.
pub async fn not_available(
    client: &Client,
    stack: &Stack,
    manifests: &[Manifest],
) -> Result<Vec<String>> {
    let mut waiting = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &stack.namespace);
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), &stack.namespace);
    for m in manifests {
        match m.resource.kind.as_str() {
            "Deployment" => {
                let d = deployments
                    .get_opt(m.name())
                    .await
                    .map_err(kerr("reading Deployment"))?;
                let st = d
                    .as_ref()
                    .and_then(|d| d.status.clone())
                    .unwrap_or_default();
                let current =
                    d.as_ref().and_then(|d| d.metadata.generation) == st.observed_generation;
                if !(current
                    && st.available_replicas.unwrap_or(0) >= 1
                    && st.updated_replicas.unwrap_or(0) >= 1)
                {
                    waiting.push(format!(
                        "Deployment/{} ({} available)",
                        m.name(),
                        st.available_replicas.unwrap_or(0)
                    ));
                }
            }
            "DaemonSet" => {
                let d = daemonsets
                    .get_opt(m.name())
                    .await
                    .map_err(kerr("reading DaemonSet"))?;
                let st = d
                    .as_ref()
                    .and_then(|d| d.status.clone())
                    .unwrap_or_default();
                let current =
                    d.as_ref().and_then(|d| d.metadata.generation) == st.observed_generation;
                if !(current && st.number_available.unwrap_or(0) >= st.desired_number_scheduled) {
                    waiting.push(format!(
                        "DaemonSet/{} ({}/{} available)",
                        m.name(),
                        st.number_available.unwrap_or(0),
                        st.desired_number_scheduled
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(waiting)
}

/// The pre-flight snapshot: every node, pod, DaemonSet, StorageClass and CRD,
/// read here, made into a [`Cluster`] by `core::preflight::snapshot`.
pub async fn gather(client: &Client, stack: &Stack) -> Result<Cluster> {
    let lp = ListParams::default();
    let mut listed = Listed {
        nodes: list_all(&Api::<Node>::all(client.clone()), &lp)
            .await
            .map_err(kerr("listing nodes"))?,
        pods: list_all(&Api::<Pod>::all(client.clone()), &lp)
            .await
            .map_err(kerr("listing pods"))?,
        daemonsets: list_all(&Api::<DaemonSet>::all(client.clone()), &lp)
            .await
            .map_err(kerr("listing DaemonSets"))?,
        storage_classes: Api::<StorageClass>::all(client.clone())
            .list(&lp)
            .await
            .map_err(kerr("listing StorageClasses"))?
            .items,
        crds: Api::<CustomResourceDefinition>::all(client.clone())
            .list(&lp)
            .await
            .map_err(kerr("listing CRDs"))?
            .items,
        ..Listed::default()
    };
    if stack.settings.external_prometheus {
        external(client, stack, &mut listed).await?;
    }
    Ok(snapshot(stack, &listed))
}

/// For `spec.prometheus: external`: every operator Prometheus (when its CRD is
/// there) and the labels of the stack's namespace, which namespace selectors match.
async fn external(client: &Client, stack: &Stack, listed: &mut Listed) -> Result<()> {
    use crate::core::manifests::operator::GROUP;
    let crd = format!("prometheuses.{GROUP}");
    if listed.crds.iter().any(|c| c.name_any() == crd) {
        let gvk = GroupVersionKind::gvk(GROUP, "v1", "Prometheus");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "prometheuses");
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let items = list_all(&api, &ListParams::default())
            .await
            .map_err(kerr("listing Prometheus objects"))?;
        listed.prometheuses = items
            .iter()
            .map(|p| {
                let spec = p.data.get("spec").cloned().unwrap_or_default();
                OperatorPrometheus::from_spec(
                    &p.namespace().unwrap_or_default(),
                    &p.name_any(),
                    &spec,
                )
            })
            .collect();
    }
    let ns = Api::<Namespace>::all(client.clone())
        .get(&stack.namespace)
        .await
        .map_err(kerr(format!("reading namespace {}", stack.namespace)))?;
    listed.namespace_labels = ns.labels().clone();
    Ok(())
}

/// Deletes the cluster-scoped objects (ClusterRoles and their bindings) of stacks that
/// no longer exist. Namespaced objects go with their owner, the MonitoringStack; a
/// cluster-scoped object cannot have a namespaced owner, and a finalizer would leave
/// the stack stuck whenever the controller is gone. `live` holds the
/// [`STACK_LABEL`] values of existing stacks; `namespace` limits the sweep to the
/// stacks this controller reconciles. Returns the objects deleted, as `Kind/name`.
pub async fn delete_orphans(
    client: &Client,
    live: &BTreeSet<String>,
    namespace: Option<&str>,
) -> Result<Vec<String>> {
    delete_cluster_scoped(client, |stack| {
        let in_scope =
            namespace.is_none_or(|ns| stack.split_once('.').is_some_and(|(n, _)| n == ns));
        in_scope && !live.contains(stack)
    })
    .await
}

/// The cluster-scoped objects steward applied for stacks, each with its
/// [`STACK_LABEL`] value.
pub async fn cluster_scoped(client: &Client) -> Result<Vec<(ObjectRef, String)>> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by={FIELD_MANAGER},{STACK_LABEL}"
    ));
    let stack_of = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(STACK_LABEL).cloned().unwrap_or_default()
    };
    let mut found = Vec::new();
    for b in Api::<ClusterRoleBinding>::all(client.clone())
        .list_metadata(&lp)
        .await
        .map_err(kerr("listing ClusterRoleBindings"))?
    {
        found.push((
            rbac("ClusterRoleBinding", b.name_any()),
            stack_of(b.labels()),
        ));
    }
    for r in Api::<ClusterRole>::all(client.clone())
        .list_metadata(&lp)
        .await
        .map_err(kerr("listing ClusterRoles"))?
    {
        found.push((rbac("ClusterRole", r.name_any()), stack_of(r.labels())));
    }
    Ok(found)
}

fn rbac(kind: &str, name: String) -> ObjectRef {
    ObjectRef {
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: kind.into(),
        namespace: None,
        name,
    }
}

/// Deletes the cluster-scoped objects of the stacks `doomed` names (by their
/// [`STACK_LABEL`] value), bindings before roles; returns them as `Kind/name`.
pub async fn delete_cluster_scoped(
    client: &Client,
    doomed: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let mut deleted = Vec::new();
    for (object, stack) in cluster_scoped(client).await? {
        if !doomed(&stack) {
            continue;
        }
        let (name, dp) = (object.name.as_str(), DeleteParams::default());
        let object = format!("{}/{}", object.kind, object.name);
        let gone = if object.starts_with("ClusterRoleBinding/") {
            let api: Api<ClusterRoleBinding> = Api::all(client.clone());
            ok_if_not_found(api.delete(name, &dp).await).map(|o| o.is_some())
        } else {
            let api: Api<ClusterRole> = Api::all(client.clone());
            ok_if_not_found(api.delete(name, &dp).await).map(|o| o.is_some())
        }
        .map_err(kerr(format!(
            "deleting {object} of a removed MonitoringStack"
        )))?;
        if gone {
            deleted.push(object);
        }
    }
    Ok(deleted)
}
