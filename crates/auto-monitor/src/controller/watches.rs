//! The controller's caches (MonitoringStacks, nodes, steward's node-exporter
//! pods) and their watch events, merged into one stream that wakes the loop.

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use steward_runtime::Shutdown;

use crate::core::stack::FIELD_MANAGER;
use crate::crd::MonitoringStack;

/// The watch events of every cache, merged: `Err` is a watch error (logged; the
/// watch backs off and goes on).
pub(super) type Events =
    futures::stream::SelectAll<futures::stream::BoxStream<'static, Result<(), String>>>;

/// The three caches the controller reads: the MonitoringStacks (of its
/// namespace), the nodes, and the node-exporter pods steward manages.
pub(super) fn watches(client: &Client, namespace: Option<&str>) -> (Stores, Events) {
    let stack_api: Api<MonitoringStack> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (stacks, w_stacks) = reflector::store();
    let (nodes, w_nodes) = reflector::store();
    let (pods, w_pods) = reflector::store();
    let exporter_pods = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/name=node-exporter,app.kubernetes.io/managed-by={FIELD_MANAGER}"
    ));
    let s1 = reflector::reflector(w_stacks, watcher(stack_api, watcher::Config::default()))
        .default_backoff()
        .map(|r| r.map(|_| ()).map_err(|e| e.to_string()));
    let s2 = reflector::reflector(
        w_nodes,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .map(|r| r.map(|_| ()).map_err(|e| e.to_string()));
    let s3 = reflector::reflector(
        w_pods,
        watcher(Api::<Pod>::all(client.clone()), exporter_pods),
    )
    .default_backoff()
    .map(|r| r.map(|_| ()).map_err(|e| e.to_string()));
    let events = stream::select_all([s1.boxed(), s2.boxed(), s3.boxed()]);
    (
        Stores {
            stacks,
            nodes,
            pods,
        },
        events,
    )
}

/// The caches.
pub(super) struct Stores {
    pub(super) stacks: Store<MonitoringStack>,
    pub(super) nodes: Store<Node>,
    pub(super) pods: Store<Pod>,
}

/// The next watch event; `false` when the watches ended or steward stops.
pub(super) async fn next(events: &mut Events, shutdown: &Shutdown) -> bool {
    tokio::select! {
        e = events.next() => match e {
            Some(Err(e)) => { tracing::warn!(error = %e, "watch error"); true }
            Some(Ok(())) => true,
            None => false,
        },
        () = shutdown.signaled() => false,
    }
}
