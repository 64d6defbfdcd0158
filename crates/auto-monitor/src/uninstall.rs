//! Uninstall: what a MonitoringStack installed, found again and removed.
//!
//! The namespaced objects steward applies (and the Grafana admin Secret) carry an
//! owner reference to the stack, so the garbage collector removes them with it. Two
//! things no owner reference can remove: cluster-scoped RBAC (a namespaced owner
//! cannot own it; [`install::delete_cluster_scoped`]) and a helm-mode release
//! (helm's objects, some cluster-scoped, and its release Secrets). A release steward
//! installs carries the release label [`STACK_LABEL`]` = <namespace>.<name>` (`helm
//! upgrade --labels`), which helm copies onto its release Secrets; so a release whose
//! stack is gone is found again by the controller's sweep ([`sweep_releases`]) or by
//! `steward monitor uninstall` ([`plan`], [`execute`]).
//!
//! No finalizer: a stack deleted while no controller runs is not left stuck in
//! Terminating; the next controller, or the CLI, removes what is left.
//! CustomResourceDefinitions are kept, as `helm uninstall` keeps a chart's: they are
//! cluster-wide APIs, and deleting one deletes every object of its kind in every
//! namespace, other teams' ServiceMonitors included.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use steward_kube::error::ok_if_not_found;
use steward_runtime::Lang;

use crate::core::stack::STACK_LABEL;
use crate::crd::{MonitoringStack, ObjectRef};
use crate::error::{Error, Result, kube as kerr};
use crate::{helm, install};

/// A helm release steward installed for a stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    /// Namespace of the release.
    pub namespace: String,
    /// Release name.
    pub name: String,
    /// The [`STACK_LABEL`] value: `<namespace>.<name>` of its MonitoringStack.
    pub stack: String,
}

/// One release per (namespace, name) from the labels of helm's release Secrets (one
/// Secret per revision). Pure.
pub fn releases_from(
    secrets: impl IntoIterator<Item = (String, BTreeMap<String, String>)>,
) -> Vec<Release> {
    let found: BTreeSet<Release> = secrets
        .into_iter()
        .filter_map(|(namespace, labels)| {
            Some(Release {
                namespace,
                name: labels.get("name")?.clone(),
                stack: labels.get(STACK_LABEL)?.clone(),
            })
        })
        .collect();
    found.into_iter().collect()
}

/// The releases steward installed, in `namespace` or everywhere. Reads only the
/// Secrets' metadata, never a release's content.
pub async fn releases(client: &Client, namespace: Option<&str>) -> Result<Vec<Release>> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let lp = ListParams::default().labels(&format!("owner=helm,{STACK_LABEL}"));
    let metas = api
        .list_metadata(&lp)
        .await
        .map_err(kerr("listing helm release Secrets"))?;
    Ok(releases_from(metas.items.into_iter().map(|m| {
        (
            m.namespace().unwrap_or_default(),
            m.labels().clone().into_iter().collect(),
        )
    })))
}

/// `helm uninstall --wait`; a release already gone is uninstalled all the same.
pub async fn uninstall_release(bin: &str, r: &Release, timeout: Duration) -> Result<()> {
    let t = format!("{}s", timeout.as_secs().max(1));
    let args = [
        "uninstall",
        "--namespace",
        &r.namespace,
        "--wait",
        "--timeout",
        &t,
        "--",
        &r.name,
    ];
    match helm::helm(bin, &args, timeout + Duration::from_secs(30)).await {
        Err(Error::Helm { reason, .. }) if reason.contains("not found") => Ok(()),
        other => other.map(drop),
    }
}

/// Uninstalls the releases of stacks that no longer exist (`live`: the
/// [`STACK_LABEL`] values of those that do); returns them as `namespace/name`.
pub async fn sweep_releases(
    client: &Client,
    bin: &str,
    live: &BTreeSet<String>,
    namespace: Option<&str>,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for r in releases(client, namespace).await? {
        if live.contains(&r.stack) {
            continue;
        }
        uninstall_release(bin, &r, Duration::from_secs(300)).await?;
        done.push(format!("{}/{}", r.namespace, r.name));
    }
    Ok(done)
}

