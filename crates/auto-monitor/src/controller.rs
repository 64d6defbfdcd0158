//! The `steward monitor` controller: one loop over every MonitoringStack, woken by
//! watch events (stacks, nodes, exporter pods) and by a poll tick (Prometheus has no
//! watch). Each pass validates the spec, installs when something changed, and steps
//! every node's onboarding. All state lives in the MonitoringStack's status, so a
//! restarted controller carries on where the last one stopped.

mod onboard;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use steward_runtime::{Lang, Localized, Shutdown};

use crate::conditions::{self, AVAILABLE, PREFLIGHT_PASSED, SPEC_VALID};
use crate::crd::{MonitoringStack, MonitoringStackStatus};
use crate::error::{Result, kube as kerr};
use crate::messages::Msg;
use crate::metrics::{ErrorLabels, Metrics};
use crate::stack::{FIELD_MANAGER, Stack};
use crate::validate::{InstallMode, Settings, validate};
use crate::{events, install, manifests, preflight, profile};

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
    /// Stacks seen on the last pass, as `<namespace>.<name>`.
    known: Option<std::collections::BTreeSet<String>>,
    /// Prometheus API clients by URL (one connection pool each).
    proms: HashMap<String, crate::promapi::PromApi>,
}

/// Runs until shutdown.
pub async fn run(
    client: Client,
    cfg: Config,
    metrics: Metrics,
    ready: steward_runtime::admin::Readiness,
    shutdown: Shutdown,
) -> Result<()> {
    let stack_api: Api<MonitoringStack> = match &cfg.namespace {
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
    let mut events = stream::select_all([s1.boxed(), s2.boxed(), s3.boxed()]);
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let mut ctl = Controller {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        cfg,
        metrics,
        stacks,
        nodes,
        pods,
        applied: HashMap::new(),
        proms: HashMap::new(),
        known: None,
        blocked: HashMap::new(),
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
        tokio::select! {
            e = events.next() => match e {
                Some(Err(e)) => tracing::warn!(error = %e, "watch error"),
                Some(Ok(())) => {}
                None => return Ok(()),
            },
            () = shutdown.signaled() => return Ok(()),
        }
    }
    ready.set(true);
    let mut tick = tokio::time::interval(ctl.cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            e = events.next() => match e {
                Some(Err(e)) => tracing::warn!(error = %e, "watch error"),
                Some(Ok(())) => {}
                None => return Ok(()),
            },
            _ = tick.tick() => {}
            () = shutdown.signaled() => return Ok(()),
        }
        // Take every event already waiting before one pass over the stacks.
        while let Some(Some(e)) = futures::FutureExt::now_or_never(events.next()) {
            if let Err(e) = e {
                tracing::warn!(error = %e, "watch error");
            }
        }
        let live: std::collections::BTreeSet<String> = ctl
            .stacks
            .state()
            .iter()
            .map(|m| format!("{}.{}", m.namespace().unwrap_or_default(), m.name_any()))
            .collect();
        // A stack went away (or this is the first pass): sweep its cluster-scoped objects.
        if ctl.known.as_ref() != Some(&live) {
            match install::delete_orphans(&ctl.client, &live, ctl.cfg.namespace.as_deref()).await {
                Ok(deleted) => {
                    for d in deleted {
                        tracing::info!(object = %d, "deleted a cluster-scoped object of a removed MonitoringStack");
                    }
                    ctl.known = Some(live);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping objects of removed MonitoringStacks failed; retrying")
                }
            }
        }
        for ms in ctl.stacks.state() {
            if let Err(e) = ctl.reconcile(&ms).await {
                ctl.metrics
                    .errors
                    .get_or_create(&ErrorLabels {
                        kind: e.metric_label().into(),
                    })
                    .inc();
                tracing::warn!(stack = %format!("{}/{}", ms.namespace().unwrap_or_default(), ms.name_any()), error = %e, "reconcile failed; retrying on the next pass");
            }
        }
    }
}

