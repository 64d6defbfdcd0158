//! In place first (leader only). On a cluster that resizes pods in place (the API
//! server serves `pods/resize`), every VerticalPodAutoscaler in `Recreate` (or
//! `Auto`) mode gets a Normal Event `InPlaceResizeAvailable` and a gauge
//! `steward_graceful_drain_vpa_inplace_candidates{namespace,vpa}`: with
//! `InPlaceOrRecreate` the updater would resize its pods without evicting them,
//! and there would be nothing to drain. What to say when is [`crate::core::advice`].
//!
//! The VPA API is watched only while its CRD exists: the CRD is watched by name
//! (metadata only, one object), so a VPA installed after steward is picked up
//! and one removed stops the VPA watch.

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::core::advice::{Advisor, Change};
use crate::error::{Result, kube as kerr};
use crate::events::{Events, Reason};
use crate::messages::Msg;
use crate::metrics::{Metrics, VpaLabel};

/// Name of the VerticalPodAutoscaler CRD.
pub const VPA_CRD: &str = "verticalpodautoscalers.autoscaling.k8s.io";

/// Whether the API server serves `pods/resize` (discovery, not the version: the
/// feature gate can be off on 1.33+ and on before).
pub async fn in_place_resize(client: &Client) -> Result<bool> {
    let core = client
        .list_core_api_resources("v1")
        .await
        .map_err(kerr("reading the core API's resources"))?;
    Ok(core.resources.iter().any(|r| r.name == "pods/resize"))
}

/// Runs until the task is dropped (the leader aborts it when it stops).
pub async fn run(client: Client, metrics: Metrics, events: Events) {
    match in_place_resize(&client).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                "the API server does not serve pods/resize; no in-place resize advice for VerticalPodAutoscalers"
            );
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "discovering pods/resize failed; no in-place resize advice for VerticalPodAutoscalers");
            return;
        }
    }
    let (present_tx, mut present) = watch::channel(false);
    tokio::spawn(crd_presence(client.clone(), present_tx));
    let ar = crate::core::vpa::api_resource();
    let mut advisor = Advisor::default();
    loop {
        while !*present.borrow_and_update() {
            if present.changed().await.is_err() {
                return;
            }
        }
        tracing::info!(
            crd = VPA_CRD,
            "watching VerticalPodAutoscalers for in-place resize advice"
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        // Only the spec matters; the status (recommendations) is dropped at once.
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|v| {
                if let Some(d) = v.data.as_object_mut() {
                    d.remove("status");
                }
            });
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(event)) => {
                        for change in changes(&mut advisor, event) {
                            publish(&metrics, &events, &ar, change).await;
                        }
                    }
                    // Right after the CRD appears its API may not be served yet.
                    Some(Err(error)) => tracing::debug!(%error, "watching VerticalPodAutoscalers failed; retrying"),
                    None => return,
                },
                changed = present.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*present.borrow() {
                        tracing::info!(crd = VPA_CRD, "the VerticalPodAutoscaler CRD is gone; stopped watching");
                        for change in advisor.clear() {
                            publish(&metrics, &events, &ar, change).await;
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// Feeds one watcher event to the advisor; the advice for a VPA carries the object
/// so its Event can name it.
fn changes(advisor: &mut Advisor, event: watcher::Event<DynamicObject>) -> Vec<Advice> {
    let key = |v: &DynamicObject| format!("{}/{}", v.namespace().unwrap_or_default(), v.name_any());
    let with = |change: Option<Change>, v: DynamicObject| {
        change.map(|c| Advice {
            change: c,
            object: Some(v),
        })
    };
    match event {
        watcher::Event::Init => {
            advisor.relisting();
            Vec::new()
        }
        watcher::Event::InitApply(v) | watcher::Event::Apply(v) => {
            let c = advisor.apply(&key(&v), crate::core::vpa::candidate(&v));
            with(c, v).into_iter().collect()
        }
        watcher::Event::Delete(v) => {
            let c = advisor.delete(&key(&v));
            with(c, v).into_iter().collect()
        }
        watcher::Event::InitDone => advisor
            .relisted()
            .into_iter()
            .map(|change| Advice {
                change,
                object: None,
            })
            .collect(),
    }
}

/// A change and, when the watcher gave one, the VPA object.
#[derive(Debug)]
struct Advice {
    change: Change,
    object: Option<DynamicObject>,
}

impl From<Change> for Advice {
    fn from(change: Change) -> Self {
        Self {
            change,
            object: None,
        }
    }
}

async fn publish(
    metrics: &Metrics,
    events: &Events,
    ar: &kube::api::ApiResource,
    advice: impl Into<Advice>,
) {
    let Advice { change, object } = advice.into();
    let label = |key: &str| {
        let (namespace, vpa) = key.split_once('/').unwrap_or(("", key));
        VpaLabel {
            namespace: namespace.to_string(),
            vpa: vpa.to_string(),
        }
    };
    match change {
        Change::Advise(c) => {
            metrics
                .vpa_inplace_candidates
                .get_or_create(&label(&c.vpa))
                .set(1);
            tracing::info!(vpa = %c.vpa, target = %c.target, mode = %c.mode, "VerticalPodAutoscaler could use InPlaceOrRecreate and avoid evictions");
            if let Some(v) = object {
                let msg = Msg::InPlaceCandidate {
                    vpa: c.vpa,
                    target: c.target,
                };
                events
                    .publish_ref(&v.object_ref(ar), Reason::InPlaceResizeAvailable, &msg)
                    .await;
            }
        }
        Change::Withdraw(key) => {
            metrics.vpa_inplace_candidates.remove(&label(&key));
        }
    }
}

/// Keeps `tx` true while the VPA CRD exists, until its receiver is dropped.
async fn crd_presence(client: Client, tx: watch::Sender<bool>) {
    let api: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={VPA_CRD}"));
    let stream = watcher(api, cfg).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listed = false;
    let mut logged_absent = false;
    loop {
        // Ends with `run` (aborted with the leader): it holds the receiver.
        let event = tokio::select! {
            next = stream.next() => match next {
                Some(e) => e,
                None => return,
            },
            () = tx.closed() => return,
        };
        let now = match event {
            Ok(watcher::Event::Init) => {
                listed = false;
                continue;
            }
            Ok(watcher::Event::InitApply(_)) => {
                listed = true;
                continue;
            }
            Ok(watcher::Event::InitDone) => listed,
            Ok(watcher::Event::Apply(_)) => true,
            Ok(watcher::Event::Delete(_)) => false,
            Err(error) => {
                tracing::warn!(%error, crd = VPA_CRD, "watching the VerticalPodAutoscaler CRD failed; retrying");
                continue;
            }
        };
        if !now && !logged_absent {
            tracing::info!(
                crd = VPA_CRD,
                "the VerticalPodAutoscaler API is not installed; waiting for its CRD"
            );
            logged_absent = true;
        }
        tx.send_if_modified(|v| std::mem::replace(v, now) != now);
    }
}