/// `Kind/name` of every object in a rendered helm manifest. Pure.
pub fn manifest_objects(text: &str) -> Vec<String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap_or_default();
    docs.iter()
        .filter_map(|d| {
            let kind = d.get("kind")?.as_str()?;
            let name = d.get("metadata")?.get("name")?.as_str()?;
            Some(format!("{kind}/{name}"))
        })
        .collect()
}

/// What uninstalling a stack removes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `namespace/name` of the MonitoringStack.
    pub stack: String,
    /// Whether the MonitoringStack itself still exists.
    pub exists: bool,
    /// The objects steward applied that exist now.
    pub objects: Vec<ObjectRef>,
    /// Each helm release of the stack and the objects (`Kind/name`) it holds.
    pub releases: Vec<(String, Vec<String>)>,
}

impl Plan {
    /// Nothing to remove.
    pub fn is_empty(&self) -> bool {
        !self.exists && self.objects.is_empty() && self.releases.is_empty()
    }
}

/// What `steward monitor uninstall` of `namespace/name` would remove; nothing changes.
pub async fn plan(client: &Client, bin: &str, namespace: &str, name: &str) -> Result<Plan> {
    let label = format!("{namespace}.{name}");
    let api: Api<MonitoringStack> = Api::namespaced(client.clone(), namespace);
    let ms = api
        .get_opt(name)
        .await
        .map_err(kerr("reading the MonitoringStack"))?;
    let mut wanted: BTreeSet<ObjectRef> = ms
        .iter()
        .flat_map(|m| m.status.iter().flat_map(|s| s.inventory.iter().cloned()))
        .collect();
    wanted.insert(ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some(namespace.into()),
        name: crate::core::manifests::workloads::grafana_admin_secret_of(name),
    });
    for (object, stack) in install::cluster_scoped(client).await? {
        if stack == label {
            wanted.insert(object);
        }
    }
    let mut objects = Vec::new();
    for r in wanted {
        let api = install::api_for(client, &install::resource_of(&r), r.namespace.as_deref());
        let found = api
            .get_opt(&r.name)
            .await
            .map_err(kerr(format!("reading {} {}", r.kind, r.name)))?;
        // Only what is still this stack's: an object someone took over stays.
        if found.is_some_and(|o| o.labels().get(STACK_LABEL) == Some(&label)) {
            objects.push(r);
        }
    }
    let mut releases = Vec::new();
    for r in self::releases(client, Some(namespace)).await? {
        if r.stack != label {
            continue;
        }
        let args = ["get", "manifest", "--namespace", namespace, "--", &r.name];
        let text = helm::helm(bin, &args, Duration::from_secs(60)).await?;
        releases.push((r.name, manifest_objects(&text)));
    }
    Ok(Plan {
        stack: format!("{namespace}/{name}"),
        exists: ms.is_some(),
        objects,
        releases,
    })
}

/// Removes what `plan` found and waits until it is gone, at most `timeout`.
pub async fn execute(client: &Client, bin: &str, plan: &Plan, timeout: Duration) -> Result<()> {
    let (namespace, name) = plan.stack.split_once('/').unwrap_or_default();
    let start = Instant::now();
    if plan.exists {
        let api: Api<MonitoringStack> = Api::namespaced(client.clone(), namespace);
        ok_if_not_found(api.delete(name, &DeleteParams::background()).await)
            .map_err(kerr("deleting the MonitoringStack"))?;
    }
    for (release, _) in &plan.releases {
        let r = Release {
            namespace: namespace.into(),
            name: release.clone(),
            stack: format!("{namespace}.{name}"),
        };
        uninstall_release(bin, &r, timeout).await?;
    }
    let label = format!("{namespace}.{name}");
    install::delete_cluster_scoped(client, |s| s == label).await?;
    // The garbage collector removes the owned objects; wait until it has.
    let mut left = plan.objects.clone();
    while !left.is_empty() {
        let mut still = Vec::new();
        for r in left {
            let api = install::api_for(client, &install::resource_of(&r), r.namespace.as_deref());
            if let Some(o) = api
                .get_opt(&r.name)
                .await
                .map_err(kerr(format!("reading {} {}", r.kind, r.name)))?
            {
                // An object that lost its owner reference is deleted here.
                if o.owner_references().is_empty() {
                    ok_if_not_found(api.delete(&r.name, &DeleteParams::background()).await)
                        .map_err(kerr(format!("deleting {} {}", r.kind, r.name)))?;
                }
                still.push(r);
            }
        }
        if !still.is_empty() && start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: format!(
                    "removal of {}",
                    still.iter().map(display).collect::<Vec<_>>().join(", ")
                ),
                after: timeout,
            });
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

