//! The eviction webhook: the handler that turns an AdmissionReview into
//! [`admission::decide`]'s inputs and its decision into an answer, and the one
//! write it makes, the drain request on the pod. The TLS server is `server`, the
//! ValidatingWebhookConfiguration steward keeps up to date `registration`.
//!
//! Every replica serves the webhook (the API server may call any of them); only
//! the leader runs the controller. The drain request is written conditional on the
//! pod's resourceVersion (read, decide, patch: `steward_kube::patch`), so a stale
//! cache can never overwrite a drain the controller has moved on.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PartialObjectMeta, PatchParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::response::StatusDetails;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use steward_kube::patch::{Step, read_decide_patch};
use steward_runtime::{Lang, Localized};
use tokio::sync::watch;

use crate::core::admission::{self, Attempt, Decision, PodFacts};
use crate::core::config::Config;
use crate::core::facts::facts;
use crate::core::state::{self, Phase, Record};
use crate::messages::Msg;
use crate::metrics::{DecisionLabel, Metrics};

mod registration;
mod server;

pub use registration::{
    Endpoint, Registration, WebhookConfig, ca_bundle_only, configuration, register,
};
pub use server::{bind, serve};

/// Name of the webhook inside the configuration; the API server puts it in every refusal.
pub const WEBHOOK: &str = "eviction.graceful-drain.steward.io";

/// Path the API server posts AdmissionReviews to.
pub const PATH: &str = "/validate-eviction";

/// What the handler needs.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Ctx {
    /// Client for the request patch.
    pub client: Client,
    /// Pod metadata of the whole cluster.
    pub pods: Store<PartialObjectMeta<Pod>>,
    /// The configuration in force.
    pub config: watch::Receiver<Arc<Config>>,
    /// Metrics.
    pub metrics: Metrics,
    /// Language of refusal messages.
    pub lang: Lang,
    /// Seconds callers are told to wait before retrying.
    pub retry_after: u32,
    /// VerticalPodAutoscaler objects, when the VPA API is installed.
    pub vpas: Option<Store<DynamicObject>>,
}

impl Ctx {
    /// The facts of a pod: a Job pod's workload is its CronJob when it has one (one
    /// read of the Job's metadata), and VPA targeting is looked up when the config
    /// asks for it.
    async fn facts(&self, namespace: &str, meta: &ObjectMeta, config: &Config) -> PodFacts {
        let mut f = facts(meta);
        if let Some(job) = f.workload.as_deref().and_then(|w| w.strip_prefix("Job/")) {
            let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
            match jobs.get_metadata_opt(job).await {
                Ok(Some(j)) => {
                    if let Some(cj) = j
                        .owner_references()
                        .iter()
                        .find(|o| o.controller == Some(true) && o.kind == "CronJob")
                    {
                        f.workload = Some(format!("CronJob/{}", cj.name));
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%job, %error, "reading the Job failed; keyed as the Job");
                }
            }
        }
        self.vpa_lookup(namespace, config, &mut f);
        f
    }

    fn vpa_lookup(&self, namespace: &str, config: &Config, f: &mut PodFacts) {
        if config.vpa_objects()
            && let (Some(store), Some(w)) = (&self.vpas, f.workload.as_deref())
        {
            f.vpa_targeted = crate::core::vpa::any_drives(store, namespace, w);
        }
    }
}

async fn review(
    State(ctx): State<Ctx>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let started = Instant::now();
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return Json(AdmissionResponse::invalid(e.to_string()).into_review());
        }
    };
    let (resp, label) = answer(&ctx, &req).await;
    ctx.metrics
        .webhook_requests
        .get_or_create(&DecisionLabel {
            decision: label.to_string(),
        })
        .inc();
    ctx.metrics
        .webhook_duration
        .observe(started.elapsed().as_secs_f64());
    Json(resp.into_review())
}

/// An eviction request, as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Eviction {
    namespace: String,
    name: String,
    dry_run: bool,
    /// The API request's user name.
    requester: String,
    /// The caller's grace period, if it gave one.
    grace: Option<u32>,
}

impl Eviction {
    /// The eviction in an admission request; `None` for anything else. Pure.
    fn of(req: &AdmissionRequest<DynamicObject>) -> Option<Self> {
        if req.resource.resource != "pods" || req.sub_resource.as_deref() != Some("eviction") {
            return None;
        }
        let grace = req
            .object
            .as_ref()
            .and_then(|o| o.data.pointer("/deleteOptions/gracePeriodSeconds"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|g| u32::try_from(g).ok());
        Some(Self {
            namespace: req.namespace.clone()?,
            name: req.name.clone(),
            dry_run: req.dry_run,
            requester: req.user_info.username.clone().unwrap_or_default(),
            grace,
        })
    }

    fn attempt(&self) -> Attempt<'_> {
        Attempt {
            namespace: &self.namespace,
            name: &self.name,
            dry_run: self.dry_run,
            requester: &self.requester,
        }
    }

