//! The `steward monitor` controller: one loop over every MonitoringStack, woken by
//! watch events (stacks, nodes, exporter pods) and by a poll tick (Prometheus has no
//! watch). Each pass validates the spec, installs when something changed, and steps
//! every node's onboarding. All state lives in the MonitoringStack's status, so a
//! restarted controller carries on where the last one stopped.
//!
//! A MonitoringStack's way through: `reconcile` validates it (`core::validate`),
//! then `embedded` (pre-flight, apply, prune, availability; `install`) or
//! `crate::helm`, then `nodes` (onboarding, `core::onboarding`); the status each
//! step leaves is decided in `core::status` and written once at the end.

mod nodes;
mod sweep;
mod watches;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use steward_runtime::{Lang, Localized, Shutdown};

use crate::core::manifests::{self, Manifest};
use crate::core::stack::{FIELD_MANAGER, Stack};
use crate::core::status::{self, Preflight};
use crate::core::validate::{FieldError, InstallMode, Profile, Settings, parse_profile, validate};
use crate::core::{preflight, profile};
use crate::crd::{MonitoringStack, MonitoringStackStatus};
use crate::error::{Error, Result, kube as kerr};
use crate::messages::Msg;
use crate::metrics::Metrics;
use crate::{events, install};

/// How often an install blocked by pre-flight is checked again without a spec change.
const BLOCKED_RETRY: Duration = Duration::from_secs(30);

/// Controller configuration (from flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of the MonitoringStacks to reconcile; all when `None`.
    pub namespace: Option<String>,
    /// Prometheus API URL overriding every stack's own (for a controller outside the cluster).
    pub prometheus_url: Option<String>,
    /// How often Prometheus is polled for onboarding.
    pub poll: Duration,
    /// How often the whole stack is reapplied even without a change (heals drift).
    pub resync: Duration,
    /// Language of Events and conditions.
    pub lang: Lang,
    /// helm binary for helm mode.
    pub helm: String,
    /// Charts helm mode may install (`--helm-chart`), exactly as a stack names them.
    pub helm_charts: Vec<String>,
    /// This replica in the Events it publishes (the pod name), if known.
    pub instance: Option<String>,
}

/// The running controller.
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Controller {
    client: Client,
    cfg: Config,
    metrics: Metrics,
    recorder: Recorder,
    stacks: Store<MonitoringStack>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    /// Per stack: when it was last applied and the render's hash.
    applied: HashMap<String, (Instant, String)>,
    /// Per stack: the last valid settings, for onboarding while the spec is invalid.
    last_good: HashMap<String, Settings>,
    /// Per stack: when pre-flight last blocked its install.
    blocked: HashMap<String, Instant>,
    /// Per stack with `spec.prometheus: external`: the URL of the operator
    /// Prometheus pre-flight chose.
    external: HashMap<String, String>,
    /// Stacks seen on the last pass, as `<namespace>.<name>`.
    known: Option<BTreeSet<String>>,
    /// Prometheus API clients by URL (one connection pool each).
    proms: HashMap<String, crate::promapi::PromApi>,
    /// The API server's `gitVersion` (EKS and GKE show in it), if it answered.
    server_version: Option<String>,
}

/// Runs until shutdown.
pub async fn run(
    client: Client,
    cfg: Config,
    metrics: Metrics,
    ready: steward_runtime::admin::Readiness,
    shutdown: Shutdown,
) -> Result<()> {
    let (stores, mut events) = watches::watches(&client, cfg.namespace.as_deref());
    let server_version = match client.apiserver_version().await {
        Ok(info) => Some(info.git_version),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the API server's version; the profile comes from the nodes alone");
            None
        }
    };
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: cfg.instance.clone(),
    };
    let mut ctl = Controller {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        cfg,
        metrics,
        stacks: stores.stacks,
        nodes: stores.nodes,
        pods: stores.pods,
        applied: HashMap::new(),
        proms: HashMap::new(),
        known: None,
        server_version,
        blocked: HashMap::new(),
        external: HashMap::new(),
        last_good: HashMap::new(),
    };
    // Drive the watches until each has its first list before deciding anything.
    let synced = |c: &Controller| {
        use futures::FutureExt;
        c.stacks.wait_until_ready().now_or_never().is_some()
            && c.nodes.wait_until_ready().now_or_never().is_some()
            && c.pods.wait_until_ready().now_or_never().is_some()
    };
    while !synced(&ctl) {
        if !watches::next(&mut events, &shutdown).await {
            return Ok(());
        }
    }
    ready.set(true);
    let mut tick = tokio::time::interval(ctl.cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            more = watches::next(&mut events, &shutdown) => if !more { return Ok(()) },
            _ = tick.tick() => {}
        }
        // Take every event already waiting before one pass over the stacks.
        while let Some(Some(e)) = futures::FutureExt::now_or_never(events.next()) {
            if let Err(e) = e {
                tracing::warn!(error = %e, "watch error");
            }
        }
        ctl.sweep().await;
        // A stack being deleted (foreground) is its garbage collector's: nothing
        // is applied for it again.
        for ms in ctl.stacks.state() {
            if ms.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if let Err(e) = ctl.reconcile(&ms).await {
                ctl.error_policy(&ms, &e);
            }
        }
    }
}

