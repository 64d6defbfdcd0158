//! Waiting on conditions with deadlines. Watches where a single object or a list
//! decides; polling only for conditions no watch can express.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::Value;

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            let why = last_err
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}{why}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Watches one object until `cond` holds; returns it.
pub async fn object<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: Resource + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api.clone(), cfg).applied_objects();
    let found = tokio::time::timeout(timeout, async {
        let mut stream = std::pin::pin!(stream);
        while let Some(obj) = stream.try_next().await? {
            if cond(&obj) {
                return Ok(obj);
            }
        }
        Err(anyhow!("watch ended"))
    })
    .await;
    found.map_err(|_| anyhow!("timed out after {timeout:?} waiting for {what} on {name}"))?
}

/// Watches the objects matching `lp` until `cond` holds for the whole set; returns it.
pub async fn list<K>(
    api: &Api<K>,
    lp: &ListParams,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&[K]) -> bool,
) -> Result<Vec<K>>
where
    K: Resource + Clone + Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let mut cfg = watcher::Config::default();
    if let Some(l) = &lp.label_selector {
        cfg = cfg.labels(l);
    }
    if let Some(f) = &lp.field_selector {
        cfg = cfg.fields(f);
    }
    let (reader, writer) = kube::runtime::reflector::store();
    // Every watch event, the initial list's end included, re-checks the whole set.
    let events = kube::runtime::reflector(writer, watcher(api.clone(), cfg));
    let last = std::sync::Mutex::new(Vec::new());
    let found = tokio::time::timeout(timeout, async {
        let mut events = std::pin::pin!(events);
        while events.try_next().await?.is_some() {
            // Take every event already waiting before re-checking: checking after each
            // one clones the whole set per event, quadratic for thousands of objects.
            while let Some(ev) = futures::FutureExt::now_or_never(events.try_next()) {
                if ev?.is_none() {
                    break;
                }
            }
            let objs: Vec<K> = reader.state().iter().map(|o| (**o).clone()).collect();
            if cond(&objs) {
                return Ok(objs);
            }
            *last.lock().expect("lock") = objs.iter().map(|o| o.name_any()).collect::<Vec<_>>();
        }
        Err(anyhow!("watch ended"))
    })
    .await;
    found.map_err(|_| {
        anyhow!(
            "timed out after {timeout:?} waiting for {what}; last seen: {:?}",
            last.lock().expect("lock")
        )
    })?
}

/// Waits until the named object no longer exists.
pub async fn gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
{
    until(timeout, &format!("{name} to be deleted"), || async {
        Ok(api.get_opt(name).await?.is_none())
    })
    .await
}

/// A node whose Ready condition is True.
pub fn node_ready(n: &Node) -> bool {
    steward_kube::node::is_ready(n)
}

/// A node the scheduler places pods on: Ready, and no longer carrying the
/// `not-ready` taint every new node is created with ([`steward_sim::schedulable`]).
/// A Ready node whose taint kube-controller-manager has not lifted yet takes no pods
/// (a test once saw "0 nodes they may run on" in that window on a loaded machine).
pub fn node_schedulable(n: &Node) -> bool {
    steward_sim::schedulable(n)
}

/// A pod that is Running and Ready and not being deleted.
pub fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && steward_kube::pod::is_ready(p)
}

/// Builds a typed object from JSON, for compact test fixtures.
pub fn from_json<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture JSON matches the type")
}

/// Watches the CustomResourceDefinition `name` until it is Established. Watched, not
/// `kubectl wait`: that gives up at once on a CRD whose status has no conditions yet.
pub async fn crd_established(client: &kube::Client, name: &str, timeout: Duration) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    object(
        &crds,
        name,
        timeout,
        &format!("CRD {name} Established"),
        |c: &CustomResourceDefinition| {
            c.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        },
    )
    .await
    .map(drop)
}
