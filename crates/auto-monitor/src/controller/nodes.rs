//! One onboarding pass for a stack: read the nodes and exporter pods from the watch
//! caches and the targets from Prometheus, step each node (pure, in
//! [`crate::onboarding`]), publish the histogram and Events, and write the records.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use steward_runtime::Localized;

use super::{Controller, selected};
use crate::conditions::{self, PROMETHEUS_REACHABLE, tolerates};
use crate::crd::{MonitoringStackStatus, NodeOnboarding};
use crate::error::{Result, kube as kerr};
use crate::manifests::workloads::NODE_EXPORTER_PORT;
use crate::messages::Msg;
use crate::metrics::StepLabels;
use crate::onboarding::{self, Cause, ExporterView, NodeView};
use crate::promapi::PromApi;
use crate::stack::{STACK_LABEL, Stack};
use crate::validate::Settings;

impl Controller {
    pub(super) async fn onboard(
        &mut self,
        stack: &Stack,
        settings: &Settings,
        status: &mut MonitoringStackStatus,
        now: Timestamp,
    ) -> Result<()> {
        if !settings.has("node-exporter") {
            status.nodes.clear();
            status.summary = None;
            return Ok(());
        }
        let url = self
            .cfg
            .prometheus_url
            .clone()
            .unwrap_or_else(|| stack.prometheus_url());
        if !self.proms.contains_key(&url) {
            self.proms.insert(url.clone(), PromApi::new(&url)?);
        }
        let prom = self.proms[&url].clone();
        let scrapes = match prom.scrape_views().await {
            Ok(s) => {
                conditions::set(
                    &mut status.conditions,
                    PROMETHEUS_REACHABLE,
                    true,
                    "Answered",
                    &format!("{url} answered"),
                    now,
                );
                s
            }
            Err(e) => {
                // Without Prometheus nothing can be said about targets: keep the records.
                conditions::set(
                    &mut status.conditions,
                    PROMETHEUS_REACHABLE,
                    false,
                    "QueryFailed",
                    &e.to_string(),
                    now,
                );
                tracing::debug!(%url, error = %e, "Prometheus not answering; onboarding records kept as they are");
                return Ok(());
            }
        };
        // "Seen by steward" times are taken after the answer: the pass's start would
        // come before the sample it reports.
        let now = Timestamp::now();
        let tolerations = self.exporter_tolerations(stack).await?;
        let installed_at = status
            .applied_at
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        let prev: BTreeMap<String, NodeOnboarding> = status
            .nodes
            .iter()
            .map(|r| (r.node.clone(), r.clone()))
            .collect();
        let mut nodes: Vec<_> = self
            .nodes
            .state()
            .into_iter()
            .filter(|n| selected(settings, n))
            .collect();
        nodes.sort_by_key(|n| n.name_any());
        let mut records = Vec::with_capacity(nodes.len());
        let deadline = settings.onboarding_deadline;
        for n in &nodes {
            let name = n.name_any();
            let exporter = self.exporter_view(stack, &name);
            let mut view = node_view(n, &tolerations);
            let scrape = scrapes.get(&name).copied().unwrap_or_default();
            let waited = view
                .ready_since
                .map(|r| now.duration_since(r.max(installed_at)));
            let maybe_late = waited.is_some_and(|w| w.as_secs_f64() >= deadline.as_secs_f64());
            if maybe_late
                && matches!(
                    onboarding::cause(&view, exporter.as_ref(), &scrape),
                    Some(
                        Cause::NoExporterPod | Cause::Unschedulable(_) | Cause::HostPortConflict(_)
                    )
                )
            {
                view.port_9100_holders = self.port_holders(stack, &name).await?;
            }
            let out = onboarding::step(
                prev.get(&name),
                &view,
                exporter.as_ref(),
                &scrape,
                installed_at,
                deadline,
                now,
            );
            if let Some(secs) = out.onboarded {
                if view.ready_since.is_some_and(|r| r >= installed_at) {
                    self.metrics.onboarding_seconds.observe(secs);
                }
                tracing::info!(node = %name, seconds = secs, "node monitored");
                let msg = Msg::NodeMonitored {
                    node: &name,
                    seconds: secs,
                }
                .render(self.cfg.lang);
                self.event(&**n, crate::events::node_monitored(msg)).await;
            }
            if let Some(cause) = &out.late {
                let msg = Msg::NodeLate {
                    node: &name,
                    cause,
                    deadline: deadline.as_secs(),
                }
                .render(self.cfg.lang);
                tracing::warn!(node = %name, cause = cause.reason(), "node not monitored past its deadline");
                self.event(&**n, crate::events::node_not_monitored(cause, msg))
                    .await;
            }
            records.push(out.record);
        }
        let monitored = records.iter().filter(|r| r.step == "Monitored").count();
        self.metrics.nodes.clear();
        for r in &records {
            self.metrics
                .nodes
                .get_or_create(&StepLabels {
                    step: r.step.clone(),
                })
                .inc();
        }
        status.summary = Some(format!("{monitored}/{}", records.len()));
        status.nodes = records;
        Ok(())
    }