impl Controller {
    /// A failed reconcile is counted by kind
    /// (`steward_monitor_reconcile_errors_total{kind}`) and retried on the next pass.
    fn error_policy(&self, ms: &MonitoringStack, e: &Error) {
        self.metrics.reconcile_error(e.metric_label());
        tracing::warn!(stack = %key(ms), error = %e, "reconcile failed; retrying on the next pass");
    }

    async fn reconcile(&mut self, ms: &MonitoringStack) -> Result<()> {
        let (name, ns) = (ms.name_any(), ms.namespace().unwrap_or_default());
        let current = ms.status.clone().unwrap_or_default();
        let mut status = current.clone();
        let now = Timestamp::now();
        // The chart allowlist is the controller's, so it is checked with the spec.
        let checked = validate(&ms.spec).and_then(|settings| {
            match crate::core::validate::admit(
                settings.helm.as_ref(),
                settings.mode,
                &self.cfg.helm_charts,
            ) {
                Some(refused) => Err(vec![refused]),
                None => Ok(settings),
            }
        });
        match checked {
            Err(errs) => self.invalid(ms, &errs, &mut status, now).await?,
            Ok(settings) => self.valid(ms, settings, &mut status, now).await?,
        }
        if status != current {
            let api: Api<MonitoringStack> = Api::namespaced(self.client.clone(), &ns);
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .map_err(kerr(format!(
                "updating the status of MonitoringStack {ns}/{name}"
            )))?;
        }
        Ok(())
    }

