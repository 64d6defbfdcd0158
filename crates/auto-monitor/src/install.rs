//! The embedded install: gather the pre-flight snapshot, server-side apply every
//! rendered object with the `steward-monitor` field manager, prune what the last
//! inventory had and this render has not, and tell when everything is Available.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource, ResourceExt};
use steward_kube::quantity::{parse_bytes, parse_cpu, pod_request};

use crate::crd::{MonitoringStack, ObjectRef};
use crate::error::{Result, kube as kerr};
use crate::manifests::Manifest;
use crate::manifests::workloads::NODE_EXPORTER_PORT;
use crate::preflight::{Cluster, NodeRoom};
use crate::stack::{FIELD_MANAGER, STACK_LABEL, Stack};

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

fn api_for(client: &Client, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// The API resource of an inventory entry. Every kind steward applies pluralises by
/// lowercasing and adding `s` (ConfigMap, ClusterRoleBinding, DaemonSet, ...).
fn resource_of(r: &ObjectRef) -> ApiResource {
    let (group, version) = r
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &r.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &r.kind);
    ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", r.kind.to_lowercase()))
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
        match api.delete(&r.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kerr(format!("pruning {} {}", r.kind, r.name))(e)),
        }
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

/// The pre-flight snapshot.
pub async fn gather(client: &Client, stack: &Stack) -> Result<Cluster> {
    let nodes =
        steward_kube::list::list_all(&Api::<Node>::all(client.clone()), &ListParams::default())
            .await
            .map_err(kerr("listing nodes"))?;
    let pods =
        steward_kube::list::list_all(&Api::<Pod>::all(client.clone()), &ListParams::default())
            .await
            .map_err(kerr("listing pods"))?;
    let mine = |p: &Pod| p.labels().get(STACK_LABEL) == Some(&stack.stack_label());
    let mut cluster = Cluster::default();
    for n in &nodes {
        let name = n.name_any();
        let on_node: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
            .filter(|p| !steward_kube::pod::is_finished(p))
            .collect();
        let alloc = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .unwrap_or_default();
        let used_cpu: f64 = on_node.iter().map(|p| pod_request(p, "cpu")).sum();
        let used_mem: f64 = on_node.iter().map(|p| pod_request(p, "memory")).sum();
        cluster.nodes.push(NodeRoom {
            name: name.clone(),
            free_cpu: alloc.get("cpu").map_or(0.0, parse_cpu) - used_cpu,
            free_memory: alloc.get("memory").map_or(0.0, parse_bytes) - used_mem,
            eligible: eligible(stack, n),
        });
    }
    for p in pods.iter().filter(|p| !mine(p)) {
        let holds = p
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .any(|port| port.host_port == Some(NODE_EXPORTER_PORT));
        if holds {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            cluster.port_9100.push(format!(
                "{}/{} on {node}",
                p.namespace().unwrap_or_default(),
                p.name_any()
            ));
        }
    }
    let daemonsets = steward_kube::list::list_all(
        &Api::<DaemonSet>::all(client.clone()),
        &ListParams::default(),
    )
    .await
    .map_err(kerr("listing DaemonSets"))?;
    cluster.other_node_exporters = daemonsets
        .iter()
        .filter(|d| {
            d.name_any().contains("node-exporter")
                && d.labels().get(STACK_LABEL) != Some(&stack.stack_label())
        })
        .map(|d| format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any()))
        .collect();
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kerr("listing StorageClasses"))?;
    cluster.default_storage_class = classes
        .items
        .iter()
        .find(|c| {
            c.annotations()
                .get("storageclass.kubernetes.io/is-default-class")
                .map(String::as_str)
                == Some("true")
        })
        .map(|c| c.name_any());
    let crds = Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kerr("listing CRDs"))?;
    for c in &crds.items {
        let versions: Vec<String> = c
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| v.name.clone())
            .collect();
        if c.spec.group == "monitoring.coreos.com" {
            cluster.operator_crd_names.push(c.name_any());
            cluster
                .operator_crds
                .push(format!("{} ({})", c.name_any(), versions.join(", ")));
        } else if c.name_any() == format!("monitoringstacks.{}", crate::crd::GROUP) {
            cluster.own_crd_versions = versions;
        }
    }
    Ok(cluster)
}

/// Whether the stack's Deployments may run on the node (selector and NoSchedule taints).
fn eligible(stack: &Stack, n: &Node) -> bool {
    let p = &stack.settings.placement;
    let labels = n.labels();
    let selected = p
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let tolerated = n
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .all(|t| {
            t.effect == "PreferNoSchedule"
                || p.tolerations
                    .iter()
                    .flatten()
                    .any(|tol| crate::conditions::tolerates(tol, t))
        });
    let schedulable = !n
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    selected && tolerated && schedulable
}

/// Deletes the cluster-scoped objects (ClusterRoles and their bindings) of stacks that
/// no longer exist. Namespaced objects go with their owner, the MonitoringStack; a
/// cluster-scoped object cannot have a namespaced owner, and a finalizer would leave
/// the stack stuck whenever the controller is gone. `live` holds the
/// [`STACK_LABEL`] values of existing stacks; `namespace` limits the sweep to the
/// stacks this controller reconciles. Returns the names deleted.
pub async fn delete_orphans(
    client: &Client,
    live: &BTreeSet<String>,
    namespace: Option<&str>,
) -> Result<Vec<String>> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by={FIELD_MANAGER},{STACK_LABEL}"
    ));
    let orphan = |labels: &std::collections::BTreeMap<String, String>| {
        let stack = labels.get(STACK_LABEL).cloned().unwrap_or_default();
        let in_scope =
            namespace.is_none_or(|ns| stack.split_once('.').is_some_and(|(n, _)| n == ns));
        in_scope && !live.contains(&stack)
    };
    let mut deleted = Vec::new();
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for b in bindings
        .list(&lp)
        .await
        .map_err(kerr("listing ClusterRoleBindings"))?
        .items
    {
        if orphan(b.labels()) {
            match bindings
                .delete(&b.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => deleted.push(format!("ClusterRoleBinding/{}", b.name_any())),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kerr("deleting an orphaned ClusterRoleBinding")(e)),
            }
        }
    }
    let roles: Api<ClusterRole> = Api::all(client.clone());
    for r in roles
        .list(&lp)
        .await
        .map_err(kerr("listing ClusterRoles"))?
        .items
    {
        if orphan(r.labels()) {
            match roles.delete(&r.name_any(), &DeleteParams::default()).await {
                Ok(_) => deleted.push(format!("ClusterRole/{}", r.name_any())),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kerr("deleting an orphaned ClusterRole")(e)),
            }
        }
    }
    Ok(deleted)
}
