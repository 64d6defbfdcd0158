//! The eviction webhook's plumbing: the TLS server, the handler that turns an
//! AdmissionReview into [`admission::decide`]'s inputs and its decision into an
//! answer, and the ValidatingWebhookConfiguration steward keeps up to date.
//!
//! Every replica serves the webhook (the API server may call any of them); only
//! the leader runs the controller. The webhook's one write is the drain request
//! on the pod, made conditional on the pod's resourceVersion so a stale cache can
//! never overwrite a drain the controller has moved on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::response::StatusDetails;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use steward_runtime::{Lang, Localized, Shutdown};
use tokio::sync::watch;

use crate::certs::Resolver;
use crate::core::admission::{self, Attempt, Decision, PodFacts};
use crate::core::config::Config;
use crate::core::state;
use crate::error::{Error, Result, kube as kerr};
use crate::events::CONTROLLER;
use crate::messages::Msg;
use crate::metrics::{DecisionLabel, Metrics};

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
    async fn facts(
        &self,
        namespace: &str,
        meta: &PartialObjectMeta<Pod>,
        config: &Config,
    ) -> PodFacts {
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
        if config.vpa_objects()
            && let (Some(store), Some(w)) = (&self.vpas, f.workload.as_deref())
        {
            f.vpa_targeted = crate::core::vpa::any_drives(store, namespace, w);
        }
        f
    }
}

/// Serves the webhook over TLS on `listener` until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    resolver: Arc<Resolver>,
    ctx: Ctx,
    shutdown: Shutdown,
) {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_no_client_auth().with_cert_resolver(resolver));
    let Ok(tls) = tls.as_mut() else {
        tracing::error!("no TLS protocol version available; webhook not served");
        return;
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.clone()));
    let app = axum::Router::new()
        .route(PATH, axum::routing::post(review))
        .with_state(ctx);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => { tracing::warn!(%error, "accepting a webhook connection failed"); continue; }
            },
            () = shutdown.signaled() => return,
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(t) => t,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(tls);
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%peer, %error, "webhook connection ended with an error");
            }
        });
    }
}

/// Binds the webhook address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
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

async fn answer(
    ctx: &Ctx,
    req: &AdmissionRequest<DynamicObject>,
) -> (AdmissionResponse, &'static str) {
    let allow = AdmissionResponse::from(req);
    if req.resource.resource != "pods" || req.sub_resource.as_deref() != Some("eviction") {
        return (allow, "allow_not_eviction");
    }
    let Some(ns) = req.namespace.as_deref() else {
        return (allow, "allow_not_eviction");
    };
    let requester = req.user_info.username.clone().unwrap_or_default();
    let attempt = Attempt {
        namespace: ns,
        name: &req.name,
        dry_run: req.dry_run,
        requester: &requester,
    };
    let grace = req
        .object
        .as_ref()
        .and_then(|o| o.data.pointer("/deleteOptions/gracePeriodSeconds"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|g| u32::try_from(g).ok());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut cached = ctx
        .pods
        .get(&ObjectRef::new(&req.name).within(ns))
        .map(|p| (*p).clone());
    // Two rounds: the cached pod, then a fresh read when the cache missed it, when
    // the conditional write found it changed, or before refusing because of a drain
    // in progress (the controller's own eviction follows its `evicting` mark at
    // once, usually before the cache has seen the mark).
    for round in 0..2 {
        let from_cache = cached.is_some();
        let meta = match cached.take() {
            Some(m) => Some(m),
            None => match api.get_metadata_opt(&req.name).await {
                Ok(m) => m,
                Err(error) => {
                    tracing::warn!(pod = %format!("{ns}/{}", req.name), %error, "reading the pod failed; letting the eviction through");
                    return (allow, "allow_error");
                }
            },
        };
        let config = ctx.config.borrow().clone();
        let facts = match &meta {
            Some(m) => Some(ctx.facts(ns, m, &config).await),
            None => None,
        };
        let now = Timestamp::now();
        let decision = admission::decide(attempt, facts.as_ref(), &config, now);
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
                let rv = meta.as_ref().and_then(|m| m.resource_version());
                let mut patch = state::request_patch(now, &requester, grace, workload.as_deref());
                patch["metadata"]["resourceVersion"] = json!(rv);
                tokio::spawn(record(
                    ctx.clone(),
                    api.clone(),
                    attempt.namespace.to_string(),
                    req.name.clone(),
                    requester.clone(),
                    patch,
                ));
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

/// Writes the drain request, conditional on the resourceVersion the decision saw.
/// On a conflict the pod is read again and decided again: a drain that started
/// meanwhile (or a pod now being deleted) needs no request.
async fn record(
    ctx: Ctx,
    api: Api<Pod>,
    ns: String,
    name: String,
    requester: String,
    patch: serde_json::Value,
) {
    let pod = format!("{ns}/{name}");
    let pp = PatchParams::default();
    let mut patch = patch;
    for _ in 0..3 {
        match api.patch_metadata(&name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(%pod, "eviction intercepted; drain requested");
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let fresh = match api.get_metadata_opt(&name).await {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(%pod, %error, "re-reading the pod failed; the caller's retry records the drain");
                        return;
                    }
                };
                let attempt = Attempt {
                    namespace: &ns,
                    name: &name,
                    dry_run: false,
                    requester: &requester,
                };
                let config = ctx.config.borrow().clone();
                if !matches!(
                    admission::decide(
                        attempt,
                        Some(&ctx.facts(&ns, &fresh, &config).await),
                        &config,
                        Timestamp::now()
                    ),
                    Decision::StartDrain { .. }
                ) {
                    return;
                }
                patch["metadata"]["resourceVersion"] = json!(fresh.resource_version());
            }
            Err(error) => {
                tracing::warn!(%pod, %error, "recording the drain request failed; the caller's retry tries again");
                return;
            }
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

/// The facts the decision needs, from pod metadata.
pub fn facts(meta: &PartialObjectMeta<Pod>) -> PodFacts {
    let owner = meta
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    let labels = meta.labels().clone();
    let workload = owner.map(|o| workload_of(&o.kind, &o.name, &labels));
    PodFacts {
        annotations: meta.annotations().clone(),
        owner_kind: owner.map(|o| o.kind.clone()),
        workload,
        deleting: meta.metadata.deletion_timestamp.is_some(),
        vpa_targeted: false,
        labels,
    }
}

/// `Deployment/web` for a ReplicaSet `web-<pod-template-hash>`, else `Kind/name`.
pub fn workload_of(kind: &str, name: &str, labels: &BTreeMap<String, String>) -> String {
    if kind == "ReplicaSet"
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deploy) = name.strip_suffix(&format!("-{hash}"))
    {
        return format!("Deployment/{deploy}");
    }
    format!("{kind}/{name}")
}

/// Where the API server reaches the webhook.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A URL (out-of-cluster, tests).
    Url(String),
    /// A Service in front of the replicas.
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Port.
        port: u16,
    },
}

/// Options of the webhook configuration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Name of the ValidatingWebhookConfiguration.
    pub name: String,
    /// Where it points.
    pub endpoint: Endpoint,
    /// Seconds the API server waits for an answer before ignoring the webhook.
    pub timeout_seconds: i32,
    /// Namespaces never sent (kube-system, steward's own, and more).
    pub excluded_namespaces: Vec<String>,
    /// Namespace labels a namespace must have to be sent (empty: every namespace).
    pub namespace_labels: BTreeMap<String, String>,
}