    /// An invalid spec: nothing applied or removed; what is installed keeps
    /// running, and onboarding goes on with the last valid settings this process saw.
    async fn invalid(
        &mut self,
        ms: &MonitoringStack,
        errs: &[FieldError],
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<()> {
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let generation = ms.metadata.generation;
        if let Some(msg) = status::spec_invalid(status, &lines, generation, self.cfg.lang, now) {
            tracing::warn!(stack = %key(ms), errors = %lines.join("; "), "invalid MonitoringStack; nothing applied or removed");
            self.event(ms, events::spec_invalid(msg)).await;
        }
        let Some(settings) = self.last_good.get(&key(ms)).cloned() else {
            return Ok(());
        };
        let profile = status
            .profile
            .as_deref()
            .and_then(parse_profile)
            .unwrap_or(Profile::Generic);
        let stack = self.stack(ms, settings.clone(), profile);
        self.onboard(&stack, &settings, status, now).await
    }

    /// A valid spec: install (embedded or helm), then onboarding.
    async fn valid(
        &mut self,
        ms: &MonitoringStack,
        settings: Settings,
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<()> {
        status::spec_valid(status, now);
        let all_nodes: Vec<Node> = self.nodes.state().iter().map(|n| (**n).clone()).collect();
        let profile = settings
            .profile
            .unwrap_or_else(|| profile::detect(&all_nodes, self.server_version.as_deref()));
        let stack = self.stack(ms, settings.clone(), profile);
        self.last_good.insert(key(ms), settings.clone());
        match settings.mode {
            InstallMode::Embedded => self.embedded(ms, &stack, status, now).await?,
            InstallMode::Helm => {
                crate::helm::reconcile(&self.client, &self.cfg.helm, ms, &stack, status, now)
                    .await?
            }
        }
        if status.phase.as_deref() != Some("Failed") {
            self.onboard(&stack, &settings, status, now).await?;
        }
        Ok(())
    }

    /// Pre-flight, apply and prune when something changed; then availability.
    async fn embedded(
        &mut self,
        ms: &MonitoringStack,
        stack: &Stack,
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<()> {
        let rendered = manifests::render(stack);
        let key = key(ms);
        // Any change in any object (not only the Prometheus configuration) re-applies.
        let objects: Vec<String> = rendered
            .manifests
            .iter()
            .map(|m| m.object.to_string())
            .collect();
        let hash = manifests::hash(&objects.iter().map(String::as_str).collect::<Vec<_>>());
        let changed = status.observed_generation != ms.metadata.generation
            || status.profile.as_deref() != Some(stack.profile.as_str());
        let last = self
            .applied
            .get(&key)
            .map(|(at, h)| (at.elapsed(), h.as_str()));
        let stale = status::stale(last, &hash, self.cfg.resync);
        let blocked_for = self.blocked.get(&key).map(Instant::elapsed);
        if status::apply_due(changed, stale, blocked_for, BLOCKED_RETRY) {
            if !self.install(ms, stack, &rendered, status, now).await? {
                self.blocked.insert(key, Instant::now());
                return Ok(());
            }
            self.blocked.remove(&key);
            self.applied.insert(key, (Instant::now(), hash));
        }
        let waiting = install::not_available(&self.client, stack, &rendered.manifests).await?;
        status::availability(status, &waiting, now);
        Ok(())
    }

    /// Pre-flight, then apply and prune. `false` when pre-flight blocked the install.
    async fn install(
        &mut self,
        ms: &MonitoringStack,
        stack: &Stack,
        rendered: &manifests::Rendered,
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<bool> {
        let cluster = install::gather(&self.client, stack).await?;
        let findings = preflight::check(stack, &cluster);
        match cluster.external.and_then(|c| c.url) {
            Some(url) => self.external.insert(key(ms), url),
            None => self.external.remove(&key(ms)),
        };
        let lang = self.cfg.lang;
        let generation = ms.metadata.generation;
        let profile = stack.profile.as_str();
        if let Preflight::Blocked(msg) =
            status::preflight(status, &findings, generation, profile, lang, now)
        {
            if let Some(msg) = msg {
                self.event(ms, events::preflight_blocked(msg)).await;
            }
            return Ok(false);
        }
        // With the Prometheus Operator's CRDs, also a ServiceMonitor and a
        // PrometheusRule (steward's own Prometheus keeps its raw configuration).
        let mut to_apply: Vec<Manifest> = rendered.manifests.clone();
        if manifests::operator::crds_present(cluster.operator_crd_names.iter().map(String::as_str))
        {
            to_apply.extend(manifests::operator::objects(stack));
        }
        crate::grafana_admin::ensure(&self.client, ms, stack).await?;
        let applied = install::apply(&self.client, ms, &to_apply).await?;
        let old = install::inventory(&self.client, ms, &status.inventory).await?;
        let pruned = install::prune(&self.client, stack, &old, &applied).await?;
        self.metrics.applies.inc();
        let changed = status::applied(status, applied, &rendered.config_hash, pruned.len(), now);
        tracing::info!(stack = %key(ms), objects = status.inventory.len(), pruned = pruned.len(), profile, "applied");
        if changed {
            let msg = Msg::Applied {
                applied: status.inventory.len(),
                pruned: pruned.len(),
                profile,
            }
            .render(lang);
            self.event(ms, events::applied(msg)).await;
        }
        Ok(true)
    }

    /// The stack to render and onboard, with the external Prometheus pre-flight
    /// chose last.
    fn stack(&self, ms: &MonitoringStack, settings: Settings, profile: Profile) -> Stack {
        let ns = ms.namespace().unwrap_or_default();
        let mut stack = Stack::new(&ms.name_any(), &ns, settings, profile);
        stack.external_url = self.external.get(&key(ms)).cloned();
        stack
    }

    async fn event(&self, obj: &impl Resource<DynamicType = ()>, ev: Event) {
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(reason = %ev.reason, error = %e, "could not publish an Event");
        }
    }
}

/// `namespace/name` of a stack.
fn key(ms: &MonitoringStack) -> String {
    format!("{}/{}", ms.namespace().unwrap_or_default(), ms.name_any())
}