impl Controller {
    async fn reconcile(&mut self, ms: &MonitoringStack) -> Result<()> {
        let (name, ns) = (ms.name_any(), ms.namespace().unwrap_or_default());
        let current = ms.status.clone().unwrap_or_default();
        let mut status = current.clone();
        let now = Timestamp::now();
        let lang = self.cfg.lang;
        match validate(&ms.spec) {
            Err(errs) => {
                let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
                let msg = Msg::SpecInvalid { errors: &lines }.render(lang);
                let was =
                    conditions::get(&current.conditions, SPEC_VALID).map(|c| c.message.clone());
                conditions::set(
                    &mut status.conditions,
                    SPEC_VALID,
                    false,
                    "InvalidSpec",
                    &msg,
                    now,
                );
                status.phase = Some("Invalid".into());
                status.observed_generation = ms.metadata.generation;
                if was.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(stack = %format!("{ns}/{name}"), errors = %lines.join("; "), "invalid MonitoringStack; nothing applied or removed");
                    self.event(ms, events::spec_invalid(msg)).await;
                }
                // What is installed keeps running: onboarding goes on with the last
                // valid settings this process saw.
                if let Some(settings) = self.last_good.get(&format!("{ns}/{name}")).cloned() {
                    let profile = status
                        .profile
                        .as_deref()
                        .and_then(crate::validate::parse_profile)
                        .unwrap_or(crate::validate::Profile::Generic);
                    let stack = Stack::new(&name, &ns, settings.clone(), profile);
                    self.onboard(&stack, &settings, &mut status, now).await?;
                }
            }
            Ok(settings) => {
                conditions::set(
                    &mut status.conditions,
                    SPEC_VALID,
                    true,
                    "Valid",
                    "spec is valid",
                    now,
                );
                let all_nodes: Vec<Node> =
                    self.nodes.state().iter().map(|n| (**n).clone()).collect();
                let profile = settings
                    .profile
                    .unwrap_or_else(|| profile::detect(&all_nodes));
                let stack = Stack::new(&name, &ns, settings.clone(), profile);
                self.last_good
                    .insert(format!("{ns}/{name}"), settings.clone());
                match settings.mode {
                    InstallMode::Embedded => self.embedded(ms, &stack, &mut status, now).await?,
                    InstallMode::Helm => {
                        crate::helm::reconcile(
                            &self.client,
                            &self.cfg.helm,
                            ms,
                            &stack,
                            &mut status,
                            now,
                        )
                        .await?
                    }
                }
                if status.phase.as_deref() != Some("Failed") {
                    self.onboard(&stack, &settings, &mut status, now).await?;
                }
            }
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

    /// Pre-flight, apply and prune when something changed; then availability.
    async fn embedded(
        &mut self,
        ms: &MonitoringStack,
        stack: &Stack,
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<()> {
        let rendered = manifests::render(stack);
        let key = format!("{}/{}", stack.namespace, stack.name);
        // Any change in any object (not only the Prometheus configuration) re-applies.
        let objects: Vec<String> = rendered
            .manifests
            .iter()
            .map(|m| m.object.to_string())
            .collect();
        let hash = manifests::hash(&objects.iter().map(String::as_str).collect::<Vec<_>>());
        let changed = status.observed_generation != ms.metadata.generation
            || status.profile.as_deref() != Some(stack.profile.as_str());
        let stale = self
            .applied
            .get(&key)
            .is_none_or(|(at, h)| at.elapsed() >= self.cfg.resync || *h != hash);
        // A blocked pre-flight is retried on a spec change at once, otherwise every
        // BLOCKED_RETRY: its snapshot lists every pod in the cluster.
        let due = changed
            || (stale
                && self
                    .blocked
                    .get(&key)
                    .is_none_or(|at| at.elapsed() >= BLOCKED_RETRY));
        if due {
            let cluster = install::gather(&self.client, stack).await?;
            let findings = preflight::check(stack, &cluster);
            status.preflight = findings.clone();
            status.observed_generation = ms.metadata.generation;
            status.profile = Some(stack.profile.as_str().into());
            if preflight::blocked(&findings) {
                let lines: Vec<String> = findings
                    .iter()
                    .filter(|f| f.severity == preflight::BLOCKING)
                    .map(|f| format!("{}: {}", f.check, f.message))
                    .collect();
                let msg = Msg::PreflightBlocked { findings: &lines }.render(self.cfg.lang);
                let was = conditions::get(&status.conditions, PREFLIGHT_PASSED)
                    .map(|c| c.message.clone());
                conditions::set(
                    &mut status.conditions,
                    PREFLIGHT_PASSED,
                    false,
                    "Blocked",
                    &msg,
                    now,
                );
                status.phase = Some("Failed".into());
                self.blocked.insert(key, Instant::now());
                if was.as_deref() != Some(msg.as_str()) {
                    self.event(ms, events::preflight_blocked(msg)).await;
                }
                return Ok(());
            }
            let warnings: Vec<String> = findings
                .iter()
                .filter(|f| f.severity == preflight::WARNING)
                .map(|f| format!("{}: {}", f.check, f.message))
                .collect();
            let msg = if warnings.is_empty() {
                "all checks passed".to_string()
            } else {
                warnings.join("; ")
            };
            conditions::set(
                &mut status.conditions,
                PREFLIGHT_PASSED,
                true,
                if warnings.is_empty() {
                    "Passed"
                } else {
                    "PassedWithWarnings"
                },
                &msg,
                now,
            );
            // With the Prometheus Operator's CRDs, also a ServiceMonitor and a
            // PrometheusRule (steward's own Prometheus keeps its raw configuration).
            let mut to_apply = rendered.manifests.clone();
            if manifests::operator::crds_present(
                cluster.operator_crd_names.iter().map(String::as_str),
            ) {
                to_apply.extend(manifests::operator::objects(stack));
            }
            let applied = install::apply(&self.client, ms, &to_apply).await?;
            let pruned = install::prune(&self.client, stack, &status.inventory, &applied).await?;
            self.metrics.applies.inc();
            let changed = status.inventory != applied
                || status.config_hash.as_deref() != Some(&rendered.config_hash)
                || !pruned.is_empty();
            status.inventory = applied;
            status.config_hash = Some(rendered.config_hash.clone());
            status.applied_at.get_or_insert_with(|| now.to_string());
            self.blocked.remove(&key);
            self.applied.insert(key, (Instant::now(), hash));
            tracing::info!(stack = %format!("{}/{}", stack.namespace, stack.name), objects = status.inventory.len(), pruned = pruned.len(), profile = stack.profile.as_str(), "applied");
            if changed {
                let msg = Msg::Applied {
                    applied: status.inventory.len(),
                    pruned: pruned.len(),
                    profile: stack.profile.as_str(),
                }
                .render(self.cfg.lang);
                self.event(ms, events::applied(msg)).await;
            }
        }
        let waiting = install::not_available(&self.client, stack, &rendered.manifests).await?;
        if waiting.is_empty() {
            conditions::set(
                &mut status.conditions,
                AVAILABLE,
                true,
                "AllAvailable",
                "every component is Available",
                now,
            );
            status.phase = Some("Installed".into());
        } else {
            conditions::set(
                &mut status.conditions,
                AVAILABLE,
                false,
                "Waiting",
                &format!("waiting for {}", waiting.join(", ")),
                now,
            );
            status.phase = Some("Installing".into());
        }
        Ok(())
    }

    async fn event(&self, obj: &impl Resource<DynamicType = ()>, ev: Event) {
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(reason = %ev.reason, error = %e, "could not publish an Event");
        }
    }
}

/// Whether the settings select this node.
fn selected(settings: &Settings, n: &Node) -> bool {
    let labels = n.labels();
    settings
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}
