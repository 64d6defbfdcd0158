//! Fixtures of the real-node graceful-drain test: the real VPA updater under its
//! own identity, and what a failure message shows (steward's log, the Events).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use testkit::realnode::kubectl;
use testkit::wait;

use super::super::chart_support;
use super::super::{T, cluster};

pub(super) fn vpa_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("autoscaling.k8s.io", "v1", "VerticalPodAutoscaler");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn vpa_files() -> PathBuf {
    testkit::bin_dir().unwrap().join("../vpa-crds")
}

/// The VPA CRDs, the upstream RBAC (`vpa-rbac.yaml`: the updater's ServiceAccount
/// and roles), and a kubeconfig holding only that ServiceAccount's token.
pub(super) async fn vpa_updater_identity(client: &kube::Client, dir: &Path) -> PathBuf {
    for f in ["vpa-v1-crd-gen.yaml", "vpa-rbac.yaml"] {
        let path = vpa_files().join(f).display().to_string();
        kubectl(
            cluster(),
            &["apply", "--server-side", "--force-conflicts", "-f", &path],
        )
        .unwrap();
    }
    wait::crd_established(client, "verticalpodautoscalers.autoscaling.k8s.io", T)
        .await
        .unwrap();
    chart_support::sa_kubeconfig_of(
        cluster().kubeconfig(),
        client,
        "kube-system",
        "vpa-updater",
        dir,
    )
    .await
}

/// The real VPA updater as `kubeconfig`'s identity, evicting in `ns` every 2 s;
/// its log in `log`; killed on drop.
pub(super) fn vpa_updater(kubeconfig: &Path, ns: &str, log: &Path) -> tokio::process::Child {
    let log = std::fs::File::create(log).unwrap();
    tokio::process::Command::new(testkit::bin_dir().unwrap().join("vpa-updater"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--vpa-object-namespace", ns, "--updater-interval", "2s"])
        .args([
            "--use-admission-controller-status=false",
            "--min-replicas",
            "1",
        ])
        .args(["--eviction-tolerance", "0.5"])
        .args(["--address", &format!("127.0.0.1:{}", testkit::free_port())])
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The chart's graceful-drain pods' logs, for a failure message.
pub(super) fn steward_logs(ns: &str) -> String {
    let sel = "app.kubernetes.io/component=graceful-drain";
    kubectl(
        cluster(),
        &["logs", "-n", ns, "-l", sel, "--prefix", "--tail", "400"],
    )
    .unwrap_or_else(|e| e.to_string())
}

/// The namespace's Events, oldest first, one per line, for a failure message.
pub(super) async fn events_of(client: &kube::Client, ns: &str) -> String {
    let mut events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    events.sort_by_key(|e| {
        e.event_time
            .clone()
            .map(|t| t.0)
            .or(e.last_timestamp.clone().map(|t| t.0))
    });
    events
        .iter()
        .map(|e| {
            let at = e
                .event_time
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.last_timestamp.as_ref().map(|t| t.0.to_string()));
            format!(
                "{} {} {} {}",
                at.unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                e.involved_object.name.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until no pod on `node` has a deletion timestamp.
pub(super) async fn no_pod_stopping(client: &kube::Client, node: &str) {
    let everywhere: Api<Pod> = Api::all(client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    wait::list(
        &everywhere,
        &on_node,
        T,
        "no pod stopping on the node",
        |ps| ps.iter().all(|p| p.metadata.deletion_timestamp.is_none()),
    )
    .await
    .unwrap();
}