fn display(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
        None => format!("{} {}", r.kind, r.name),
    }
}

/// The plan for people: each object, each release's objects, what is kept. Pure.
pub fn render(plan: &Plan, lang: Lang, dry_run: bool) -> String {
    let mut out = String::new();
    let count = plan.objects.len() + plan.releases.iter().map(|(_, o)| o.len()).sum::<usize>();
    out.push_str(&match lang {
        Lang::En => format!("MonitoringStack {}: {count} objects\n", plan.stack),
        Lang::Ko => format!("MonitoringStack {}: 객체 {count}개\n", plan.stack),
    });
    for r in &plan.objects {
        out.push_str(&format!("  {}\n", display(r)));
    }
    for (release, objects) in &plan.releases {
        out.push_str(&match lang {
            Lang::En => format!("  helm release {release}:\n"),
            Lang::Ko => format!("  helm 릴리스 {release}:\n"),
        });
        for o in objects {
            out.push_str(&format!("    {o}\n"));
        }
    }
    out.push_str(match lang {
        Lang::En => "kept: CustomResourceDefinitions (cluster-wide APIs other stacks and tools use; `kubectl delete crd` removes one)\n",
        Lang::Ko => "유지: CustomResourceDefinition (다른 스택과 도구도 쓰는 클러스터 API; 지우려면 `kubectl delete crd`)\n",
    });
    if dry_run {
        out.push_str(match lang {
            Lang::En => "dry run: nothing deleted\n",
            Lang::Ko => "dry run: 아무것도 지우지 않음\n",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_release_per_name_and_namespace() {
        let rev = |ns: &str, name: &str, stack: Option<&str>| {
            let mut l = labels(&[("owner", "helm"), ("name", name)]);
            if let Some(s) = stack {
                l.insert(STACK_LABEL.into(), s.into());
            }
            (ns.to_string(), l)
        };
        let got = releases_from([
            rev("m", "mon", Some("m.mon")),
            rev("m", "mon", Some("m.mon")), // revision 2
            rev("n", "mon", Some("n.mon")),
            rev("m", "other", None), // not steward's
        ]);
        let want = |ns: &str, stack: &str| Release {
            namespace: ns.into(),
            name: "mon".into(),
            stack: stack.into(),
        };
        assert_eq!(got, vec![want("m", "m.mon"), want("n", "n.mon")]);
    }

    #[test]
    fn objects_of_a_manifest() {
        let text = "---\n# Source: a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mon-values\n---\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: m-mon\n";
        assert_eq!(
            manifest_objects(text),
            vec!["ConfigMap/mon-values", "ClusterRole/m-mon"]
        );
        assert!(manifest_objects("").is_empty());
    }

    #[test]
    fn the_plan_names_every_object_and_what_is_kept() {
        let plan = Plan {
            stack: "m/mon".into(),
            exists: true,
            objects: vec![
                ObjectRef {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    namespace: Some("m".into()),
                    name: "mon-prometheus".into(),
                },
                install_rbac("ClusterRole", "m-mon-prometheus"),
            ],
            releases: vec![("mon".into(), vec!["ConfigMap/mon-values".into()])],
        };
        let en = render(&plan, Lang::En, true);
        for line in [
            "MonitoringStack m/mon: 3 objects",
            "  Deployment m/mon-prometheus",
            "  ClusterRole m-mon-prometheus",
            "  helm release mon:",
            "    ConfigMap/mon-values",
            "kept: CustomResourceDefinitions",
            "dry run: nothing deleted",
        ] {
            assert!(en.contains(line), "{line}\n{en}");
        }
        let ko = render(&plan, Lang::Ko, false);
        assert!(ko.contains("객체 3개") && !ko.contains("dry run"), "{ko}");
        assert!(!plan.is_empty() && Plan::default().is_empty());
    }

    fn install_rbac(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
            namespace: None,
            name: name.into(),
        }
    }
}