/// The ValidatingWebhookConfiguration: `CREATE pods/eviction`, failurePolicy Ignore
/// (a steward that is down lets evictions through without grace rather than block
/// them), a short timeout, sideEffects NoneOnDryRun (dry runs write nothing), and a
/// namespace selector that never sends kube-system or steward's own namespace.
pub fn configuration(r: &Registration, ca_bundle: &str) -> serde_json::Value {
    let mut client_config = match &r.endpoint {
        Endpoint::Url(url) => json!({ "url": format!("{}{PATH}", url.trim_end_matches('/')) }),
        Endpoint::Service {
            namespace,
            name,
            port,
        } => json!({
            "service": { "namespace": namespace, "name": name, "port": port, "path": PATH }
        }),
    };
    client_config["caBundle"] = base64(ca_bundle.as_bytes());
    let mut ns_selector = json!({ "matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": r.excluded_namespaces
    }] });
    if !r.namespace_labels.is_empty() {
        ns_selector["matchLabels"] = json!(r.namespace_labels);
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": r.name, "labels": { "app.kubernetes.io/managed-by": CONTROLLER } },
        "webhooks": [{
            "name": WEBHOOK,
            "clientConfig": client_config,
            "rules": [{ "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/eviction"], "scope": "Namespaced" }],
            "failurePolicy": "Ignore",
            "sideEffects": "NoneOnDryRun",
            "timeoutSeconds": r.timeout_seconds,
            "admissionReviewVersions": ["v1"],
            "namespaceSelector": ns_selector,
        }]
    })
}

/// Applies the configuration (server-side apply, steward's field manager).
pub async fn register(client: &Client, r: &Registration, ca_bundle: &str) -> Result<()> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let pp = PatchParams::apply(CONTROLLER).force();
    api.patch(&r.name, &pp, &Patch::Apply(configuration(r, ca_bundle)))
        .await
        .map_err(kerr(format!(
            "applying ValidatingWebhookConfiguration {}",
            r.name
        )))?;
    Ok(())
}

/// Base64 as Kubernetes writes `[]byte` fields (k8s-openapi's ByteString serialises so).
fn base64(bytes: &[u8]) -> serde_json::Value {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_keeps_every_fact_and_the_resource_version() {
        let meta: PartialObjectMeta<Pod> = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "web-7d9f8-abcde", "namespace": "shop", "generateName": "web-7d9f8-",
                "uid": "u1", "resourceVersion": "42", "deletionTimestamp": "2026-01-01T00:00:00Z",
                "labels": { "app": "web", "pod-template-hash": "7d9f8" },
                "annotations": { "vpa-managed": "true", "steward.io/drain-requested-at": "t" },
                "ownerReferences": [
                    { "apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u2" },
                    { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8", "uid": "u3", "controller": true }
                ],
                "managedFields": [{ "manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": { "f:metadata": {} } }]
            }
        }))
        .unwrap();
        let mut slimmed = meta.clone();
        slim(&mut slimmed);
        assert_eq!(
            format!("{:?}", facts(&slimmed)),
            format!("{:?}", facts(&meta))
        );
        assert_eq!(facts(&slimmed).workload.as_deref(), Some("Deployment/web"));
        assert_eq!(slimmed.resource_version(), meta.resource_version());
        assert_eq!(
            ObjectRef::from_obj(&slimmed).within("shop").name,
            "web-7d9f8-abcde"
        );
        assert!(slimmed.metadata.managed_fields.is_none());
        assert_eq!(slimmed.owner_references().len(), 1);

        // No controller owner: none kept, and the facts agree.
        let mut bare = meta.clone();
        bare.metadata.owner_references = Some(vec![meta.owner_references()[0].clone()]);
        let mut slim_bare = bare.clone();
        slim(&mut slim_bare);
        assert_eq!(
            format!("{:?}", facts(&slim_bare)),
            format!("{:?}", facts(&bare))
        );
        assert!(slim_bare.metadata.owner_references.is_none());
    }
}