    /// The exporter pod on `node`, from the watch cache.
    fn exporter_view(&self, stack: &Stack, node: &str) -> Option<ExporterView> {
        let label = stack.stack_label();
        let mut pods: Vec<_> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(&stack.namespace))
            .filter(|p| p.labels().get(STACK_LABEL) == Some(&label))
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                    || pending_for(p, node)
            })
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        pods.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        pods.last().map(|p| exporter(p))
    }

    /// Tolerations of the live node-exporter DaemonSet (helm charts may differ from ours).
    async fn exporter_tolerations(&self, stack: &Stack) -> Result<Vec<Toleration>> {
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &stack.namespace);
        let ds = api
            .get_opt(&stack.object_name("node-exporter"))
            .await
            .map_err(kerr("reading the node-exporter DaemonSet"))?;
        Ok(ds
            .and_then(|d| d.spec?.template.spec?.tolerations)
            .unwrap_or_else(|| {
                vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]
            }))
    }

    /// Pods not of this stack on `node` that hold host port 9100.
    async fn port_holders(&self, stack: &Stack, node: &str) -> Result<Vec<String>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let pods = api
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(kerr(format!("listing pods on {node}")))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| p.labels().get(STACK_LABEL) != Some(&stack.stack_label()))
            .filter(|p| {
                p.spec
                    .iter()
                    .flat_map(|s| &s.containers)
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|port| port.host_port == Some(NODE_EXPORTER_PORT))
            })
            .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
            .collect())
    }
}

/// A DaemonSet pod not yet bound targets its node through required node affinity
/// on `metadata.name`.
fn pending_for(p: &Pod, node: &str) -> bool {
    let terms = p
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default();
    terms.iter().any(|t| {
        t.match_fields
            .iter()
            .flatten()
            .any(|f| f.key == "metadata.name" && f.values.iter().flatten().any(|v| v == node))
    })
}

fn condition_time(p: &Pod, type_: &str, status: &str) -> Option<Timestamp> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn exporter(p: &Pod) -> ExporterView {
    let unschedulable = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .map(|c| {
                    c.message
                        .clone()
                        .unwrap_or_else(|| c.reason.clone().unwrap_or_default())
                })
        });
    let waiting_reason = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        });
    ExporterView {
        pod: p.name_any(),
        scheduled_at: condition_time(p, "PodScheduled", "True"),
        unschedulable,
        ready_at: condition_time(p, "Ready", "True"),
        waiting_reason,
        image: p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
    }
}

fn node_view(n: &Node, tolerations: &[Toleration]) -> NodeView {
    let ready_since = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
        });
    let untolerated_taints = n
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(|t| {
            t.effect != "PreferNoSchedule" && !tolerations.iter().any(|tol| tolerates(tol, t))
        })
        .map(|t| {
            format!(
                "{}={}:{}",
                t.key,
                t.value.clone().unwrap_or_default(),
                t.effect
            )
        })
        .collect();
    NodeView {
        name: n.name_any(),
        ready_since,
        untolerated_taints,
        port_9100_holders: Vec::new(),
    }
}