    fn pod(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

async fn answer(
    ctx: &Ctx,
    req: &AdmissionRequest<DynamicObject>,
) -> (AdmissionResponse, &'static str) {
    let allow = AdmissionResponse::from(req);
    let Some(ev) = Eviction::of(req) else {
        return (allow, "allow_not_eviction");
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ev.namespace);
    let mut cached = ctx
        .pods
        .get(&ObjectRef::new(&ev.name).within(&ev.namespace))
        .map(|p| (*p).clone());
    // Two rounds: the cached pod, then a fresh read when the cache missed it, when
    // the conditional write found it changed, or before refusing because of a drain
    // in progress (the controller's own eviction follows its `evicting` mark at
    // once, usually before the cache has seen the mark).
    for round in 0..2 {
        let from_cache = cached.is_some();
        let meta = match cached.take() {
            Some(m) => Some(m),
            None => match api.get_metadata_opt(&ev.name).await {
                Ok(m) => m,
                Err(error) => {
                    tracing::warn!(pod = %ev.pod(), %error, "reading the pod failed; letting the eviction through");
                    return (allow, "allow_error");
                }
            },
        };
        let config = ctx.config.borrow().clone();
        let facts = match &meta {
            Some(m) => Some(ctx.facts(&ev.namespace, &m.metadata, &config).await),
            None => None,
        };
        let now = Timestamp::now();
        let decision = admission::decide(ev.attempt(), facts.as_ref(), &config, now);
        let msg = match &decision {
            Decision::Allow(_) => return (allow, decision.label()),
            Decision::InProgress(_) | Decision::BackingOff(_) if from_cache && round == 0 => {
                continue;
            }
            Decision::InProgress(phase) => Msg::StillDraining {
                phase: phase.as_str(),
            }
            .render(ctx.lang),
            Decision::BackingOff(until) => Msg::BackingOff {
                until: until.to_string(),
            }
            .render(ctx.lang),
            Decision::StartDrain { workload } => {
                // The refusal does not wait for the write: the API server's PATCH
                // latency would be the webhook's. If the write fails, the caller's
                // retry (429 is retried by every evicter) tries again.
                let patch = state::request_patch(now, &ev.requester, ev.grace, workload.as_deref());
                let known = meta.map(|m| Pod {
                    metadata: m.metadata,
                    ..Pod::default()
                });
                let workload = facts.and_then(|f| f.workload);
                tokio::spawn(record(ctx.clone(), api, ev, workload, known, patch));
                Msg::Draining.render(ctx.lang)
            }
        };
        return (
            too_many_requests(allow, &msg, ctx.retry_after),
            decision.label(),
        );
    }
    (allow, "allow_error")
}

/// Writes the drain request, conditional on the resourceVersion the decision saw
/// (`known`, the cached pod). On a conflict the pod is read again and decided
/// again: a drain that started meanwhile (or a pod now being deleted) needs no
/// request.
/// `workload` is the first decision's (a Job pod's CronJob needs a read).
async fn record(
    ctx: Ctx,
    api: Api<Pod>,
    ev: Eviction,
    workload: Option<String>,
    known: Option<Pod>,
    patch: serde_json::Value,
) {
    let pod = ev.pod();
    // A re-decision is about the write, which is never a dry run.
    let attempt = Attempt {
        dry_run: false,
        ..ev.attempt()
    };
    let mut first = true;
    let written = read_decide_patch(&api, &ev.name, known, &PatchParams::default(), |p| {
        let Some(p) = p else {
            return Step::Done(false);
        };
        if std::mem::take(&mut first) {
            return Step::Patch(patch.clone());
        }
        let config = ctx.config.borrow().clone();
        let mut f = facts(&p.metadata);
        f.workload.clone_from(&workload);
        ctx.vpa_lookup(&ev.namespace, &config, &mut f);
        match admission::decide(attempt, Some(&f), &config, Timestamp::now()) {
            Decision::StartDrain { .. } => Step::Patch(patch.clone()),
            _ => Step::Done(
                Record::read(p.labels(), p.annotations())
                    .is_some_and(|r| r.phase == Phase::Requested),
            ),
        }
    })
    .await;
    match written {
        Ok(true) => tracing::info!(%pod, "eviction intercepted; drain requested"),
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(%pod, %error, "recording the drain request failed; the caller's retry tries again");
        }
    }
}

/// A refusal the API server passes to the caller as 429 Too Many Requests, the
/// answer a PodDisruptionBudget gives, which every evicter retries.
fn too_many_requests(
    mut resp: AdmissionResponse,
    msg: &str,
    retry_after: u32,
) -> AdmissionResponse {
    resp.allowed = false;
    resp.result = kube::core::Status::failure(msg, "TooManyRequests")
        .with_code(429)
        .with_details(StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: retry_after,
        });
    resp
}

/// Drops from cached pod metadata what neither [`facts`] nor the conditional
/// write reads, so 2000 pods cost little (`managedFields` alone is most of a
/// pod's metadata): kept are name, namespace, resourceVersion, labels,
/// annotations, deletionTimestamp and the controller owner's kind and name.
pub fn slim(meta: &mut PartialObjectMeta<Pod>) {
    meta.types = None;
    let m = &mut meta.metadata;
    // `None`, not `clear()`: a cleared Vec keeps its buffer.
    m.managed_fields = None;
    m.generate_name = None;
    m.uid = None;
    m.self_link = None;
    if let Some(owners) = m.owner_references.take() {
        m.owner_references = owners
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| {
                vec![OwnerReference {
                    kind: o.kind,
                    name: o.name,
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            });
    }
}

#[cfg(test)]
mod tests;
